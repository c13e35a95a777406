package membership

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/patchring/patchring/p2p/discovery"
	"github.com/patchring/patchring/p2p/gossip"
)

// startDiscovery opens the LAN discovery beacon beside the gossip pool g
// (gossip.discovery): it announces g's address on the site's subnet and
// offers the addresses it hears to g as seeds. It returns nil, nil when
// discovery is off. The beacon authenticates with keys derived from the
// node's current keyring, so it follows key rotations.
func (f *Membership) startDiscovery(g *gossip.Gossip) (*discovery.Beacon, error) {
	cfg := f.cfg.Gossip
	if !cfg.Discovery {
		return nil, nil
	}
	addr, err := netip.ParseAddrPort(g.LocalAddr())
	if err != nil {
		return nil, fmt.Errorf("gossip.discovery: gossip address %q: %w", g.LocalAddr(), err)
	}
	var targets []netip.Addr
	for i, t := range cfg.DiscoveryTargets {
		a, err := netip.ParseAddr(strings.TrimSpace(t))
		if err != nil {
			return nil, fmt.Errorf("gossip.discovery_targets[%d]: %w", i, err)
		}
		targets = append(targets, a)
	}
	kr := f.kr
	b, err := discovery.New(discovery.Config{
		NodeID: g.NodeID(),
		Label:  cfg.Label,
		Keys: func() [][]byte {
			kr.mu.Lock()
			defer kr.mu.Unlock()
			return slices.Clone(kr.keys) // keys are never changed in place
		},
		Gossip:   addr,
		Port:     cfg.DiscoveryPort,
		Targets:  targets,
		Sink:     g,
		PoolSize: g.LiveMembers,
	}, f.log)
	if err != nil {
		return nil, fmt.Errorf("gossip.discovery (port %d; turn it off with gossip.discovery: false): %w", cfg.DiscoveryPort, err)
	}
	registerDiscoveryMetrics(f.cfg.Metrics, b)
	return b, nil
}

// registerDiscoveryMetrics exposes the beacon's counters.
func registerDiscoveryMetrics(reg prometheus.Registerer, b *discovery.Beacon) {
	if reg == nil {
		return
	}
	results := []struct {
		name string
		get  func(discovery.Stats) uint64
	}{
		{"accepted", func(s discovery.Stats) uint64 { return s.Accepted }},
		{"own", func(s discovery.Stats) uint64 { return s.Own }},
		{"oversized", func(s discovery.Stats) uint64 { return s.Oversized }},
		{"malformed", func(s discovery.Stats) uint64 { return s.Malformed }},
		{"bad_auth", func(s discovery.Stats) uint64 { return s.BadAuth }},
		{"stale", func(s discovery.Stats) uint64 { return s.Stale }},
		{"replayed", func(s discovery.Stats) uint64 { return s.Replayed }},
		{"foreign", func(s discovery.Stats) uint64 { return s.Foreign }},
		{"rejected", func(s discovery.Stats) uint64 { return s.Rejected }},
	}
	for _, r := range results {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "patchring_discovery_received_total", Help: "LAN discovery datagrams received, by what became of them.",
			ConstLabels: prometheus.Labels{"result": r.name},
		}, func() float64 { return float64(r.get(b.Stats())) }))
	}
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "patchring_discovery_sent_total", Help: "LAN discovery beacons sent.",
	}, func() float64 { return float64(b.Stats().Sent) }))
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "patchring_discovery_send_errors_total", Help: "LAN discovery beacons that could not be sent.",
	}, func() float64 { return float64(b.Stats().SendErrors) }))
}
