package engine_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchring/patchring/daemon/engine"
	"github.com/patchring/patchring/daemon/policysvc"
	"github.com/patchring/patchring/daemon/store"
	"github.com/patchring/patchring/p2p/content"
	"github.com/patchring/patchring/platform/dnf"
	"github.com/patchring/patchring/platform/dnf/dnftest"
	"github.com/patchring/patchring/policy"
	"github.com/patchring/patchring/policy/trust"
	"github.com/patchring/patchring/policy/tufrepo"
)

// addRPM builds p as an .rpm and publishes it as a catalog entry the way
// `patchring catalog add` does: package, version and architecture from
// its header, format rpm. It returns the target name and the version.
func (w *catalogWorld) addRPM(t testing.TB, p dnftest.Package, appliesTo ...string) (string, string) {
	t.Helper()
	file := dnftest.MustBuildRPM(t, w.debDir, p)
	n, err := dnf.ReadPackageFile(context.Background(), file)
	if err != nil {
		t.Fatal(err)
	}
	name, err := w.repo.AddCatalogFile(file, tufrepo.CatalogMeta{Package: n.Name, Version: n.EVR.String(), Format: tufrepo.FormatRPM,
		Arch: n.Arch, AppliesTo: appliesTo, Severity: "high", Classification: "security"})
	if err != nil {
		t.Fatal(err)
	}
	w.publish(t)
	return name, n.EVR.String()
}

// untamper serves target's real bytes again.
func (w *catalogWorld) untamper(t testing.TB, target string) {
	t.Helper()
	p := w.payloadPath(t, target)
	w.mu.Lock()
	delete(w.tampered, p)
	w.mu.Unlock()
}

func vendorRPM(name, version, arch string) dnftest.Package {
	return dnftest.Package{Name: name, Version: version, Arch: arch,
		Files: []dnftest.File{{Path: "/usr/share/" + name + "/VERSION", Body: []byte(version + "\n")}}}
}

// dnfCatalogNode is an rpm agent (RHEL 9, x86_64) as the daemon wires it:
// trust client, policy service, and the engine driving dnf in a sandbox
// root with the verified catalog.
type dnfCatalogNode struct {
	*dnfNode
	pol *policysvc.Service
}

