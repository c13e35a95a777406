package unmanaged

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/patchring/patchring/platform/neighbor"
	"github.com/patchring/patchring/policy"
)

// BenchmarkObserveFlood: a LAN flooded with new MACs (spoofed ARP) against
// a full table at the largest cap costs little per frame.
func BenchmarkObserveFlood(b *testing.B) {
	s := New(Config{NodeID: "A", OS: newFakeOS(ifcA), Policy: policyOf(policy.Unmanaged{MaxPerNode: policy.MaxUnmanagedPerNode})})
	tick(b, s)
	ip := netip.MustParseAddr("10.200.1.50")
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		var m neighbor.MAC
		m[0] = 0x02
		binary.BigEndian.PutUint32(m[2:], uint32(i))
		s.Observe(neighbor.Observation{MAC: m, Addrs: []netip.Addr{ip}, Source: neighbor.SourceARP, Ifindex: 2})
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns-per-frame@ns")
	if n := len(s.devices); n > policy.MaxUnmanagedPerNode {
		b.Fatalf("%d devices over the cap", n)
	}
}

func TestMetricsCount(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	s := New(Config{NodeID: "A", OS: newFakeOS(ifcA), Metrics: reg, Policy: policyOf(policy.Unmanaged{MaxPerNode: 1})})
	tick(t, s)
	s.Observe(obs(printer, neighbor.SourceARP, "", "10.200.1.50"))
	s.Observe(obs(camera, neighbor.SourceARP, "", "10.200.1.60")) // evicts the printer
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch {
			case m.GetGauge() != nil:
				got[mf.GetName()] = m.GetGauge().GetValue()
			case m.GetCounter() != nil:
				got[mf.GetName()] = m.GetCounter().GetValue()
			}
		}
	}
	want := map[string]float64{"patchring_unmanaged_devices": 1, "patchring_unmanaged_observed": 1, "patchring_unmanaged_evicted_total": 1, "patchring_unmanaged_probes_total": 0}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
}
