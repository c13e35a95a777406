//go:build linux

package sitetest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/patchring/patchring/console/report"
	"github.com/patchring/patchring/internal/testutil/consoletest"
	"github.com/patchring/patchring/platform/apt/apttest"
	"github.com/patchring/patchring/policy/credential"
)

// TestTwoSitesReportToConsole: two sites report to one real console (TLS
// pinned by the signed policy, credentials checked against fleet.json
// fetched through TUF): branch (desk-00..02) and hq (desk-03, desk-04).
// The sites are what the nodes' credentials name; they share the test's
// LAN and gossip key, and each has its own reporter.
//
//   - The console is down when the nodes start: their first records wait
//     in their outboxes and arrive when it comes up.
//   - The admin revokes desk-04 and publishes a new policy version: the
//     other nodes' new records arrive, desk-04's record of it is refused
//     by the console (posted as its own reporter would).
//   - A record edited on its way (a forgery by a reporter) and an older
//     record replayed after a newer one are refused; the same record
//     delivered twice counts once.
//   - The WAN is cut while desk-00's packages change: its record waits and
//     arrives once the WAN is back.
//   - hq goes offline for good (no route): desk-03's new record leaves on
//     a bundle (`patchring bundle export-reports` on desk-03, `patchring
//     console import` at the console).
func TestTwoSitesReportToConsole(t *testing.T) {
	t.Parallel()
	siteOf := func(i int) string {
		if i >= 3 {
			return "hq"
		}
		return "branch"
	}
	s := newSite(t, siteConfig{Nodes: 5, ReportInterval: 2 * time.Second, Site: siteOf})
	c := newConsole(t, s)
	s.origin.publishPolicy(t, fmt.Sprintf(policyConsole, "console-v1", c.addr, c.pin))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("---- console log tail:\n%s", c.logTail())
		}
	})
	s.startNodes(t)
	s.waitConverged(t, 2*time.Minute, "console-v1")
	// The console is not up yet: the first records wait (desk-00's and
	// desk-04's are kept for later).
	var first, first4 report.Envelope
	s.waitFor(t, time.Minute, "desk-00's and desk-04's first records queued", func(ctx context.Context) (bool, string) {
		q, q4 := outbox(s.nodes[0]), outbox(s.nodes[4])
		if len(q) == 0 || len(q4) == 0 {
			return false, "an outbox is empty"
		}
		first, first4 = q[0], q4[0]
		return true, ""
	})
	c.start(t, s)
	st := consoletest.OpenStore(t, c.data)
	onConsole := func(n *node) consoleNode {
		t.Helper()
		x, err := st.Node(t.Context(), n.id.String())
		if err != nil {
			t.Fatalf("%s on the console: %v", n.hostname, err)
		}
		return consoleNode{Hostname: x.Hostname, Site: x.Site, Seq: x.Seq, PolicyVersion: x.PolicyVersion}
	}
	hasPackage := func(n *node, pkg string) bool {
		t.Helper()
		ps, err := st.Packages(t.Context(), n.id.String())
		if err != nil {
			t.Fatalf("%s's packages on the console: %v", n.hostname, err)
		}
		for _, p := range ps {
			if p.Name == pkg {
				return true
			}
		}
		return false
	}
	s.waitFor(t, 2*time.Minute, "the console lists both sites", func(ctx context.Context) (bool, string) {
		sites, err := st.Sites(ctx)
		if err != nil {
			return false, err.Error()
		}
		got := map[string]int{}
		for _, x := range sites {
			got[x.Site] = x.Members
		}
		if got["branch"] == 3 && got["hq"] == 2 && len(got) == 2 {
			return true, ""
		}
		return false, fmt.Sprintf("sites %v", got)
	})
	for i, n := range s.nodes {
		node, err := st.Node(t.Context(), n.id.String())
		if err != nil || node.Hostname != n.hostname || node.Site != siteOf(i) {
			t.Errorf("%s on the console: %+v %v", n.hostname, node, err)
		}
	}
	v1 := onConsole(s.nodes[0]).PolicyVersion

	// Revocation: desk-04's records of the new policy version are refused.
	revoked := s.nodes[4]
	s.admin(t, "ca", "revoke", revoked.id.String(), "--reason", "laptop stolen")
	s.publishPolicyCLI(t, fmt.Sprintf(policyConsole, "console-v2", c.addr, c.pin)) // the CLI: it changed the repository
	s.waitFor(t, 2*time.Minute, "the other nodes' records of the new policy version", func(ctx context.Context) (bool, string) {
		for _, n := range s.nodes[:4] {
			if v := onConsole(n).PolicyVersion; v <= v1 {
				return false, fmt.Sprintf("%s at policy version %d on the console", n.hostname, v)
			}
		}
		return true, ""
	})
	// desk-04's newer records, as it would send them: its own key, its
	// (now revoked) credential (the reporter adds it when it sends). The console reads fleet.json at most a
	// minute old: until it has read the revocation, such a record is still
	// stored (a newer sequence number each time, nothing else changed).
	tmpl, _, err := report.Open(first4)
	if err != nil {
		t.Fatal(err)
	}
	cred4 := credentialFile(t, revoked)
	attempt := 0
	var refused ingestResult
	s.waitFor(t, 2*time.Minute, "the revoked node's record refused", func(ctx context.Context) (bool, string) {
		attempt++
		rec := tmpl
		rec.Seq, rec.Time = tmpl.Seq+1000+uint64(attempt), time.Now()
		env, err := report.Sign(rec, nodeKey(t, revoked))
		if err != nil {
			t.Fatal(err)
		}
		env.Credential = cred4
		res := postRecords(t, revoked.ns, c.addr, env)[0]
		switch {
		case res.Status == "refused" && strings.Contains(res.Error, "revoked"):
			refused = res
			return true, ""
		case res.Status == "refused":
			t.Fatalf("the revoked node's record refused for another reason: %+v", res)
		}
		return false, fmt.Sprintf("record %d %s (the console has not read the revocation yet)", rec.Seq, res.Status)
	})
	if node := onConsole(revoked); node.Seq >= int64(refused.Seq) {
		t.Errorf("the revoked node on the console: seq %d, want below the refused record's %d", node.Seq, refused.Seq)
	}

	// A forgery and a replay, posted from desk-01 as a reporter would:
	// desk-00's first record with its hostname edited, and that record
	// again (stored long ago, so a duplicate: it changes nothing).
	before := onConsole(s.nodes[0])
	first.Credential = credentialFile(t, s.nodes[0]) // as the reporter sends it
	forged := first
	forged.Payload = bytes.Replace(slices.Clone(first.Payload), []byte(`"desk-00"`), []byte(`"desk-99"`), 1)
	if bytes.Equal(forged.Payload, first.Payload) {
		t.Fatalf("desk-00's record does not name it: %s", first.Payload)
	}
	res := postRecords(t, s.nodes[1].ns, c.addr, forged, first)
	if res[0].Status != "refused" || !strings.Contains(res[0].Error, "signature") {
		t.Errorf("an edited record: %+v, want refused for its signature", res[0])
	}
	if res[1].Status != "duplicate" {
		t.Errorf("desk-00's first record replayed: %+v, want duplicate (not counted again)", res[1])
	}
	if after := onConsole(s.nodes[0]); after.Hostname != "desk-00" || after.Seq < before.Seq || after.PolicyVersion != before.PolicyVersion {
		t.Errorf("desk-00 on the console after the forgery and the replay: %+v, was %+v", after, before)
	}

	// A WAN cut: desk-00's packages change, its record waits for the link.
	debs := t.TempDir()
	extra := func(name string) string {
		return apttest.MustBuildDeb(t, debs, apttest.Package{Name: name, Version: "1.0", Description: "a package installed by hand",
			Files: []apttest.File{{Path: "/usr/share/" + name + "/README", Body: []byte(name + "\n")}}})
	}
	s.net.cutWAN(t)
	if err := s.nodes[0].sb.DpkgInstall(t.Context(), extra("acme-extra")); err != nil {
		t.Fatal(err)
	}
	s.waitFor(t, time.Minute, "desk-00's record with acme-extra queued", func(ctx context.Context) (bool, string) {
		return queuedWithPackage(s.nodes[0], "acme-extra"), outboxSummary(s.nodes[0])
	})
	if hasPackage(s.nodes[0], "acme-extra") {
		t.Fatal("the console got desk-00's new package list across a cut WAN")
	}
	s.net.healWAN(t)
	s.waitFor(t, 2*time.Minute, "desk-00's queued record delivered after the cut", func(ctx context.Context) (bool, string) {
		return hasPackage(s.nodes[0], "acme-extra"), "acme-extra not listed on the console"
	})

	// hq offline for good: its records leave on a bundle.
	for _, n := range s.nodes[3:] {
		run(t, "ip", "-n", n.ns, "route", "del", "default")
	}
	if err := s.nodes[3].sb.DpkgInstall(t.Context(), extra("hq-tool")); err != nil {
		t.Fatal(err)
	}
	s.waitFor(t, time.Minute, "desk-03's record with hq-tool queued", func(ctx context.Context) (bool, string) {
		return queuedWithPackage(s.nodes[3], "hq-tool"), outboxSummary(s.nodes[3])
	})
	bundle := filepath.Join(t.TempDir(), "hq-reports.json")
	if out, err := exec.Command(patchringCLI.Path(t), "--socket", s.nodes[3].sock, "bundle", "export-reports", "--out", bundle).CombinedOutput(); err != nil {
		t.Fatalf("bundle export-reports: %v\n%s", err, out)
	}
	out, err := exec.Command(patchringCLI.Path(t), "console", "import", bundle, "--data", c.data, "--fleet-repo", s.origin.tufDir).CombinedOutput()
	if err != nil {
		t.Fatalf("console import: %v\n%s", err, out)
	}
	t.Logf("console import:\n%s", out)
	if !regexp.MustCompile(`: [1-9]\d* stored`).Match(out) {
		t.Errorf("console import stored nothing:\n%s", out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "refused ") && !strings.Contains(line, revoked.id.String()) {
			t.Errorf("console import refused a record of a node in good standing: %s", line)
		}
	}
	if !hasPackage(s.nodes[3], "hq-tool") {
		t.Errorf("desk-03's record from the bundle is not on the console (import said:\n%s)", out)
	}
}

