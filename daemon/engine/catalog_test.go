package engine_test

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/patchring/patchring/daemon/engine"
	"github.com/patchring/patchring/platform/apt/apttest"
	"github.com/patchring/patchring/policy"
	"github.com/patchring/patchring/policy/tufrepo"
)

// TestCatalogInstallUpgradeRollback: a signed catalog entry that applies
// to the node is offered, approved and installed from its verified payload
// (its dependency from the apt repository); the next version replaces it
// after the old entry left the catalog; an admin's rollback reinstalls the
// old version from the content store, and the rolled-back version is not
// installed again under the same policy.
func TestCatalogInstallUpgradeRollback(t *testing.T) {
	w := newCatalogWorld(t, "")
	v20 := w.add(t, vendorPkg("vendor-app", "2.0"), "debian-12")
	n := w.newNode(t, "pilot-1", []string{"pilot"}, w.sandbox(t))

	d, ok := n.plan()["vendor-app"]
	if !ok {
		t.Fatal("the catalog entry is not offered")
	}
	u := d.Update
	if u.Source != policy.SourceCatalog || u.Version != "2.0" || u.InstalledVersion != "" || u.Classification != "security" ||
		u.Severity != "high" || d.Action != policy.ActionInstallNow || d.Ring != "pilot" {
		t.Fatalf("decision = %+v", d)
	}
	n.cycle()
	if v := n.versionOf("vendor-app"); v != "2.0" {
		t.Fatalf("vendor-app is %q after the cycle, want 2.0; history %+v", v, n.history())
	}
	if v := n.versionOf("libacme"); v != "1.0" {
		t.Errorf("its dependency libacme is %q, want 1.0 from the apt repository", v)
	}
	h := n.history()
	if len(h) != 1 || h[0].Outcome != engine.OutcomeInstalled {
		t.Fatalf("history: %+v", h)
	}
	it := h[0].Items[0]
	if it.Source != policy.SourceCatalog || it.From != "" || it.To != "2.0" || it.Payload.SHA256 != w.sha256(t, v20) {
		t.Errorf("transaction item = %+v", it)
	}
	want := "planned:done fetch:done place:done install:done verify:done health-check:done completed:done"
	if got := stepNames(h[0]); got != want {
		t.Errorf("journal steps:\n got %s\nwant %s", got, want)
	}
	if _, ok := n.plan()["vendor-app"]; ok {
		t.Error("the installed version is still offered")
	}

	// 2.1 replaces 2.0 in the catalog: 2.0's payload is no longer served.
	w.add(t, vendorPkg("vendor-app", "2.1"), "debian-12")
	w.remove(t, v20)
	n.refresh()
	n.cycle()
	if v := n.versionOf("vendor-app"); v != "2.1" {
		t.Fatalf("vendor-app is %q, want 2.1; history %+v", v, n.history())
	}
	up := n.history()[0]
	if up.Items[0].From != "2.0" || up.Items[0].FromPayload == nil || up.Items[0].FromPayload.SHA256 != w.sha256Of(t, h[0]) {
		t.Fatalf("upgrade item = %+v; want 2.0's payload kept for the rollback", up.Items[0])
	}

	rb, err := n.eng.Rollback(context.Background(), up.ID, "admin: test")
	if err != nil {
		t.Fatalf("rollback: %v", err)
	}
	if v := n.versionOf("vendor-app"); v != "2.0" || rb.Outcome != engine.OutcomeInstalled {
		t.Fatalf("after the rollback vendor-app is %q (tx %+v)", v, rb)
	}
	if got := w.requestCount(w.payloadPathOf(h[0])); got != 1 {
		t.Errorf("2.0's payload was requested %d times; want once (the upgrade and the rollback use the content store)", got)
	}
	n.cycle()
	if v := n.versionOf("vendor-app"); v != "2.0" {
		t.Errorf("the rolled-back 2.1 was installed again under the same policy: %q", v)
	}
	if d := n.decision("vendor-app"); d.Action != policy.ActionDenied || d.Rule != "rollback" {
		t.Errorf("decision after the rollback = %+v", d)
	}
	n.audit()
}

