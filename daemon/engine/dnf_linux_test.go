package engine_test

import (
	"os"
	"strings"
	"testing"

	"github.com/patchring/patchring/daemon/engine"
	"github.com/patchring/patchring/platform/dnf/dnftest"
	"github.com/patchring/patchring/policy"
)

// TestDnfInstallUpgradeAndDeferral: the pilot node upgrades acme-tool
// through the same journaled steps as on apt; the broad node waits for its
// deferral.
func TestDnfInstallUpgradeAndDeferral(t *testing.T) {
	t.Parallel()
	w := newDnfWorld(t, dnftest.Package{})
	pol := dnfPolicy(t, "")
	pilot := w.newNode(t, "pilot-1", []string{"pilot"}, pol)
	broad := w.newNode(t, "broad-1", nil, pol)
	w.publish11(t)

	pilot.cycle()
	broad.cycle()
	if v := pilot.version(); v != "1.1-1" {
		t.Fatalf("pilot has acme-tool %q, want 1.1-1; history %+v", v, pilot.history())
	}
	if v := broad.version(); v != "1.0-1" {
		t.Fatalf("broad installed %q before its deferral ended", v)
	}
	if d := broad.decision("acme-tool"); d.Action != policy.ActionWaitDeferral || d.Update.Source != policy.SourceDnf {
		t.Errorf("broad decision = %+v, want wait-deferral of a dnf update", d)
	}
	h := pilot.history()
	if len(h) != 1 || h[0].Outcome != engine.OutcomeInstalled || h[0].Items[0].From != "1.0-1" || h[0].Items[0].To != "1.1-1" ||
		h[0].Items[0].Source != policy.SourceDnf || h[0].Items[0].Payload == nil || h[0].Items[0].FromPayload == nil {
		t.Fatalf("pilot history: %+v", h)
	}
	var names []string
	for _, s := range h[0].Steps {
		names = append(names, s.Name+":"+s.Status)
	}
	want := "planned:done fetch:done place:done install:done verify:done health-check:done completed:done"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("journal steps:\n got %s\nwant %s", got, want)
	}
	pilot.audit()

	// A manual rollback downgrades from the content store.
	if _, err := pilot.eng.Rollback(t.Context(), h[0].ID, "test"); err != nil {
		t.Fatalf("rollback: %v", err)
	}
	if v := pilot.version(); v != "1.0-1" {
		t.Fatalf("after the rollback acme-tool is %q", v)
	}
	pilot.audit()
}

