package daemon

import (
	"testing"
	"time"

	"github.com/patchring/patchring/console/report"
	"github.com/patchring/patchring/daemon/apitypes"
	"github.com/patchring/patchring/daemon/vulns"
	"github.com/patchring/patchring/policy/advisory"
)

// TestReportVulnsAndDevices: findings and devices become record entries
// the console accepts: sorted, each once, the source named only when it
// differs, one the console would refuse left out (not the whole record).
func TestReportVulnsAndDevices(t *testing.T) {
	fs := []vulns.Finding{
		{Package: "libssl3", Version: "3.0.11-1~deb12u2", Source: "openssl", ID: "CVE-2026-0002", Severity: advisory.SeverityCritical, KEV: true, FixedIn: "3.0.13-1~deb12u1", Fix: vulns.FixAvailable},
		{Package: "bash", Version: "5.2.15-2", Source: "bash", ID: "CVE-2026-0001", Severity: advisory.SeverityLow, Fix: vulns.FixNone},
		{Package: "bash", Version: "5.2.15-2", Source: "bash", ID: "CVE-2026-0001", Severity: advisory.SeverityLow, Fix: vulns.FixNone},
		{Package: "bad name", Version: "1", ID: "CVE-2026-0003", Severity: advisory.SeverityHigh},
		{Package: "zlib1g", Version: "1:1.2.13", ID: "CVE-2026-0004"},
	}
	vs := reportVulns(fs)
	if len(vs) != 3 || vs[0].ID != "CVE-2026-0001" || vs[0].Source != "" || vs[1].Source != "openssl" || !vs[1].Urgent() || vs[2].Severity != report.SeverityUnknown {
		t.Fatalf("vulns %+v", vs)
	}
	r := report.Record{Vulns: vs, VulnsDigest: report.DigestVulns(vs)}
	for _, v := range r.Vulns {
		if err := v.Check(); err != nil {
			t.Fatal(err)
		}
	}
	seen := time.Date(2026, 12, 4, 10, 17, 3, 5, time.UTC)
	id := report.NodeID(make([]byte, 32))
	ds := reportDevices([]apitypes.UnmanagedDevice{
		{MAC: "B8:27:EB:00:00:07", Addrs: []string{"10.0.0.7"}, FirstSeen: seen, LastSeen: seen, SeenBy: []string{id}},
		{MAC: "00:1b:a9:00:00:01", Vendor: "Brother", Addrs: []string{"10.0.0.9", "fe80::1"}, FirstSeen: seen.Add(-time.Hour), LastSeen: seen},
		{MAC: "00:1b:a9:00:00:02", Addrs: []string{"not-an-address"}, FirstSeen: seen, LastSeen: seen},
	})
	if len(ds) != 2 || ds[0].MAC != "00:1b:a9:00:00:01" || ds[1].MAC != "b8:27:eb:00:00:07" || !ds[1].FirstSeen.Equal(seen.Truncate(time.Second)) {
		t.Fatalf("devices %+v", ds)
	}
}
