//go:build linux

package sitetest

import (
	"os"
	"testing"
	"time"

	"github.com/patchring/patchring/internal/benchtarget"
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
// A second run, BenchmarkSiteWANBytes/fetcher_killed, kills the WAN fetcher
// (SIGKILL) once half of 1.1 crossed the WAN to it; the next node in
// rendezvous order continues from the pieces the site copied from the
// killed one (partial downloads are announced over gossip):
//
//   - p2p_wan_bytes_ratio_fetcher_killed: as p2p_wan_bytes_ratio. Target
//     <= 1.10; fetching everything again would cost at least 1.5.
//   - p2p_site_rollout_fetcher_killed: seconds until the other nodes
//     installed.
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
	b.Run("normal", func(b *testing.B) {
		var r rollout
		for range b.N {
			_, r = siteRollout(b, n, mib<<20, rate, 5*time.Minute, 0)
		}
		r.report(b)
		S := float64(r.payloadBytes())
		var fromOrigin, fromPeers int64
		for _, p := range r.peers {
			fromOrigin += p.FromOrigin
			fromPeers += p.FromPeers
		}
		// Below 1 the WAN classifier missed payload bytes: one copy must cross.
		benchtarget.Report(b, float64(r.wan.Payload)/S, "p2p_wan_bytes_ratio", "x", benchtarget.AtMost(1.05), benchtarget.Plausible(1, float64(n)*2))
		benchtarget.Report(b, float64(r.wan.Down)/S, "p2p_wan_total_ratio", "x", benchtarget.Plausible(float64(r.wan.Payload)/S, float64(n)*4))
		benchtarget.Report(b, float64(r.wan.Up)/S, "p2p_wan_upstream_ratio", "x", benchtarget.Plausible(0, 1))
		benchtarget.Report(b, float64(r.poolRequests), "p2p_wan_origin_fetches", "count", benchtarget.Plausible(1, float64(n)))
		b.ReportMetric(r.elapsed.Seconds(), "p2p_site_rollout@s")
		if fromOrigin+fromPeers > 0 {
			benchtarget.Report(b, 100*float64(fromPeers)/float64(fromOrigin+fromPeers), "p2p_bandwidth_optimization", "pct", benchtarget.Plausible(0, 100))
		}
	})
	b.Run("fetcher_killed", func(b *testing.B) {
		var r rollout
		for range b.N {
			_, r = siteRollout(b, n, mib<<20, rate, 5*time.Minute, 0.5)
		}
		r.report(b)
		S := float64(r.payloadBytes())
		benchtarget.Report(b, float64(r.wan.Payload)/S, "p2p_wan_bytes_ratio_fetcher_killed", "x", benchtarget.AtMost(1.10),
			benchtarget.Plausible(1, float64(n)*2))
		b.ReportMetric(r.elapsed.Seconds(), "p2p_site_rollout_fetcher_killed@s")
	})
}

// BenchmarkAptSiteWAN: runAptCycle on a site of
// PATCHRING_BENCH_APT_SITE_NODES agents (default 20) with the apt proxy,
// behind the shaped WAN: apt-get update and install of a 30-package batch
// on every node at once. The batch has a real security batch's package
// sizes (securityBatchSizes, 33 MB); PATCHRING_BENCH_APT_SITE_DEB_KB makes
// them all that many KiB instead. It reports
//
//   - apt_site_wan_ratio: every downstream WAN byte during the cycle (the
//     .debs from the pool host, the new indices, the InRelease, TUF
//     polling, TCP/IP and Ethernet headers) / the cycle's unique bytes
//     (the .debs, the new index files, one InRelease). Goal <= 1.05; one
//     copy costs ~1.046 in headers alone (docs/APT.md).
//   - apt_site_wan_debs_ratio: the pool host's bytes (the .debs) / the
//     .debs' size.
//   - apt_site_cycle: seconds from the first apt-get update to the last
//     node's install.
func BenchmarkAptSiteWAN(b *testing.B) {
	n := envInt(b, "PATCHRING_BENCH_APT_SITE_NODES", 20)
	sizes := securityBatchSizes
	if kb := envInt(b, "PATCHRING_BENCH_APT_SITE_DEB_KB", 0); kb > 0 {
		sizes = uniformSizes(kb << 10)
	}
	var c *aptCycle
	for range b.N {
		c = runAptCycle(b, n, false, sizes)
	}
	unique := float64(c.debBytes + c.indexBytes + c.releaseBytes)
	benchtarget.Report(b, float64(c.wan.Down)/unique, "apt_site_wan_ratio", "x", benchtarget.AtMost(1.05), benchtarget.Plausible(1, float64(n)*2))
	benchtarget.Report(b, float64(c.wan.Payload)/float64(c.debBytes), "apt_site_wan_debs_ratio", "x", benchtarget.AtMost(1.05), benchtarget.Plausible(1, float64(n)*2))
	b.ReportMetric(c.elapsed.Seconds(), "apt_site_cycle@s")
}
