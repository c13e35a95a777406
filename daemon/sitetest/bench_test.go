//go:build linux

package sitetest

import (
	"os"
	"testing"
	"time"
)

// BenchmarkSiteWANBytes: a site of 20 patchringd processes behind a WAN
// shaped with tbf to 20 Mbit/s; a 32 MiB acme-tool 1.1 becomes available
// and approved for all of them at the same moment. It reports
//
//   - p2p_wan_bytes_ratio: downstream WAN bytes of the payload flows (from
//     the pool host, Ethernet frames with every header) / payload bytes
//     (1.1 and the 1.0 kept for rollback). Target <= 1.05; the naive figure
//     is 20 (one copy per node). One copy costs ~1.046 in TCP/IP and
//     Ethernet headers alone.
//   - p2p_wan_total_ratio: every downstream WAN byte during the rollout
//     (apt indices, TUF metadata, redirects included) / payload bytes.
//   - p2p_wan_upstream_ratio: upstream WAN bytes (requests, ACKs, apt and
//     TUF polling) / payload bytes.
//   - p2p_wan_origin_fetches: GETs of 1.1 the origin served.
//   - p2p_site_rollout: seconds from approval until every node installed.
//   - p2p_bandwidth_optimization: payload bytes the agents got from peers,
//     in percent of all they received.
//
// PATCHRING_BENCH_SITE_NODES, PATCHRING_BENCH_SITE_MIB and
// PATCHRING_BENCH_SITE_RATE (a tc rate, e.g. 20mbit) scale it.
func BenchmarkSiteWANBytes(b *testing.B) {
	n := envInt(b, "PATCHRING_BENCH_SITE_NODES", 20)
	mib := envInt(b, "PATCHRING_BENCH_SITE_MIB", 32)
	rate := os.Getenv("PATCHRING_BENCH_SITE_RATE")
	if rate == "" {
		rate = "20mbit"
	}
	var r rollout
	for range b.N {
		_, r = siteRollout(b, n, mib<<20, rate, 5*time.Minute)
	}
	r.report(b)
	S := float64(r.payloadBytes())
	var fromOrigin, fromPeers int64
	for _, p := range r.peers {
		fromOrigin += p.FromOrigin
		fromPeers += p.FromPeers
	}
	b.ReportMetric(float64(r.wan.Payload)/S, "p2p_wan_bytes_ratio@x")
	b.ReportMetric(float64(r.wan.Down)/S, "p2p_wan_total_ratio@x")
	b.ReportMetric(float64(r.wan.Up)/S, "p2p_wan_upstream_ratio@x")
	b.ReportMetric(float64(r.poolRequests), "p2p_wan_origin_fetches@count")
	b.ReportMetric(r.elapsed.Seconds(), "p2p_site_rollout@s")
	if fromOrigin+fromPeers > 0 {
		b.ReportMetric(100*float64(fromPeers)/float64(fromOrigin+fromPeers), "p2p_bandwidth_optimization@pct")
	}
}