// outbox returns the records waiting in node n's reporter outbox.
func outbox(n *node) []report.Envelope {
	b, err := os.ReadFile(filepath.Join(n.dir, "state", "report-outbox.json"))
	if err != nil {
		return nil
	}
	var box struct {
		Queue []report.Envelope `json:"queue"`
	}
	if json.Unmarshal(b, &box) != nil {
		return nil
	}
	return box.Queue
}

// outboxSummary says what node n's outbox holds: each record's sequence
// number, policy version and package list length.
func outboxSummary(n *node) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s's outbox:", n.hostname)
	for _, e := range outbox(n) {
		r, _, err := report.Open(e)
		if err != nil {
			fmt.Fprintf(&b, " [%v]", err)
			continue
		}
		fmt.Fprintf(&b, " [seq %d policy %d state %q packages %d]", r.Seq, r.PolicyVersion, r.State, len(r.Packages))
	}
	return b.String()
}

// queuedWithPackage reports whether node n's outbox holds a record whose
// package list has pkg.
func queuedWithPackage(n *node, pkg string) bool {
	for _, e := range outbox(n) {
		r, _, err := report.Open(e)
		if err != nil {
			continue
		}
		for _, p := range r.Packages {
			if p.Name == pkg {
				return true
			}
		}
	}
	return false
}

