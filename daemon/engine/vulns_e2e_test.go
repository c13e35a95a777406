package engine_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchring/patchring/daemon/engine"
	"github.com/patchring/patchring/daemon/vulns"
	"github.com/patchring/patchring/platform/apt/apttest"
	"github.com/patchring/patchring/platform/dpkgstatus"
	pinv "github.com/patchring/patchring/platform/inventory"
	"github.com/patchring/patchring/policy"
	"github.com/patchring/patchring/policy/advisory"
	"github.com/patchring/patchring/policy/trust"
	"github.com/patchring/patchring/policy/tufrepo"
)

// urgentPolicy adds the rule: KEV or critical skips the ring's
// deferral.
const urgentPolicy = `urgent:
  - name: kev-or-critical
    kev: true
    min_severity: critical
    no_deferral: true
    reboot_deadline: 24h
`

// TestVulnerabilityFixEndToEnd: a signed advisory database says acme-tool
// < 1.1 is vulnerable to CVE-2026-1000 (critical, KEV) and acme-lib to
// CVE-2026-2000 with no fix. A node of ring broad (2 days' deferral) is
// exposed; the update to 1.1 is approved by the KEV rule without the
// deferral, installed with real apt in a sandbox, and the exposure clears;
// acme-lib stays exposed without a fix.
func TestVulnerabilityFixEndToEnd(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, apttest.Package{})
	lib := apttest.MustBuildDeb(t, t.TempDir(), apttest.Package{Name: "acme-lib", Version: "1.0",
		Files: []apttest.File{{Path: "/usr/share/acme-lib/VERSION", Body: []byte("1.0\n")}}})

	// The admin publishes the advisories as signed targets; the agent
	// verifies them from its trusted root.
	base := t.TempDir()
	repoDir := filepath.Join(base, "repo")
	repo, err := tufrepo.Init(repoDir, filepath.Join(base, "keys"), tufrepo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cvss := []advisory.OSVSeverity{{Type: "CVSS_V3", Score: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}}
	recs := []*advisory.OSV{
		{ID: "DSA-9100-1", Modified: "2026-12-01T00:00:00Z", Upstream: []string{"CVE-2026-1000"}, Severity: cvss,
			Affected: []advisory.OSVAffected{{Package: advisory.OSVPackage{Ecosystem: "Debian:12", Name: "acme-tool"},
				Ranges: []advisory.OSVRange{{Type: "ECOSYSTEM", Events: []advisory.OSVEvent{{Introduced: "0"}, {Fixed: "1.1"}}}}}}},
		{ID: "DEBIAN-CVE-2026-2000", Modified: "2026-12-01T00:00:00Z", Upstream: []string{"CVE-2026-2000"},
			Affected: []advisory.OSVAffected{{Package: advisory.OSVPackage{Ecosystem: "Debian:12", Name: "acme-lib"},
				Ranges:            []advisory.OSVRange{{Type: "ECOSYSTEM", Events: []advisory.OSVEvent{{Introduced: "0"}}}},
				EcosystemSpecific: []byte(`{"urgency":"high"}`)}}},
	}
	kev := &advisory.KEVCatalog{CatalogVersion: "2026.12.01", Vulnerabilities: []advisory.KEVEntry{{CveID: "CVE-2026-1000"}}}
	db, _, err := advisory.Build(recs, advisory.BuildOptions{Version: 1, KEV: kev})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.PublishAdvisories(db); err != nil {
		t.Fatal(err)
	}
	root, err := repo.RootJSON()
	if err != nil {
		t.Fatal(err)
	}
	tc, err := trust.New(trust.Config{TrustedRoot: root, StateDir: filepath.Join(base, "tuf"), Sources: []trust.Source{&trust.DirSource{Dir: repoDir}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tc.Refresh(ctx); err != nil {
		t.Fatal(err)
	}

	// The node's inventory is its sandbox's dpkg database.
	var n *node
	inventory := func() *pinv.Snapshot {
		pkgs, err := dpkgstatus.ReadDB(filepath.Join(n.sb.AdminDir, "status"))
		if err != nil {
			t.Errorf("read dpkg status: %v", err)
			return nil
		}
		snap := &pinv.Snapshot{OS: &pinv.OSInfo{ID: "debian", VersionID: "12"}, Packages: &pinv.Packages{}}
		for _, p := range pkgs {
			snap.Packages.Items = append(snap.Packages.Items, pinv.Package{Manager: "dpkg", Name: p.Name, Version: p.Version,
				Source: p.Source, SourceVersion: p.SourceVersion, Status: string(p.State)})
		}
		return snap
	}
	vs, err := vulns.New(vulns.Config{Targets: tc, StateDir: t.TempDir(), Inventory: inventory})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := vs.Refresh(ctx); err != nil || res.Version != 1 {
		t.Fatalf("advisories: %+v %v", res, err)
	}
	// The update asks for a restart; the urgent rule's reboot_deadline
	// must reach the reboot logic with it.
	type urgentReboot struct {
		deadline time.Duration
		rule     string
	}
	var urgent []urgentReboot
	engineConfigHook = func(c *engine.Config) {
		c.Vulns = vs.Fixes
		c.OnUrgentReboot = func(_ time.Time, _ string, _ []string, deadline time.Duration, rule string) {
			urgent = append(urgent, urgentReboot{deadline, rule})
		}
	}
	t.Cleanup(func() { engineConfigHook = nil })
	n = w.newNode(t, "broad-1", nil, mustPolicy(t, urgentPolicy))
	if err := n.sb.DpkgInstall(ctx, lib); err != nil {
		t.Fatal(err)
	}

	before, _ := vs.APIVulns(ctx)
	if before.Summary.Critical != 1 || before.Summary.KEV != 1 || before.Summary.High != 1 || before.Summary.NoFix != 2 {
		t.Fatalf("before the update: %+v\n%+v", before.Summary, before.Findings)
	}

	w.publish11(t)
	if err := os.MkdirAll(n.sb.Path("var/run"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(n.sb.Path("var/run/reboot-required"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	n.cycle()
	if v := n.version(); v != "1.1" {
		t.Fatalf("acme-tool %q: the KEV fix was not installed ahead of ring broad's 2-day deferral; decision %+v", v, n.decision("acme-tool"))
	}
	h := n.history()
	if len(h) != 1 || h[0].Outcome != engine.OutcomeInstalled || !strings.Contains(h[0].Reason, "urgent[0]") {
		t.Fatalf("history %+v: want one install approved by urgent[0]", h)
	}
	if h[0].UrgentRebootDeadline != 24*time.Hour || len(urgent) != 1 || urgent[0].deadline != 24*time.Hour ||
		urgent[0].rule != "urgent[0] (kev-or-critical): acme-tool 1.1, reboot within 24h0m0s" || n.reboots != 0 {
		t.Errorf("urgent reboot: journaled %s, told %+v (plain reboots %d); want 24h from urgent[0]", h[0].UrgentRebootDeadline, urgent, n.reboots)
	}
	after, _ := vs.APIVulns(ctx)
	if after.Summary.Critical != 0 || after.Summary.KEV != 0 || after.Summary.High != 1 || len(after.Findings) != 1 {
		t.Fatalf("after the update: %+v\n%+v", after.Summary, after.Findings)
	}
	if f := after.Findings[0]; f.Package != "acme-lib" || f.ID != "CVE-2026-2000" || f.Fix != "none" {
		t.Errorf("remaining finding %+v, want acme-lib exposed without a fix", f)
	}
	n.audit()

	// Without the urgent rule the same update waits for the ring.
	m := w.newNode(t, "broad-2", nil, mustPolicy(t, ""))
	m.cycle()
	if d := m.decision("acme-tool"); d.Action != policy.ActionWaitDeferral || m.version() != "1.0" {
		t.Errorf("without an urgent rule: %+v, version %s", d, m.version())
	}
}
