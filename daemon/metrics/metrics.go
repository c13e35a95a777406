// Package metrics owns the agent's Prometheus metrics: the registry, the
// gauges and counters read from the parts when scraped (so nothing is
// counted twice), and the /metrics server, which listens on loopback only.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/patchring/patchring/daemon/apitypes"
	"github.com/patchring/patchring/daemon/aptproxy"
	"github.com/patchring/patchring/daemon/engine"
	pinv "github.com/patchring/patchring/platform/inventory"
)

// Inventory is the inventory loop as the metrics read it.
type Inventory interface {
	Latest() *pinv.Snapshot
}

// Policy is the policy service as the metrics read it.
type Policy interface {
	TimestampVersion() int64
}

// Engine is the update engine as the metrics read it.
type Engine interface {
	History(limit int) ([]*engine.Tx, error)
}

// Reboot is the reboot orchestrator as the metrics read it.
type Reboot interface {
	RebootStatus() apitypes.RebootStatus
}

// AptProxy is the apt proxy as the metrics read it.
type AptProxy interface {
	Stats() aptproxy.Stats
}

// Sources are the parts the metrics are read from. A nil source (a part
// that is off) has no metrics.
type Sources struct {
	Inventory Inventory
	Policy    Policy
	Engine    Engine
	Reboot    Reboot
	AptProxy  AptProxy
}

// NewRegistry returns a registry with the Go runtime's and the process's
// collectors. Parts that count for themselves (the site membership)
// register on it as they are built; Register adds the rest.
func NewRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// Register adds the agent's metrics read from each source that is on.
func Register(r prometheus.Registerer, src Sources) {
	if inv := src.Inventory; inv != nil {
		r.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "patchring_inventory_packages", Help: "Installed packages in the last inventory.",
		}, func() float64 {
			if s := inv.Latest(); s != nil && s.Packages != nil {
				return float64(s.Packages.Counts.Present)
			}
			return 0
		}))
		r.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "patchring_inventory_scan_milliseconds", Help: "Wall time of the last inventory scan.",
		}, func() float64 {
			if s := inv.Latest(); s != nil {
				return s.ScanMS
			}
			return 0
		}))
	}
	if pol := src.Policy; pol != nil {
		r.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "patchring_policy_timestamp_version", Help: "Version of the verified TUF timestamp the agent acts on.",
		}, func() float64 { return float64(pol.TimestampVersion()) }))
	}
	if px := src.AptProxy; px != nil {
		for _, k := range []aptproxy.Kind{aptproxy.KindRelease, aptproxy.KindIndex, aptproxy.KindPackage} {
			for _, from := range []string{"vendor", "peers", "store"} {
				r.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
					Name: "patchring_apt_bytes_total", Help: "Bytes the apt proxy handed to apt, by kind of file and where they came from (vendor: the WAN).",
					ConstLabels: prometheus.Labels{"kind": k.String(), "source": from},
				}, func() float64 {
					c := px.Stats()[k.String()]
					switch from {
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
			}, func() float64 { return float64(px.Stats()[k.String()].Refused) }))
		}
	}
	if eng := src.Engine; eng != nil {
		for _, o := range []engine.Outcome{engine.OutcomeInstalled, engine.OutcomeRolledBack, engine.OutcomeFailed, engine.OutcomeAborted} {
			r.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "patchring_transactions_total", Help: "Install and rollback transactions by outcome.",
				ConstLabels: prometheus.Labels{"outcome": string(o)},
			}, func() float64 {
				txs, err := eng.History(0)
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
	if rb := src.Reboot; rb != nil {
		r.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "patchring_reboot_required", Help: "1 while a reboot is required.",
		}, func() float64 {
			if rb.RebootStatus().Required {
				return 1
			}
			return 0
		}))
	}
}

// Listen opens the metrics listener on addr (the metrics_listen setting),
// which must be a loopback address or localhost.
func Listen(addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("metrics_listen %q: %w", addr, err)
	}
	ip := net.ParseIP(host)
	if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("metrics_listen %q: metrics are served on loopback only; use e.g. 127.0.0.1:9273", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics_listen: %w", err)
	}
	return ln, nil
}

// Serve serves g's metrics at /metrics on ln until ctx ends, then closes
// ln. A cancelled context is a clean stop.
func Serve(ctx context.Context, ln net.Listener, g prometheus.Gatherer) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	stop := context.AfterFunc(ctx, func() { hs.Close() })
	defer stop()
	if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve metrics: %w", err)
	}
	return nil
}