// TestDnfHealthCheckFailureDowngrades: a failing health check after the
// upgrade downgrades to 1.0-1, from the content store even though the
// repository no longer offers 1.0-1.
func TestDnfHealthCheckFailureDowngrades(t *testing.T) {
	t.Parallel()
	w := newDnfWorld(t, dnftest.Package{})
	pol := dnfPolicy(t, `health_check:
  command: ["sh", "-c", "test ! -e \"$PATCHRING_ROOT/broken\""]
  timeout: 10s
`)
	n := w.newNode(t, "pilot-1", []string{"pilot"}, pol)
	if err := os.WriteFile(n.sb.Path("broken"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	w.publish11(t)
	// Plan while 1.0 is offered (its payload goes into the content store
	// at fetch), then take 1.0 out of the repository before installing.
	n.cycle()
	if v := n.version(); v != "1.0-1" {
		t.Fatalf("acme-tool is %q after a failed health check, want 1.0-1", v)
	}
	h := n.history()
	if len(h) != 1 || h[0].Outcome != engine.OutcomeRolledBack || !strings.Contains(h[0].Error, "health check") {
		t.Fatalf("history: %+v", h)
	}
	n.audit()
	n.cycle()
	if len(n.history()) != 1 || n.version() != "1.0-1" {
		t.Fatalf("rolled-back update was installed again: %+v", n.history())
	}
	os.Remove(n.sb.Path("broken"))
	n.setPolicy(pol, "v2")
	n.cycle()
	if v := n.version(); v != "1.1-1" {
		t.Fatalf("after a new policy, acme-tool is %q, want 1.1-1", v)
	}
}

// TestDnfFailingPostScriptletRollsBack: 1.1's %post fails (rpm keeps the
// package and dnf says Complete!); the engine treats it as a failed
// install and downgrades.
func TestDnfFailingPostScriptletRollsBack(t *testing.T) {
	t.Parallel()
	w := newDnfWorld(t, dnftest.Package{Name: "acme-tool", Version: "1.1", Post: "echo 'acme-tool: cannot migrate its database' >&2\nexit 1\n"})
	n := w.newNode(t, "pilot-1", []string{"pilot"}, dnfPolicy(t, ""))
	w.publish11(t)
	n.cycle()
	if v := n.version(); v != "1.0-1" {
		t.Fatalf("acme-tool is %q after a failed %%post, want 1.0-1", v)
	}
	h := n.history()
	if len(h) != 1 || h[0].Outcome != engine.OutcomeRolledBack || !strings.Contains(h[0].Error, "%post scriptlet") {
		t.Fatalf("history: %+v", h)
	}
	n.audit()
}

// TestDnfTamperedPackageRefused: the served 1.1 does not match the
// SHA-256 of the signed metadata; nothing is installed.
func TestDnfTamperedPackageRefused(t *testing.T) {
	t.Parallel()
	w := newDnfWorld(t, dnftest.Package{})
	n := w.newNode(t, "pilot-1", []string{"pilot"}, dnfPolicy(t, ""))
	w.publish11(t)
	rel := "Packages/" + w.v11.FileName()
	data, err := w.repo.ReadFile(rel)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	w.repo.Override(rel, data)
	n.cycle()
	if v := n.version(); v != "1.0-1" {
		t.Fatalf("a tampered payload got installed: %q", v)
	}
	h := n.history()
	if len(h) != 1 || h[0].Outcome != engine.OutcomeFailed || !strings.Contains(h[0].Error, "fetch") || reachedInstall(h[0]) {
		t.Fatalf("history: %+v", h)
	}
	n.audit()
}

// TestDnfTamperedRepomdRefused: 1.1 is published with a repomd.xml whose
// signature does not match; the refresh fails, the plan stays on the
// metadata verified before, and 1.1 is not offered.
func TestDnfTamperedRepomdRefused(t *testing.T) {
	t.Parallel()
	w := newDnfWorld(t, dnftest.Package{})
	n := w.newNode(t, "pilot-1", []string{"pilot"}, dnfPolicy(t, ""))
	n.cycle() // verified metadata without 1.1
	w.publish11(t)
	md, err := w.repo.ReadFile("repodata/repomd.xml.asc")
	if err != nil {
		t.Fatal(err)
	}
	// The signature of another repomd.xml: replay the old one.
	_ = md
	old, err := os.ReadFile(w.repo.Dir() + "/repodata/repomd.xml")
	if err != nil {
		t.Fatal(err)
	}
	w.repo.Override("repodata/repomd.xml", append(old, []byte("<!-- tampered -->\n")...))
	err = n.eng.Cycle(t.Context())
	if err == nil || !strings.Contains(err.Error(), "refresh") {
		t.Fatalf("cycle with a tampered repomd.xml: %v, want a refresh error", err)
	}
	if v := n.version(); v != "1.0-1" {
		t.Fatalf("installed %q from tampered metadata", v)
	}
	for _, d := range func() []policy.Decision { ds, _ := n.eng.Decisions(); return ds }() {
		if d.Update.Package == "acme-tool" {
			t.Fatalf("1.1 offered from metadata whose signature failed: %+v", d)
		}
	}
	n.audit()
}

// TestDnfLockHeld: another process holds rpm's lock; the transaction
// fails naming it, and installs once the lock is free.
func TestDnfLockHeld(t *testing.T) {
	t.Parallel()
	w := newDnfWorld(t, dnftest.Package{})
	n := w.newNode(t, "pilot-1", []string{"pilot"}, dnfPolicy(t, ""))
	w.publish11(t)
	release := holdRPMLock(t, n.backend.Paths().Lock)
	n.cycle()
	if v := n.version(); v != "1.0-1" {
		t.Fatalf("installed %q while rpm was locked", v)
	}
	h := n.history()
	if len(h) != 1 || h[0].Outcome != engine.OutcomeFailed || !strings.Contains(h[0].Error, "busy") || !strings.Contains(h[0].Error, "rpm lock") {
		t.Fatalf("history does not name the rpm lock: %+v", h)
	}
	release()
	n.cycle()
	if n.version() != "1.1-1" {
		t.Fatal("not installed after the lock was released")
	}
}

// TestDnfSecurityClassesDrivePolicy: only updates that updateinfo.xml
// calls security fixes of at least high severity are auto-approved.
func TestDnfSecurityClassesDrivePolicy(t *testing.T) {
	t.Parallel()
	w := newDnfWorld(t, dnftest.Package{})
	dir := t.TempDir()
	other10 := dnftest.Package{Name: "other-tool", Version: "2.0"}
	other11 := dnftest.Package{Name: "other-tool", Version: "2.1"}
	pol, err := policy.Parse([]byte(strings.Replace(strings.Replace(policyYAML, "{{EXTRA}}", "", 1),
		"    sources: [apt]", "    sources: [dnf]\n    classifications: [security]\n    min_severity: high", 1)), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	w.repo.MustAdd(t, dnftest.MustBuildRPM(t, dir, other10))
	n := w.newNode(t, "pilot-1", []string{"pilot"}, pol)
	if out, err := n.sb.Run(t.Context(), "dnf", "install", other10.NEVRA()); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	w.repo.MustAdd(t, w.rpm11, dnftest.MustBuildRPM(t, dir, other11))
	if err := w.repo.SetAdvisories(t.Context(), dnftest.Advisory{ID: "PRT-2026-0007", Type: "security", Severity: "Important",
		CVEs: []string{"CVE-2026-0007"}, Packages: []dnftest.Package{w.v11}},
		dnftest.Advisory{ID: "PRT-2026-0008", Type: "bugfix", Packages: []dnftest.Package{other11}}); err != nil {
		t.Fatal(err)
	}
	ds, err := n.eng.Plan(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	byPkg := map[string]policy.Decision{}
	for _, d := range ds {
		byPkg[d.Update.Package] = d
	}
	if d := byPkg["acme-tool"]; d.Update.Classification != "security" || d.Update.Severity != policy.SeverityHigh || d.Action != policy.ActionInstallNow {
		t.Fatalf("acme-tool decision = %+v, want install-now of a security/high update", d)
	}
	if d := byPkg["other-tool"]; d.Action != policy.ActionNotApproved || d.Update.Classification != "other" {
		t.Fatalf("the bugfix was not held back: %+v", d)
	}
	n.cycle()
	if v := n.version(); v != "1.1-1" {
		t.Fatalf("the security fix was not installed: %q (history %+v)", v, n.history())
	}
	if v, _ := n.sb.InstalledVersion(t.Context(), "other-tool"); v != "2.0-1" {
		t.Fatalf("other-tool is %q, want 2.0-1", v)
	}
}
