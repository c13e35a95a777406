package engine_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/patchring/patchring/daemon/engine"
	"github.com/patchring/patchring/platform/apt/apttest"
	"github.com/patchring/patchring/policy"
)

// failingHealth is a policy section whose health check fails while the
// file "broken" exists in the sandbox root.
const failingHealth = `health_check:
  command: ["sh", "-c", "test ! -e \"$PATCHRING_ROOT/broken\""]
  timeout: 30s
`

func vpkg(name, version string, depends ...string) apttest.Package {
	return apttest.Package{Name: name, Version: version, Depends: depends,
		Files: []apttest.File{{Path: "/usr/share/" + name + "/VERSION", Body: []byte(version + "\n")}}}
}

// batchWorld is a repository and a sandbox with packages installed at
// their first versions.
type batchWorld struct {
	repo     *apttest.Repo
	sb       *apttest.Sandbox
	dir      string
	stateDir string
}

func newBatchWorld(t *testing.T, installed ...apttest.Package) *batchWorld {
	t.Helper()
	apttest.RequireTools(t)
	apttest.GuardHostDB(t)
	w := &batchWorld{dir: t.TempDir(), stateDir: t.TempDir()}
	w.repo = apttest.MustStartRepo(t, apttest.RepoConfig{})
	w.sb = apttest.MustSandbox(t, apttest.SandboxOptions{TempDir: t.TempDir()})
	w.sb.MustAddRepo(t, "test", w.repo)
	var debs []string
	for _, p := range installed {
		deb := apttest.MustBuildDeb(t, w.dir, p)
		w.repo.MustAdd(t, deb)
		debs = append(debs, deb)
	}
	// One dpkg run per package, in order: a Pre-Depends must be
	// configured before its dependant is unpacked.
	for _, deb := range debs {
		if err := w.sb.DpkgInstall(context.Background(), deb); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

func (w *batchWorld) publish(t *testing.T, pkgs ...apttest.Package) {
	t.Helper()
	var debs []string
	for _, p := range pkgs {
		debs = append(debs, apttest.MustBuildDeb(t, w.dir, p))
	}
	w.repo.MustAdd(t, debs...)
}

func (w *batchWorld) node(t *testing.T, extra string) *node {
	t.Helper()
	return openNode(t, "pilot-1", w.sb, []string{"pilot"}, mustPolicy(t, extra), filepath.Join(w.stateDir, "pilot-1"))
}

// installed is every installed package with its version.
func (n *node) installed() map[string]string {
	n.t.Helper()
	m, err := n.backend.Installed(context.Background())
	if err != nil {
		n.t.Fatal(err)
	}
	return m
}

func (n *node) aptCheck() {
	n.t.Helper()
	n.audit()
	out, err := n.sb.Run(context.Background(), "apt-get", "check", "-q")
	if err != nil {
		n.t.Fatalf("apt-get check: %v\n%s", err, out)
	}
}

func itemMap(tx *engine.Tx) map[string]engine.Item {
	m := map[string]engine.Item{}
	for _, it := range tx.Items {
		m[it.Package] = it
	}
	return m
}

// TestTightPairRollsBackTogether is issue 21's case: footool 1.1 depends
// on libfoo (= 1.1); the health check fails. Both come back to 1.0 in one
// transaction that lists both, nothing is removed, and neither is tried
// again under the same policy. With a passing check one transaction
// installs both.
func TestTightPairRollsBackTogether(t *testing.T) {
	w := newBatchWorld(t, vpkg("libfoo", "1.0"), vpkg("footool", "1.0", "libfoo (= 1.0)"))
	n := w.node(t, failingHealth)
	if err := os.WriteFile(n.sb.Path("broken"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	before := n.installed()
	w.publish(t, vpkg("libfoo", "1.1"), vpkg("footool", "1.1", "libfoo (= 1.1)"))
	n.cycle()
	if got := n.installed(); !maps.Equal(got, before) {
		t.Fatalf("after the failed health check: %v, want %v (history %+v)", got, before, n.history())
	}
	h := n.history()
	if len(h) != 1 {
		t.Fatalf("%d transactions, want one: %+v", len(h), h)
	}
	tx := h[0]
	items := itemMap(tx)
	if tx.Outcome != engine.OutcomeRolledBack || len(items) != 2 ||
		items["footool"].To != "1.1" || items["libfoo"].To != "1.1" ||
		items["footool"].Result != engine.ResultRestored || items["libfoo"].Result != engine.ResultRestored {
		t.Fatalf("transaction: %+v", tx)
	}
	n.aptCheck()
	n.cycle()
	if len(n.history()) != 1 {
		t.Fatalf("the rolled-back pair was tried again: %+v", n.history())
	}

	// A new policy with a passing check: one transaction installs both.
	os.Remove(n.sb.Path("broken"))
	n.setPolicy(mustPolicy(t, failingHealth), "v2")
	n.cycle()
	h = n.history()
	if len(h) != 2 || h[0].Outcome != engine.OutcomeInstalled || len(h[0].Items) != 2 {
		t.Fatalf("history: %+v", h)
	}
	if got := n.installed(); got["footool"] != "1.1" || got["libfoo"] != "1.1" {
		t.Fatalf("installed: %v", got)
	}
	n.aptCheck()
}

// TestBatchSplitsAlongDependencies: with at most two packages per
// transaction, the tight pair stays in one and the independent package
// goes in another.
func TestBatchSplitsAlongDependencies(t *testing.T) {
	w := newBatchWorld(t, vpkg("libfoo", "1.0"), vpkg("footool", "1.0", "libfoo (= 1.0)"), vpkg("acme", "1.0"))
	w.publish(t, vpkg("libfoo", "1.1"), vpkg("footool", "1.1", "libfoo (= 1.1)"), vpkg("acme", "1.1"))
	n := openNodeWith(t, w, "", func(c *engine.Config) { c.MaxBatch = 2 })
	n.cycle()
	h := n.history()
	if len(h) != 2 {
		t.Fatalf("%d transactions, want 2: %+v", len(h), h)
	}
	var sets []string
	for _, tx := range h {
		if tx.Outcome != engine.OutcomeInstalled {
			t.Errorf("tx %d: %s %s", tx.ID, tx.Outcome, tx.Error)
		}
		var names []string
		for _, it := range tx.Items {
			names = append(names, it.Package)
		}
		slices.Sort(names)
		sets = append(sets, strings.Join(names, "+"))
	}
	slices.Sort(sets)
	if strings.Join(sets, " ") != "acme footool+libfoo" {
		t.Errorf("transactions hold %q, want the pair together and acme alone", sets)
	}
}

// TestFailingComponentIsIsolated: a batch of two independent components
// fails its health check because of one of them; each component is then
// tried alone, the good one stays installed and the bad one is rolled
// back.
func TestFailingComponentIsIsolated(t *testing.T) {
	bad := vpkg("badtool", "1.1")
	bad.Files = append(bad.Files, apttest.File{Path: "/broken", Body: []byte("x")})
	w := newBatchWorld(t, vpkg("libfoo", "1.0"), vpkg("footool", "1.0", "libfoo (= 1.0)"), vpkg("badtool", "1.0"))
	w.publish(t, vpkg("libfoo", "1.1"), vpkg("footool", "1.1", "libfoo (= 1.1)"), bad)
	n := w.node(t, failingHealth)
	n.eng.Cycle(context.Background())
	got := n.installed()
	if got["footool"] != "1.1" || got["libfoo"] != "1.1" || got["badtool"] != "1.0" {
		t.Fatalf("installed %v; history %+v", got, n.history())
	}
	h := n.history()
	if len(h) != 3 || h[2].Outcome != engine.OutcomeRolledBack || len(h[2].Items) != 3 {
		t.Fatalf("history: %+v", h)
	}
	for _, tx := range h[:2] {
		if tx.Batch != h[2].ID {
			t.Errorf("tx %d does not name batch %d", tx.ID, h[2].ID)
		}
	}
	n.aptCheck()
}

// openNodeWith opens a node on w's sandbox with a changed engine config.
func openNodeWith(t *testing.T, w *batchWorld, extra string, change func(*engine.Config)) *node {
	t.Helper()
	engineConfigHook = change
	t.Cleanup(func() { engineConfigHook = nil })
	return w.node(t, extra)
}

// TestRemovalNeedsPolicyRule: host 2.0 conflicts with the installed
// oldplugin. Without a rule the transaction is refused naming oldplugin
// and nothing changes; with transactions.allow_remove the removal is
// journaled, and both the health-check rollback and an admin rollback
// reinstall oldplugin from the content store.
func TestRemovalNeedsPolicyRule(t *testing.T) {
	w := newBatchWorld(t, vpkg("oldplugin", "1.0"), vpkg("host", "1.0"))
	h2 := vpkg("host", "2.0")
	h2.Conflicts = []string{"oldplugin"}
	w.publish(t, h2)
	n := w.node(t, "")
	before := n.installed()
	err := n.eng.Cycle(context.Background())
	if !errors.Is(err, engine.ErrRefused) || !strings.Contains(err.Error(), "oldplugin 1.0") || !strings.Contains(err.Error(), "allow_remove") {
		t.Fatalf("cycle without a removal rule: %v, want a refusal naming oldplugin", err)
	}
	if got := n.installed(); !maps.Equal(got, before) || len(n.history()) != 0 {
		t.Fatalf("refused transaction changed something: %v, history %+v", got, n.history())
	}

	rule := "transactions:\n  allow_remove: [oldplugin]\n"
	if err := os.WriteFile(n.sb.Path("broken"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	n.setPolicy(mustPolicy(t, rule+failingHealth), "v2")
	n.cycle()
	if got := n.installed(); !maps.Equal(got, before) {
		t.Fatalf("after the rolled-back removal: %v, want %v (history %+v)", got, before, *n.history()[0])
	}
	tx := n.history()[0]
	items := itemMap(tx)
	if tx.Outcome != engine.OutcomeRolledBack || items["oldplugin"].Action != engine.ActionRemove || items["oldplugin"].FromPayload == nil {
		t.Fatalf("transaction: %+v", tx)
	}

	os.Remove(n.sb.Path("broken"))
	n.setPolicy(mustPolicy(t, rule+failingHealth), "v3")
	n.cycle()
	if got := n.installed(); got["host"] != "2.0" || got["oldplugin"] != "" {
		t.Fatalf("after the permitted removal: %v", got)
	}
	// The origin is gone: the admin rollback reinstalls oldplugin from
	// the content store.
	w.repo.Stop()
	inst := n.history()[0]
	rb, err := n.eng.Rollback(context.Background(), inst.ID, "test")
	if err != nil {
		t.Fatalf("rollback: %v (%+v)", err, rb)
	}
	if got := n.installed(); !maps.Equal(got, before) {
		t.Fatalf("after the admin rollback: %v, want %v", got, before)
	}
	n.aptCheck()
}

// stopBeforeApply stops the origin the moment apt is about to run.
type stopBeforeApply struct {
	engine.Packages
	repo   *apttest.Repo
	applys int
}

func (s *stopBeforeApply) Apply(ctx context.Context, pkgs []engine.PkgVersion, remove []string, down, noDownload bool) error {
	s.repo.Stop()
	s.applys++
	return s.Packages.Apply(ctx, pkgs, remove, down, noDownload)
}

// TestBatchOf40FromContentStore: 20 tight pairs (40 upgrades) and a new
// dependency; the origin stops before apt runs, so every payload comes
// from the content store. One transaction installs them all; an admin
// rollback takes all back in one apt run.
func TestBatchOf40FromContentStore(t *testing.T) {
	var old, upd []apttest.Package
	for i := range 20 {
		lib, tool := fmt.Sprintf("lib%02d", i), fmt.Sprintf("tool%02d", i)
		old = append(old, vpkg(lib, "1.0"), vpkg(tool, "1.0", lib+" (= 1.0)"))
		toolDeps := []string{lib + " (= 1.1)"}
		if i == 0 {
			toolDeps = append(toolDeps, "newdep")
		}
		upd = append(upd, vpkg(lib, "1.1"), vpkg(tool, "1.1", toolDeps...))
	}
	w := newBatchWorld(t, old...)
	w.publish(t, append(upd, vpkg("newdep", "1.0"))...)
	var wrap *stopBeforeApply
	n := openNodeWith(t, w, "", func(c *engine.Config) {
		wrap = &stopBeforeApply{Packages: c.Packages, repo: w.repo}
		c.Packages = wrap
	})
	before := n.installed()
	// The plan after the transaction cannot refresh from the stopped
	// origin: that is the only error allowed.
	if err := n.eng.Cycle(context.Background()); err != nil && !strings.Contains(err.Error(), "refresh package indices") {
		t.Fatal(err)
	}
	h := n.history()
	if len(h) != 1 || h[0].Outcome != engine.OutcomeInstalled || len(h[0].Items) != 41 {
		t.Fatalf("history: %+v", h)
	}
	if it := itemMap(h[0])["newdep"]; it.Action != engine.ActionInstall || it.Requested {
		t.Errorf("newdep item: %+v", it)
	}
	got := n.installed()
	for pkg := range before {
		if got[pkg] != "1.1" {
			t.Errorf("%s = %q, want 1.1", pkg, got[pkg])
		}
	}
	if got["newdep"] != "1.0" || wrap.applys != 1 {
		t.Errorf("newdep = %q, apt runs %d", got["newdep"], wrap.applys)
	}
	rb, err := n.eng.Rollback(context.Background(), h[0].ID, "test")
	if err != nil {
		t.Fatalf("rollback: %v", err)
	}
	if len(rb.Items) != 41 || wrap.applys != 2 {
		t.Errorf("rollback items %d, apt runs %d", len(rb.Items), wrap.applys)
	}
	if got := n.installed(); !maps.Equal(got, before) {
		t.Fatalf("after the rollback: %v, want %v", got, before)
	}
	n.aptCheck()
}

// TestBatchCrashAtEveryStep kills the agent right after each journaled
// step of a batch transaction (footool/libfoo 1.1 and a new libbar), the
// rollback step of a failing one included, and checks that after recovery
// the node has exactly the old set or the new set.
func TestBatchCrashAtEveryStep(t *testing.T) {
	t.Parallel()
	type tc struct{ step, extra string }
	var cases []tc
	for _, s := range append(append([]string{}, engine.InstallSteps...), engine.CrashAfterInstall) {
		cases = append(cases, tc{s, ""})
	}
	cases = append(cases, tc{engine.StepRollback, failingHealth})
	for _, c := range cases {
		t.Run(c.step+map[bool]string{true: "-failing", false: ""}[c.extra != ""], func(t *testing.T) {
			w := newBatchWorld(t, vpkg("libfoo", "1.0"), vpkg("footool", "1.0", "libfoo (= 1.0)"))
			if c.extra != "" {
				os.WriteFile(w.sb.Path("broken"), nil, 0o644)
			}
			w.publish(t, vpkg("libbar", "1.0"), vpkg("libfoo", "1.1", "libbar"), vpkg("footool", "1.1", "libfoo (= 1.1)"))
			state := filepath.Join(w.stateDir, "pilot-1")
			out, err := runAgent(t, w.sb, state, c.step, false, "AGENT_POLICY_EXTRA="+c.extra)
			var ee *exec.ExitError
			if err == nil || !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("agent was not killed at %s: %v\n%s", c.step, err, out)
			}
			n := openNode(t, "pilot-1", w.sb, []string{"pilot"}, mustPolicy(t, c.extra), state)
			if err := n.eng.Recover(context.Background()); err != nil {
				t.Fatalf("recover: %v", err)
			}
			got := n.installed()
			oldSet := got["footool"] == "1.0" && got["libfoo"] == "1.0" && got["libbar"] == ""
			newSet := got["footool"] == "1.1" && got["libfoo"] == "1.1" && got["libbar"] == "1.0"
			if !oldSet && !newSet {
				t.Fatalf("after a crash at %s: %v, neither the old nor the new set", c.step, got)
			}
			n.aptCheck()
			h := n.history()
			if len(h) != 1 || h[0].Open() || !hasStep(h[0], engine.StepRecover) {
				t.Fatalf("journal after recovery: %+v", h)
			}
			if newSet != (h[0].Outcome == engine.OutcomeInstalled) {
				t.Errorf("set new=%v but the journal says %s", newSet, h[0].Outcome)
			}
			if c.extra != "" && !oldSet {
				t.Errorf("a failing transaction ended at the new set")
			}
		})
	}
}

var _ = policy.SourceApt

// TestRollbackFailureLeavesNodeConsistent: libfoo 1.0's preinst refuses
// to go back from 1.1, so the rollback fails. The node is left
// consistent (dpkg --audit and apt-get check clean, nothing that was
// installed before missing), the journal says where each package is and
// the engine's status is degraded.
func TestRollbackFailureLeavesNodeConsistent(t *testing.T) {
	lib10 := vpkg("libfoo", "1.0")
	lib10.Preinst = "#!/bin/sh\nif [ \"$1\" = upgrade ] && [ -e \"$DPKG_ROOT/no-downgrade\" ]; then echo 'libfoo 1.0: refusing to replace 1.1' >&2; exit 1; fi\nexit 0\n"
	w := newBatchWorld(t, lib10, vpkg("footool", "1.0", "libfoo (= 1.0)"))
	w.publish(t, vpkg("libfoo", "1.1"), vpkg("footool", "1.1", "libfoo (= 1.1)"))
	n := w.node(t, failingHealth)
	for _, f := range []string{"broken", "no-downgrade"} {
		if err := os.WriteFile(n.sb.Path(f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	before := n.installed()
	n.eng.Cycle(context.Background())
	n.aptCheck()
	got := n.installed()
	for pkg := range before {
		if got[pkg] == "" {
			t.Errorf("%s is missing after the failed rollback", pkg)
		}
	}
	tx := n.history()[0]
	if tx.Outcome != engine.OutcomeFailed || !tx.RollbackFailed || !strings.Contains(tx.Error, "rollback failed too") {
		t.Fatalf("transaction: %s %v %q", tx.Outcome, tx.RollbackFailed, tx.Error)
	}
	for _, it := range tx.Items {
		if it.Now != got[it.Package] || it.Result == "" || it.Result == engine.ResultStuck && it.Now == "" {
			t.Errorf("item %s: result %q now %q, installed %q", it.Package, it.Result, it.Now, got[it.Package])
		}
	}
	if st := n.eng.Status(); st.State != "degraded" || !strings.Contains(st.Details["rollback_failed"], fmt.Sprint(tx.ID)) {
		t.Errorf("status: %+v", st)
	}
	t.Logf("after the failed rollback: %v; %s", got, stepDetail(tx, engine.StepRecover))
}

// TestPreviousVersionOfferedByNoSource: the installed acme 1.0 came from
// a .deb no source offers (libfoo 1.0 is still in the repository). The
// payloads of the new versions and of the installed ones are asked in one
// apt query, which must not fail on acme 1.0: without a rule the batch is
// refused naming acme 1.0 (it could not be rolled back) and nothing
// changes; with transactions.without_rollback matching acme both install,
// libfoo with its previous payload and acme without one.
func TestPreviousVersionOfferedByNoSource(t *testing.T) {
	ctx := context.Background()
	w := newBatchWorld(t, vpkg("libfoo", "1.0"))
	if err := w.sb.DpkgInstall(ctx, apttest.MustBuildDeb(t, t.TempDir(), vpkg("acme", "1.0"))); err != nil {
		t.Fatal(err)
	}
	w.publish(t, vpkg("libfoo", "1.1"), vpkg("acme", "1.1"))
	n := w.node(t, "")
	before := n.installed()
	err := n.eng.Cycle(ctx)
	if !errors.Is(err, engine.ErrRefused) || !strings.Contains(err.Error(), "acme 1.0") || !strings.Contains(err.Error(), "without_rollback") {
		ds, _ := n.eng.Decisions()
		t.Fatalf("cycle: %v, want a refusal naming acme 1.0 (installed %v, history %+v, decisions %+v)", err, n.installed(), n.history(), ds)
	}
	if got := n.installed(); !maps.Equal(got, before) || len(n.history()) != 0 {
		t.Fatalf("refused batch changed something: %v, history %+v", got, n.history())
	}

	n.setPolicy(mustPolicy(t, "transactions:\n  without_rollback: [acme]\n"), "v2")
	n.cycle()
	if got := n.installed(); got["libfoo"] != "1.1" || got["acme"] != "1.1" {
		t.Fatalf("installed: %v (history %+v)", got, n.history())
	}
	var items []engine.Item
	for _, tx := range n.history() {
		items = append(items, tx.Items...)
	}
	for _, it := range items {
		switch {
		case it.Package == "libfoo" && (it.FromPayload == nil || len(it.FromPayload.SHA256) != 64):
			t.Errorf("libfoo's previous payload = %+v, want the repository's 1.0", it.FromPayload)
		case it.Package == "acme" && it.FromPayload != nil:
			t.Errorf("acme's previous payload = %+v, want none (no source offers 1.0)", it.FromPayload)
		}
	}
	if len(items) != 2 {
		t.Errorf("items %+v, want libfoo and acme", items)
	}
	n.aptCheck()
}

// TestUnplannableBatchIsCycleError: footool 1.1 depends on a package no
// source has, so apt cannot plan the batch and no transaction starts. The
// cycle returns apt's reason and the engine's status shows it.
func TestUnplannableBatchIsCycleError(t *testing.T) {
	w := newBatchWorld(t, vpkg("footool", "1.0"))
	w.publish(t, vpkg("footool", "1.1", "libmissing"))
	n := w.node(t, "")
	err := n.eng.Cycle(context.Background())
	if err == nil || !strings.Contains(err.Error(), "footool") || !strings.Contains(err.Error(), "libmissing") {
		t.Fatalf("cycle: %v, want apt's reason naming footool and libmissing", err)
	}
	if got := n.eng.Status().Details["last_error"]; !strings.Contains(got, "libmissing") {
		t.Errorf("status last_error = %q, want apt's reason", got)
	}
	if len(n.history()) != 0 || n.installed()["footool"] != "1.0" {
		t.Errorf("unplannable batch: history %+v, installed %v", n.history(), n.installed())
	}
}