func (w *catalogWorld) newDnfNode(t testing.TB, name string, tags []string) *dnfCatalogNode {
	t.Helper()
	if err := dnftest.CheckTools(); err != nil {
		t.Fatalf("%v", err)
	}
	dnftest.GuardHost(t)
	sb := dnftest.MustSandbox(t, dnftest.SandboxOptions{TempDir: w.sandboxDir})
	// The vendor's (signed, empty) repository: dnf wants one enabled.
	sb.MustAddRepo(t, "vendor", dnftest.MustStartRepo(t, dnftest.RepoConfig{Signer: dnftest.MustSigner(t)}), dnftest.RepoOptions{})
	b := dnfBackend(t, sb)
	stateDir := filepath.Join(w.stateDir, name)
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(filepath.Join(stateDir, "state.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	cs, err := content.Open(filepath.Join(stateDir, "content"), content.Options{})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	tc, err := trust.New(trust.Config{TrustedRoot: w.root, StateDir: filepath.Join(stateDir, "tuf"),
		Sources: []trust.Source{trust.NewOriginSource(w.srv.URL)}, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	n := &dnfNode{t: t, sb: sb, backend: b, tags: tags, clock: &clock{t: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}}
	facts := func() policy.NodeFacts {
		return policy.NodeFacts{NodeID: name, Hostname: name, Tags: n.tags, OSID: "rhel", OSVersion: "9", Arch: "x86_64"}
	}
	svc := policysvc.New(policysvc.Config{Trust: tc, Log: log, Facts: facts})
	n.eng = engine.New(engine.Config{
		DB:          db,
		Log:         log,
		Packages:    engine.DnfPackages(b),
		Content:     engine.StoreContent(cs, nil),
		Now:         n.clock.Now,
		Policy:      svc.Current,
		Catalog:     engine.TrustCatalog(svc.Catalog, tc),
		Facts:       facts,
		LockTimeout: 2 * time.Second,
		MinFree:     testMinFree,
		HealthEnv:   []string{"PATCHRING_ROOT=" + sb.Root},
		OnReboot:    func(time.Time, string, []string) { n.mu.Lock(); n.reboots++; n.mu.Unlock() },
	})
	cn := &dnfCatalogNode{dnfNode: n, pol: svc}
	cn.refresh()
	return cn
}

func (n *dnfCatalogNode) refresh() {
	n.t.Helper()
	if err := n.pol.Refresh(context.Background()); err != nil {
		n.t.Fatalf("policy refresh: %v", err)
	}
}

func (n *dnfCatalogNode) versionOf(pkg string) string {
	n.t.Helper()
	v, err := n.sb.InstalledVersion(context.Background(), pkg)
	if err != nil {
		n.t.Fatal(err)
	}
	return v
}

func (n *dnfCatalogNode) plan() map[string]policy.Decision {
	n.t.Helper()
	ds, err := n.eng.Plan(context.Background())
	if err != nil {
		n.t.Fatalf("plan: %v", err)
	}
	out := map[string]policy.Decision{}
	for _, d := range ds {
		out[d.Update.Package] = d
	}
	return out
}

// TestCatalogRPMOnDnfAgent: one signed catalog carries .deb and .rpm
// payloads. The rpm agent (real dnf in a sandbox root) is offered only
// the .rpm built for its architecture, installs it from the payload the
// TUF targets metadata signs (a tampered payload is refused before dnf
// sees it), upgrades to the next catalog version, and an admin's rollback
// downgrades from the content store. The Debian agent of the same catalog
// is offered only the .deb.
func TestCatalogRPMOnDnfAgent(t *testing.T) {
	t.Parallel()
	w := newCatalogWorld(t, "")
	// A .deb with no scope: only the package format keeps it off the rpm
	// agent.
	debTarget := w.add(t, vendorPkg("vendor-lib", "9.0"))
	// The rpm agent's package, and a newer build for another architecture.
	v20, ver20 := w.addRPM(t, vendorRPM("vendor-app", "2.0", "x86_64"))
	w.addRPM(t, vendorRPM("vendor-app", "2.5", "aarch64"))

	deb := w.newNode(t, "debian-1", []string{"pilot"}, w.sandbox(t))
	if ds := deb.plan(); ds["vendor-lib"].Update.Version != "9.0" {
		t.Errorf("the Debian agent is not offered the .deb: %+v", ds)
	} else if d, ok := ds["vendor-app"]; ok {
		t.Errorf("the Debian agent is offered an .rpm: %+v", d)
	}

	n := w.newDnfNode(t, "rpm-1", []string{"pilot"})
	ds := n.plan()
	if d, ok := ds["vendor-lib"]; ok {
		t.Errorf("the rpm agent is offered a .deb: %+v", d)
	}
	d, ok := ds["vendor-app"]
	if !ok {
		t.Fatalf("the rpm agent is not offered the catalog's .rpm: %+v", ds)
	}
	if u := d.Update; u.Source != policy.SourceCatalog || u.Version != ver20 || u.Severity != "high" || d.Action != policy.ActionInstallNow {
		t.Fatalf("decision = %+v (want %s for x86_64, not the aarch64 build)", d, ver20)
	}
	n.cycle()
	if v := n.versionOf("vendor-app"); v != ver20 {
		t.Fatalf("vendor-app is %q after the cycle, want %s; history %+v", v, ver20, *n.history()[0])
	}
	h := n.history()
	if len(h) != 1 || h[0].Outcome != engine.OutcomeInstalled || h[0].Items[0].Payload == nil || h[0].Items[0].Payload.SHA256 != w.sha256(t, v20) {
		t.Fatalf("history: %+v", h)
	}
	want := "planned:done fetch:done place:done install:done verify:done health-check:done completed:done"
	if got := stepNames(h[0]); got != want {
		t.Errorf("journal steps:\n got %s\nwant %s", got, want)
	}
	if got := w.requestCount(w.payloadPath(t, debTarget)); got != 0 {
		t.Errorf("the rpm agent fetched the .deb %d times", got)
	}

	// 2.1 is published tampered: refused at fetch, dnf never runs.
	v21, ver21 := w.addRPM(t, vendorRPM("vendor-app", "2.1", "x86_64"))
	w.tamper(t, v21)
	n.refresh()
	n.cycle()
	if v := n.versionOf("vendor-app"); v != ver20 {
		t.Fatalf("a tampered payload changed vendor-app to %q", v)
	}
	h = n.history()
	if h[0].Outcome != engine.OutcomeFailed || !strings.Contains(h[0].Error, "sha256") || reachedInstall(h[0]) {
		t.Fatalf("tampered payload: %+v", h[0])
	}

	// Served intact, it installs; the rollback downgrades to 2.0 from the
	// content store.
	w.untamper(t, v21)
	n.clock.Add(2 * time.Hour)
	n.cycle()
	if v := n.versionOf("vendor-app"); v != ver21 {
		t.Fatalf("vendor-app is %q, want %s; history %+v", v, ver21, n.history())
	}
	up := n.history()[0]
	if up.Items[0].From != ver20 || up.Items[0].FromPayload == nil || up.Items[0].FromPayload.SHA256 != w.sha256(t, v20) {
		t.Fatalf("upgrade item = %+v; want 2.0's payload kept for the rollback", up.Items[0])
	}
	w.remove(t, v20)
	n.refresh()
	rb, err := n.eng.Rollback(context.Background(), up.ID, "admin: test")
	if err != nil {
		t.Fatalf("rollback: %v", err)
	}
	if v := n.versionOf("vendor-app"); v != ver20 || rb.Outcome != engine.OutcomeInstalled {
		t.Fatalf("after the rollback vendor-app is %q (tx %+v)", v, rb)
	}
	if got := w.requestCount(w.payloadPath(t, v21)); got < 1 {
		t.Errorf("2.1's payload was requested %d times", got)
	}
	n.audit()
}
