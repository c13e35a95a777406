package reporter

import (
	"testing"
	"time"

	"github.com/patchring/patchring/internal/benchtarget"
	"github.com/patchring/patchring/internal/testutil/consoletest"
	"github.com/patchring/patchring/policy/credential"
	"github.com/patchring/patchring/policy/credential/credtest"
)

// BenchmarkReportWANBytesPerNodeDay: a site of 50 nodes with 1,500
// packages each reports every 15 minutes for a simulated day in steady
// state (nothing changes: the daily heartbeat only), after the first
// full records. The figure is the bytes the console read per node for
// that day: HTTP requests with their headers, plain HTTP (TLS adds its
// records and handshakes). Goal (#15): at most 20 KB.
func BenchmarkReportWANBytesPerNodeDay(b *testing.B) {
	const nodes = 50
	for range b.N {
		ca := credtest.NewCA(b)
		c := consoletest.Start(b, fleetOf(ca.Trust(b, credential.Revocations{})))
		s := newSite(b, ca, nodes, c.URL(), 1500)
		s.clock = s.now()
		if err := s.round(b); err != nil { // the first full records
			b.Fatal(err)
		}
		before := c.BytesRead()
		for range 24 * 4 {
			s.mu.Lock()
			s.clock = s.clock.Add(15 * time.Minute)
			s.mu.Unlock()
			if err := s.round(b); err != nil {
				b.Fatal(err)
			}
		}
		day := c.BytesRead() - before
		// A day without even the heartbeat (0) or with package lists
		// resent (~100 KB) is a broken measurement.
		benchtarget.Report(b, float64(day)/nodes, "report_wan_bytes_per_node_day", "B",
			benchtarget.AtMost(20_000), benchtarget.Plausible(100, 50_000))
		n, err := c.Store.Count(b.Context())
		if err != nil || n.Nodes != nodes {
			b.Fatalf("console has %+v nodes (%v)", n, err)
		}
		c.Stop()
	}
}
