package daemon

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/patchring/patchring/daemon/engine"
	"github.com/patchring/patchring/p2p/exchange"
)

// registerMetrics exposes the agent's state to Prometheus. Values are read
// from the subsystems when scraped, so nothing is counted twice.
func (d *Daemon) registerMetrics() {
	r := d.metrics
	if d.inv != nil {
		r.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "patchring_inventory_packages", Help: "Installed packages in the last inventory.",
		}, func() float64 {
			if s := d.inv.Latest(); s != nil && s.Packages != nil {
				return float64(s.Packages.Counts.Present)
			}
			return 0
		}))
		r.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "patchring_inventory_scan_milliseconds", Help: "Wall time of the last inventory scan.",
		}, func() float64 {
			if s := d.inv.Latest(); s != nil {
				return s.ScanMS
			}
			return 0
		}))
	}
	if d.pol != nil {
		r.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "patchring_policy_timestamp_version", Help: "Version of the verified TUF timestamp the agent acts on.",
		}, func() float64 { return float64(d.pol.TimestampVersion()) }))
	}
	if d.engine != nil {
		for _, o := range []engine.Outcome{engine.OutcomeInstalled, engine.OutcomeRolledBack, engine.OutcomeFailed, engine.OutcomeAborted} {
			r.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "patchring_transactions_total", Help: "Install and rollback transactions by outcome.",
				ConstLabels: prometheus.Labels{"outcome": string(o)},
			}, func() float64 {
				txs, err := d.engine.History(0)
				if err != nil {
					return 0
				}
				n := 0
				for _, tx := range txs {
					if tx.Outcome == o {
						n++
					}
				}
				return float64(n)
			}))
		}
	}
	if d.reboot != nil {
		r.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "patchring_reboot_required", Help: "1 while a reboot is required.",
		}, func() float64 {
			if d.reboot.RebootStatus().Required {
				return 1
			}
			return 0
		}))
	}
	if d.fleet != nil {
		r.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "patchring_fleet_members_alive", Help: "Live members of the site's gossip pool, this node included.",
		}, func() float64 {
			n := 0
			for _, m := range d.fleet.Fleet().Members {
				if m.Liveness == "alive" || m.Local {
					n++
				}
			}
			return float64(n)
		}))
		if f := d.fleet; f.x != nil {
			registerExchangeMetrics(r, f.x.ServerStats)
		}
		for _, src := range []string{"peers", "origin"} {
			r.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "patchring_payload_bytes_total", Help: "Payload bytes received, by source (Delivery Optimization's figure is peers / all).",
				ConstLabels: prometheus.Labels{"from": src},
			}, func() float64 {
				p := d.fleet.Peers()
				if src == "peers" {
					return float64(p.FromPeers)
				}
				return float64(p.FromOrigin)
			}))
		}
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
			"other":       func(s exchange.SessionStats) int64 { return s.RefusedOther },
		} {
			r.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "patchring_p2p_refused_total", Help: "Exchange requests refused, by protocol and reason.",
				ConstLabels: prometheus.Labels{"protocol": proto, "reason": reason},
			}, func() float64 { return float64(f(get())) }))
		}
	}
}
