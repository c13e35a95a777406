package reporter

import (
	"fmt"
	"testing"
	"time"

	"github.com/patchring/patchring/console/report"
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
		// Each node is exposed to 25 vulnerabilities and the site has 20
		// unmanaged devices, seen again every round: the vulnerabilities'
		// digest travels in every record, their list only the first time;
		// the devices' list goes again each time their rounded last
		// sighting moves (reporter.LastSeenStep).
		for _, a := range s.agents {
			for v := range 25 {
				a.vulns = append(a.vulns, report.Vuln{ID: fmt.Sprintf("CVE-2026-%04d", v), Package: fmt.Sprintf("pkg%05d", v+1), Version: "1.2.3-4+deb12u1",
					FixedIn: "1.2.3-4+deb12u2", Severity: report.SeverityHigh, Fix: "available"})
			}
		}
		for d := range 20 {
			s.devices = append(s.devices, report.Device{MAC: fmt.Sprintf("00:1b:a9:00:00:%02x", d), Vendor: "Brother Industries, Ltd.",
				Addrs: []string{fmt.Sprintf("192.168.1.%d", 100+d)}, FirstSeen: s.clock.Add(-time.Hour), SeenBy: s.members[:2]})
		}
		s.liveDevices = true               // seen again every round
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