// credentialFile reads node n's fleet credential.
func credentialFile(t *testing.T, n *node) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(n.dir, "state", credential.FileName))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// nodeKey reads node n's identity key (state/node.key, libp2p's
// encoding) as an ed25519 key.
func nodeKey(t *testing.T, n *node) ed25519.PrivateKey {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(n.dir, "state", "node.key"))
	if err != nil {
		t.Fatal(err)
	}
	k, err := crypto.UnmarshalPrivateKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	b, err := k.Raw()
	if err != nil || len(b) != ed25519.PrivateKeySize {
		t.Fatalf("%s's node key: %d bytes, %v", n.hostname, len(b), err)
	}
	return ed25519.PrivateKey(b)
}

// ingestResult is the console's answer for one record (console/server's
// IngestResult: this package may not link the console).
type ingestResult struct {
	Node   string `json:"node"`
	Seq    uint64 `json:"seq"`
	Status string `json:"status"`
	Error  string `json:"error"`
}

// consoleNode is what the tests read of a node on the console.
type consoleNode struct {
	Hostname, Site     string
	Seq, PolicyVersion int64
}

// postRecords posts envs to the console's ingest API from inside ns, as a
// site's reporter does (the test does not check the console's certificate:
// it plays a reporter, not a node that trusts the policy's pin).
func postRecords(t *testing.T, ns, addr string, envs ...report.Envelope) []ingestResult {
	t.Helper()
	body, err := json.Marshal(struct {
		Records []report.Envelope `json:"records"`
	}{envs})
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			return dialIn(ctx, ns, network, a)
		},
	}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Post("https://"+addr+"/api/v1/ingest", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("post records: %v", err)
	}
	defer resp.Body.Close()
	var out struct {
		Results []ingestResult `json:"results"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || len(out.Results) != len(envs) {
		t.Fatalf("post records: %s: %v (%d results for %d records)", resp.Status, err, len(out.Results), len(envs))
	}
	return out.Results
}
