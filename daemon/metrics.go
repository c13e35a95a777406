package daemon

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/patchring/patchring/daemon/aptproxy"
	"github.com/patchring/patchring/daemon/engine"
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
	if d.aptPx != nil {
		for _, k := range []aptproxy.Kind{aptproxy.KindRelease, aptproxy.KindIndex, aptproxy.KindPackage} {
			for _, src := range []string{"vendor", "peers", "store"} {
				r.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
					Name: "patchring_apt_bytes_total", Help: "Bytes the apt proxy handed to apt, by kind of file and where they came from (vendor: the WAN).",
					ConstLabels: prometheus.Labels{"kind": k.String(), "source": src},
				}, func() float64 {
					c := d.aptPx.Stats()[k.String()]
					switch src {
					case "vendor":
						return float64(c.FromVendor)
					case "peers":
						return float64(c.FromPeers)
					}
					return float64(c.FromStore)
				}))
			}
			r.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "patchring_apt_refused_total", Help: "Files the apt proxy refused to hand to apt because they failed verification.",
				ConstLabels: prometheus.Labels{"kind": k.String()},
			}, func() float64 { return float64(d.aptPx.Stats()[k.String()].Refused) }))
		}
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
}
