package server

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/patchring/patchring/console/report"
	"github.com/patchring/patchring/console/store"
)

// fleetVersion has an epoch and a tilde, which URLs must carry.
const fleetVersion = "1:3.0.15-1~deb12u1"

// seedFleet reports a release rolling out over three hours at two sites
// (one failure), nodes exposed to two CVEs, and berlin's reporter listing
// two unmanaged devices. It returns the nodes.
func seedFleet(t *testing.T, f *fixture) []testNode {
	t.Helper()
	crit := report.Vuln{ID: "CVE-2026-1111", Package: "libssl3", Version: "3.0.14-1~deb12u2", Source: "openssl", FixedIn: "3.0.15-1~deb12u1", Severity: report.SeverityCritical, KEV: true, Fix: "approved"}
	low := report.Vuln{ID: "CVE-2026-2222", Package: "bash", Version: "5.2.15-2", Severity: report.SeverityLow, Fix: "none"}
	var nodes []testNode
	var envs []report.Envelope
	for i := range 6 {
		n := newTestNode(byte(60 + i))
		nodes = append(nodes, n)
		site, ring := []string{"berlin", "lyon"}[i%2], []string{"pilot", "pilot", "broad", "broad", "broad", "broad"}[i]
		envs = append(envs, n.sign(t, 1, func(r *report.Record) {
			r.Site, r.Ring, r.Hostname = site, ring, fmt.Sprintf("%s-ws%02d", site, i)
			res := report.ResultSucceeded
			if i == 3 {
				res = report.ResultFailed
			}
			if i < 5 {
				r.Outcomes = []report.Outcome{{Source: "apt", Package: "libssl3", Version: fleetVersion, Result: res, Reason: "x", At: t0.Add(time.Duration(10+i*35) * time.Minute)}}
			}
			vs := []report.Vuln{low}
			if i >= 3 {
				vs = append(vs, crit)
			}
			r.Vulns, r.VulnsDigest = vs, report.DigestVulns(vs)
		}))
	}
	devs := []report.Device{
		{MAC: "00:1b:a9:aa:bb:01", Vendor: "Brother Industries, Ltd.", Addrs: []string{"192.168.10.40"}, Hostname: "printer-2f",
			FirstSeen: t0.Add(-72 * time.Hour), LastSeen: t0, SeenBy: []string{nodes[0].id, nodes[2].id}},
		{MAC: "b8:27:eb:00:00:07", Vendor: "Raspberry Pi Foundation", Addrs: []string{"192.168.10.77", "fe80::ba27:ebff:fe00:7"},
			FirstSeen: t0.Add(-2 * time.Hour), LastSeen: t0, SeenBy: []string{nodes[4].id}},
	}
	envs = append(envs, nodes[0].sign(t, 2, func(r *report.Record) {
		r.Site, r.Ring, r.Hostname = "berlin", "pilot", "berlin-ws00"
		r.Unmanaged, r.UnmanagedDigest = devs, report.DigestDevices(devs)
	}))
	for i, res := range f.ingest(t, envs...) {
		if res.Status != "stored" {
			t.Fatalf("record %d: %+v", i, res)
		}
	}
	return nodes
}

