package membership

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/patchring/patchring/p2p/exchange"
	"github.com/patchring/patchring/p2p/gossip"
)

// registerMetrics exposes the site's members and the payload traffic to
// Prometheus (read when scraped); r nil registers nothing.
func (f *Membership) registerMetrics(r prometheus.Registerer) {
	if r == nil {
		return
	}
	r.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "patchring_fleet_members_alive", Help: "Live members of the site's gossip pool, this node included.",
	}, func() float64 {
		n := 0
		for _, m := range f.Fleet().Members {
			if m.Liveness == "alive" || m.Local {
				n++
			}
		}
		return float64(n)
	}))
	for _, reason := range gossip.RefusalReasons {
		r.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "patchring_gossip_admission_refused_total", Help: "Gossip members refused admission (or dropped) for lack of a valid credential, by reason.",
			ConstLabels: prometheus.Labels{"reason": reason},
		}, func() float64 { return float64(f.g.RefusalCounts()[reason]) }))
	}
	r.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "patchring_fleet_members_refused", Help: "Nodes the site's pool refuses now (no valid credential).",
	}, func() float64 { return float64(len(f.g.Refused())) }))
	if f.x != nil {
		registerExchangeMetrics(r, f.x.ServerStats)
	}
	for _, src := range []string{"peers", "origin"} {
		r.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "patchring_payload_bytes_total", Help: "Payload bytes received, by source (Delivery Optimization's figure is peers / all).",
			ConstLabels: prometheus.Labels{"from": src},
		}, func() float64 {
			p := f.Peers()
			if src == "peers" {
				return float64(p.FromPeers)
			}
			return float64(p.FromOrigin)
		}))
	}
}

// registerExchangeMetrics counts the inbound sessions of the payload
// exchange (protocol "blob": /patchring/blob/1 and /2; "meta":
// /patchring/meta/1) by how they ended, and their refusals by reason. A
// hostile member's session shows up as malformed, timeout or broken, or
// as a refusal.
func registerExchangeMetrics(r prometheus.Registerer, stats func() exchange.ServerStats) {
	pick := func(proto string) func() exchange.SessionStats {
		return func() exchange.SessionStats {
			if proto == "meta" {
				return stats().File
			}
			return stats().Blob
		}
	}
	for _, proto := range []string{"blob", "meta"} {
		get := pick(proto)
		for outcome, f := range map[string]func(exchange.SessionStats) int64{
			"clean":     func(s exchange.SessionStats) int64 { return s.Clean },
			"malformed": func(s exchange.SessionStats) int64 { return s.Malformed },
			"timeout":   func(s exchange.SessionStats) int64 { return s.TimedOut },
			"broken":    func(s exchange.SessionStats) int64 { return s.Broken },
		} {
			r.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "patchring_p2p_sessions_total", Help: "Inbound exchange sessions by protocol and how they ended.",
				ConstLabels: prometheus.Labels{"protocol": proto, "outcome": outcome},
			}, func() float64 { return float64(f(get())) }))
		}
		for reason, f := range map[string]func(exchange.SessionStats) int64{
			"busy":        func(s exchange.SessionStats) int64 { return s.RefusedBusy },
			"peer_busy":   func(s exchange.SessionStats) int64 { return s.RefusedPeerBusy },
			"bad_request": func(s exchange.SessionStats) int64 { return s.RefusedBadRequest },
			"not_found":   func(s exchange.SessionStats) int64 { return s.RefusedNotFound },
			"rate":        func(s exchange.SessionStats) int64 { return s.RefusedRate },
			"other":       func(s exchange.SessionStats) int64 { return s.RefusedOther },
		} {
			r.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "patchring_p2p_refused_total", Help: "Exchange requests refused, by protocol and reason.",
				ConstLabels: prometheus.Labels{"protocol": proto, "reason": reason},
			}, func() float64 { return float64(f(get())) }))
		}
		for what, f := range map[string]func(exchange.SessionStats) int64{
			"session": func(s exchange.SessionStats) int64 { return s.ThrottledSessions },
			"request": func(s exchange.SessionStats) int64 { return s.ThrottledRequests },
		} {
			r.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "patchring_p2p_throttled_total", Help: "Exchange sessions and requests that waited for their peer's rate (a flooding peer).",
				ConstLabels: prometheus.Labels{"protocol": proto, "kind": what},
			}, func() float64 { return float64(f(get())) }))
		}
	}
}