// sha256Of is the payload hash tx installed.
func (w *catalogWorld) sha256Of(t testing.TB, tx *engine.Tx) string {
	t.Helper()
	if len(tx.Items) == 0 || tx.Items[0].Payload == nil {
		t.Fatalf("transaction %d has no payload", tx.ID)
	}
	return tx.Items[0].Payload.SHA256
}

// payloadPathOf is the URL path tx fetched its payload from.
func (w *catalogWorld) payloadPathOf(tx *engine.Tx) string {
	u := tx.Items[0].Payload.URI
	return u[strings.Index(u, "/targets/"):]
}

// TestCatalogHealthCheckRollsBack: a failing health check after catalog
// installs puts the upgraded package back at its previous catalog version
// and removes the package the catalog added.
func TestCatalogHealthCheckRollsBack(t *testing.T) {
	w := newCatalogWorld(t, `health_check:
  command: ["sh", "-c", "test ! -e \"$PATCHRING_ROOT/broken\""]
  timeout: 10s
`)
	old := w.build(t, vendorPkg("vendor-app", "2.0"))
	w.add(t, vendorPkg("vendor-app", "2.0"))
	w.add(t, vendorPkg("vendor-app", "2.1"))
	w.add(t, vendorPkg("vendor-tool", "1.0"))
	n := w.newNode(t, "pilot-1", []string{"pilot"}, w.sandbox(t, w.libacme, old))
	if err := os.WriteFile(n.sb.Path("broken"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	n.cycle()
	if v := n.versionOf("vendor-app"); v != "2.0" {
		t.Errorf("vendor-app is %q after a failed health check, want 2.0", v)
	}
	if v := n.versionOf("vendor-tool"); v != "" {
		t.Errorf("vendor-tool is %q after a failed health check, want removed", v)
	}
	h := n.history()
	if len(h) != 2 {
		t.Fatalf("history: %+v", h)
	}
	for _, tx := range h {
		if tx.Outcome != engine.OutcomeRolledBack || !strings.Contains(tx.Error, "health check") {
			t.Errorf("transaction %d (%s): outcome %s, error %q", tx.ID, tx.Items[0].Package, tx.Outcome, tx.Error)
		}
	}
	n.audit()
	n.cycle()
	if len(n.history()) != 2 {
		t.Errorf("rolled-back catalog updates were tried again under the same policy: %+v", n.history())
	}
}

// TestCatalogTamperedPayload: the server sends other bytes for a catalog
// payload; the transaction fails at fetch with a hash error and nothing is
// installed.
func TestCatalogTamperedPayload(t *testing.T) {
	w := newCatalogWorld(t, "")
	target := w.add(t, vendorPkg("vendor-app", "2.0"))
	w.tamper(t, target)
	n := w.newNode(t, "pilot-1", []string{"pilot"}, w.sandbox(t))
	n.cycle()
	if v := n.versionOf("vendor-app"); v != "" {
		t.Fatalf("a tampered payload got installed: %q", v)
	}
	h := n.history()
	if len(h) != 1 || h[0].Outcome != engine.OutcomeFailed || !strings.Contains(h[0].Error, "fetch") || !strings.Contains(h[0].Error, "sha256") {
		t.Fatalf("history: %+v", h)
	}
	if reachedInstall(h[0]) {
		t.Error("the journal shows an install step for a payload that failed verification")
	}
	n.audit()
}

// TestCatalogAppliesTo: entries for another OS, another architecture, a
// package the node lacks, or older than what is installed are not offered;
// the policy schema's applies_to object is read too.
func TestCatalogAppliesTo(t *testing.T) {
	w := newCatalogWorld(t, "")
	w.add(t, vendorPkg("vendor-app", "2.0"), "debian-12")
	w.add(t, vendorPkg("vendor-ubuntu", "1.0"), "ubuntu-22.04")
	w.add(t, vendorPkg("vendor-bookworm-only", "1.0"), "debian-11")
	w.add(t, vendorPkg("vendor-arm", "1.0"), "debian", "arch:arm64")
	w.add(t, vendorPkg("vendor-plugin", "1.0"), "requires:libxcb1")
	w.add(t, vendorPkg("vendor-old", "1.0"))
	w.addCustom(t, vendorPkg("vendor-obj", "1.0"), map[string]any{"package": "vendor-obj", "version": "1.0",
		"applies_to": map[string]any{"os_id": []string{"debian"}, "arch": []string{"amd64"}}})
	w.addCustom(t, vendorPkg("vendor-obj-ubuntu", "1.0"), map[string]any{"package": "vendor-obj-ubuntu", "version": "1.0",
		"applies_to": map[string]any{"os_id": []string{"ubuntu"}}})
	w.addCustom(t, vendorPkg("vendor-bad", "1.0"), map[string]any{"version": "1.0"})
	newer := w.build(t, vendorPkg("vendor-old", "1.5"))
	n := w.newNode(t, "pilot-1", []string{"pilot"}, w.sandbox(t, w.libacme, newer))

	got := n.plan()
	var names []string
	for pkg, d := range got {
		if d.Update.Source == policy.SourceCatalog {
			names = append(names, pkg)
		}
	}
	slices.Sort(names)
	if want := []string{"vendor-app", "vendor-obj"}; !slices.Equal(names, want) {
		t.Fatalf("catalog updates offered = %v, want %v", names, want)
	}
	// The entry whose metadata cannot be read is named in the status.
	if st := n.eng.Status(); !strings.Contains(st.Details["catalog_ignored"], "catalog/vendor-bad/1.0/") ||
		!strings.Contains(st.Details["catalog_ignored"], "package is missing") {
		t.Errorf("status does not name the ignored entry: %+v", st.Details)
	}

	// Once libxcb1 is installed, the plugin applies.
	lib := w.build(t, apttest.Package{Name: "libxcb1", Version: "1.15-1"})
	if err := n.sb.DpkgInstall(context.Background(), lib); err != nil {
		t.Fatal(err)
	}
	if _, ok := n.plan()["vendor-plugin"]; !ok {
		t.Error("vendor-plugin is not offered once libxcb1 is installed")
	}
}

// TestCatalogNewestEntry: of several versions of a package only the newest
// is offered, and a node in ring broad waits for its deferral.
func TestCatalogNewestEntry(t *testing.T) {
	w := newCatalogWorld(t, "")
	w.add(t, vendorPkg("vendor-app", "2.0"))
	w.add(t, vendorPkg("vendor-app", "10.0~rc1"))
	w.add(t, vendorPkg("vendor-app", "2.10"))
	n := w.newNode(t, "broad-1", nil, w.sandbox(t))
	d, ok := n.plan()["vendor-app"]
	if !ok || d.Update.Version != "10.0~rc1" {
		t.Fatalf("decision = %+v, want 10.0~rc1 (the newest by Debian's ordering)", d)
	}
	if d.Action != policy.ActionWaitDeferral || d.Ring != "broad" {
		t.Errorf("broad decision = %+v, want wait-deferral", d)
	}
}

// TestCatalogPostinstFailure: a catalog payload whose postinst fails is
// rolled back: an upgrade returns to the previous version, a new package
// is removed, and dpkg's state is clean.
func TestCatalogPostinstFailure(t *testing.T) {
	w := newCatalogWorld(t, "")
	failing := func(p apttest.Package) apttest.Package {
		p.Postinst = "#!/bin/sh\necho \"" + p.Name + ": cannot migrate its database\" >&2\nexit 1\n"
		return p
	}
	old := w.build(t, vendorPkg("vendor-app", "2.0"))
	w.add(t, vendorPkg("vendor-app", "2.0"))
	w.add(t, failing(vendorPkg("vendor-app", "2.1")))
	w.add(t, failing(vendorPkg("vendor-tool", "1.0")))
	n := w.newNode(t, "pilot-1", []string{"pilot"}, w.sandbox(t, w.libacme, old))
	n.cycle()
	if v := n.versionOf("vendor-app"); v != "2.0" {
		t.Errorf("vendor-app is %q after its postinst failed, want 2.0", v)
	}
	if v := n.versionOf("vendor-tool"); v != "" {
		t.Errorf("vendor-tool is %q after its postinst failed, want removed", v)
	}
	for _, tx := range n.history() {
		if tx.Outcome != engine.OutcomeRolledBack || !strings.Contains(tx.Error, "install") {
			t.Errorf("transaction %d (%s): outcome %s, error %q", tx.ID, tx.Items[0].Package, tx.Outcome, tx.Error)
		}
	}
	n.audit()
}

// TestCatalogPolicyRollbackOrder: a newly signed policy orders the
// catalog's 2.1 rolled back; the node reinstalls 2.0 from the catalog's
// payload and leaves 2.1 alone from then on.
func TestCatalogPolicyRollbackOrder(t *testing.T) {
	w := newCatalogWorld(t, "")
	old := w.build(t, vendorPkg("vendor-app", "2.0"))
	w.add(t, vendorPkg("vendor-app", "2.0"))
	w.add(t, vendorPkg("vendor-app", "2.1"))
	n := w.newNode(t, "pilot-1", []string{"pilot"}, w.sandbox(t, w.libacme, old))
	n.cycle()
	if v := n.versionOf("vendor-app"); v != "2.1" {
		t.Fatalf("vendor-app is %q, want 2.1", v)
	}
	canonical, err := policy.MarshalCanonical(mustPolicy(t, catalogApproval+`rollbacks:
  - package: vendor-app
    version: "2.1"
    reason: crashes on start
`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.repo.PublishPolicy(canonical); err != nil {
		t.Fatal(err)
	}
	n.refresh()
	n.cycle()
	if v := n.versionOf("vendor-app"); v != "2.0" {
		t.Fatalf("after the signed rollback order vendor-app is %q, want 2.0", v)
	}
	h := n.history()
	if len(h) != 2 || h[0].Kind != engine.KindRollback || h[0].Outcome != engine.OutcomeInstalled || h[1].RolledBy != h[0].ID {
		t.Fatalf("history: %+v", h)
	}
	n.cycle()
	if v := n.versionOf("vendor-app"); v != "2.0" {
		t.Errorf("2.1 came back after its rollback order: %q", v)
	}
	n.audit()
}

// TestCatalogPayloadOfAnotherPackage: a signed entry whose payload is
// another package (or version) than its metadata says fails before
// anything is installed.
func TestCatalogPayloadOfAnotherPackage(t *testing.T) {
	w := newCatalogWorld(t, "")
	if _, err := w.repo.AddCatalogFile(w.build(t, vendorPkg("vendor-app", "2.0")), tufrepo.CatalogMeta{Package: "vendor-app", Version: "3.0"}); err != nil {
		t.Fatal(err)
	}
	w.publish(t)
	n := w.newNode(t, "pilot-1", []string{"pilot"}, w.sandbox(t))
	n.cycle()
	if v := n.versionOf("vendor-app"); v != "" {
		t.Fatalf("vendor-app %q installed from a payload that is not 3.0", v)
	}
	h := n.history()
	if len(h) != 1 || h[0].Outcome != engine.OutcomeFailed || !strings.Contains(h[0].Error, "payload does not match") || reachedInstall(h[0]) {
		t.Fatalf("history: %+v", h)
	}
	n.audit()
}

// TestCatalogLeavesAptVersionsToApt: when the vendor's apt repository
// offers the same version as the catalog, the update is offered once,
// from apt.
func TestCatalogLeavesAptVersionsToApt(t *testing.T) {
	w := newCatalogWorld(t, "")
	old := w.build(t, vendorPkg("vendor-app", "2.0"))
	w.add(t, vendorPkg("vendor-app", "2.1"))
	w.apt.MustAdd(t, w.build(t, vendorPkg("vendor-app", "2.1")))
	n := w.newNode(t, "pilot-1", []string{"pilot"}, w.sandbox(t, w.libacme, old))
	ds, err := n.eng.Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range ds {
		got = append(got, d.Update.String())
	}
	if want := []string{"apt vendor-app 2.1"}; !slices.Equal(got, want) {
		t.Errorf("updates = %q, want %q", got, want)
	}
}