func TestFleetViews(t *testing.T) {
	f := newFixture(t)
	f.account(t, "vic", RoleViewer)
	nodes := seedFleet(t, f)
	b := newBrowser(t, f.srv.URL)
	if code := b.login("vic", "password-of-vic"); code != http.StatusSeeOther {
		t.Fatalf("login: %d", code)
	}
	getJSON := func(path string, v any) {
		t.Helper()
		req, _ := http.NewRequest("GET", f.srv.URL+path, nil)
		code, body := b.do(req)
		if code != 200 {
			t.Fatalf("%s: %d %s", path, code, body)
		}
		if err := json.Unmarshal([]byte(body), v); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	getCSV := func(path string) [][]string {
		t.Helper()
		code, body := b.get(path)
		recs, err := csv.NewReader(strings.NewReader(body)).ReadAll()
		if code != 200 || err != nil {
			t.Fatalf("%s: %d %v\n%s", path, code, err, body)
		}
		return recs
	}

	// Rollouts: the list links to the release; its page has the chart
	// and the table; JSON and CSV carry the same series.
	code, page := b.get("/rollouts")
	id := store.ReleaseID("apt", "libssl3", fleetVersion)
	if code != 200 || !strings.Contains(page, `href="/rollouts/`+id+`"`) {
		t.Fatalf("rollouts %d:\n%s", code, page)
	}
	code, page = b.get("/rollouts/" + id + "?bucket=1h")
	if code != 200 || !strings.Contains(page, `<svg id="chart"`) || strings.Count(page, "<polyline") != 8 || !strings.Contains(page, "broad @ lyon failed") ||
		!strings.Contains(page, "<td>broad</td><td>lyon</td><td>2</td><td>1</td><td>0</td><td>1</td><td>0.0%</td>") {
		t.Fatalf("rollout page %d:\n%s", code, page)
	}
	var ro store.Rollout
	getJSON("/api/v1/rollouts/"+id+"?bucket=1h", &ro)
	if ro.Release.Version != fleetVersion || ro.Release.Nodes != 5 || len(ro.Times) != 3 || len(ro.Series) != 4 {
		t.Fatalf("rollout JSON %+v", ro)
	}
	// broad@lyon: ws03 failed at 115 min, ws05 never reported.
	if s := ro.Series[1]; s.Ring != "broad" || s.Site != "lyon" || s.Nodes != 2 || fmt.Sprint(s.Points) != "[{0 0 0} {1 0 1} {1 0 1}]" {
		t.Fatalf("broad at lyon: %+v", s)
	}
	recs := getCSV("/rollouts/" + id + "/rollout.csv?bucket=1h")
	if len(recs) != 1+3*4 || strings.Join(recs[0], ",") != "Until,Ring,Site,Nodes,Reporting,Succeeded,Failed" {
		t.Fatalf("rollout CSV %q", recs)
	}
	if code, _ := b.get("/rollouts/apt/libssl3/9.9"); code != http.StatusNotFound {
		t.Fatalf("unknown release: %d", code)
	}
	if code, _ := b.get("/rollouts/" + id + "?bucket=1s"); code != http.StatusBadRequest {
		t.Fatalf("a one-second step: %d", code)
	}

	// Vulnerabilities: the fleet's exposure, the urgent one first; by CVE
	// and by the source package the nodes exposed, with their sites.
	var vp store.VulnsPage
	getJSON("/api/v1/vulns", &vp)
	if len(vp.Exposures) != 2 || vp.Exposures[0].ID != "CVE-2026-1111" || vp.Exposures[0].Nodes != 3 || len(vp.Exposures[0].Sites) != 2 || vp.Nodes != nil {
		t.Fatalf("vulns JSON %+v", vp)
	}
	getJSON("/api/v1/vulns?cve=cve-2026-1111&site=lyon", &vp)
	if len(vp.Nodes) != 2 || vp.Nodes[0].Hostname != "lyon-ws03" || vp.Nodes[1].Hostname != "lyon-ws05" || !vp.Nodes[0].KEV {
		t.Fatalf("nodes exposed to CVE-2026-1111 at lyon: %+v", vp.Nodes)
	}
	recs = getCSV("/vulns.csv?package=openssl")
	if len(recs) != 4 || recs[0][0] != "Host" || recs[1][0] != "berlin-ws04" || recs[1][6] != "3.0.15-1~deb12u1" {
		t.Fatalf("vulns CSV for openssl %q", recs)
	}
	recs = getCSV("/vulns.csv")
	if len(recs) != 3 || recs[1][0] != "CVE-2026-1111" || recs[2][7] != "berlin (3), lyon (3)" {
		t.Fatalf("vulns CSV %q", recs)
	}
	code, page = b.get("/vulns?kev=1")
	if code != 200 || !strings.Contains(page, `id="filter"`) || !strings.Contains(page, `href="/vulns.csv?kev=1"`) || strings.Contains(page, "CVE-2026-2222") {
		t.Fatalf("vulns page with KEV filter %d:\n%s", code, page)
	}
	if code, _ := b.get("/vulns?kev=maybe"); code != http.StatusBadRequest {
		t.Fatalf("kev=maybe: %d", code)
	}

	// Unmanaged devices: berlin's reporter's list, with the members'
	// hostnames.
	var devs []store.UnmanagedDevice
	getJSON("/api/v1/unmanaged?site=berlin", &devs)
	if len(devs) != 2 || devs[0].Hostname != "printer-2f" || strings.Join(devs[0].SeenByHosts, " ") != "berlin-ws00 berlin-ws02" ||
		devs[0].ReportedBy != nodes[0].id || devs[1].Addrs[1] != "fe80::ba27:ebff:fe00:7" {
		t.Fatalf("unmanaged JSON %+v", devs)
	}
	recs = getCSV("/unmanaged.csv")
	if len(recs) != 3 || recs[1][1] != "00:1b:a9:aa:bb:01" || recs[1][2] != "Brother Industries, Ltd." || recs[2][8] != "berlin-ws00" {
		t.Fatalf("unmanaged CSV %q", recs)
	}
	if code, page := b.get("/unmanaged?site=" + url.QueryEscape("lyon")); code != 200 || !strings.Contains(page, "nothing to show") {
		t.Fatalf("lyon's unmanaged devices %d:\n%s", code, page)
	}
}
