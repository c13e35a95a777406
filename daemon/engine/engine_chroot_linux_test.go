package engine_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patchring/patchring/daemon/engine"
	"github.com/patchring/patchring/daemon/store"
	"github.com/patchring/patchring/internal/testutil"
	"github.com/patchring/patchring/p2p/content"
	"github.com/patchring/patchring/platform/apt"
	"github.com/patchring/patchring/platform/apt/apttest"
	"github.com/patchring/patchring/policy"
)

// chrootNode is an agent's engine on a minimal Debian 12 root, driving
// the root's own apt-get and dpkg, so that maintainer scripts written for
// real systems run as they would on an endpoint.
type chrootNode struct {
	c     *apttest.Chroot
	b     *apt.Backend
	eng   *engine.Engine
	clock *clock

	mu     sync.Mutex
	pol    *policy.Policy
	polVer string
}

func newChrootNode(t *testing.T, c *apttest.Chroot, pol *policy.Policy, opts ...func(*engine.Config)) *chrootNode {
	t.Helper()
	c.RouteTools(t)
	return openChrootNode(t, c, pol, t.TempDir(), testutil.Logger(t), opts...)
}

// openChrootNode opens the engine whose state is in state; the root's
// tools must be routed already (Chroot.RouteTools, or PATH in an agent
// process).
func openChrootNode(t testing.TB, c *apttest.Chroot, pol *policy.Policy, state string, log *slog.Logger, opts ...func(*engine.Config)) *chrootNode {
	t.Helper()
	ctx := context.Background()
	b, err := apt.New(ctx, apt.Options{AptConfig: c.AptConfig})
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(filepath.Join(state, "state.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	cs, err := content.Open(filepath.Join(state, "content"), content.Options{})
	if err != nil {
		t.Fatal(err)
	}
	n := &chrootNode{c: c, b: b, pol: pol, polVer: "v1",
		clock: &clock{t: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}}
	cfg := engine.Config{
		DB:       db,
		Log:      log,
		Packages: engine.AptPackages(b),
		Content:  engine.StoreContent(cs, nil),
		Now:      n.clock.Now,
		Policy:   n.policy,
		Facts: func() policy.NodeFacts {
			return policy.NodeFacts{NodeID: "pilot-1", Hostname: "pilot-1", Tags: []string{"pilot"}}
		},
		LockTimeout: 10 * time.Second,
		MinFree:     testMinFree,
	}
	for _, o := range opts {
		o(&cfg)
	}
	n.eng = engine.New(cfg)
	return n
}

func (n *chrootNode) policy() (*policy.Policy, string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.pol, n.polVer
}

func (n *chrootNode) setPolicy(p *policy.Policy, version string) {
	n.mu.Lock()
	n.pol, n.polVer = p, version
	n.mu.Unlock()
}

func (n *chrootNode) cycle(t *testing.T) {
	t.Helper()
	if err := n.eng.Cycle(context.Background()); err != nil {
		t.Fatalf("cycle: %v", err)
	}
}

// version is acme's version as the root's dpkg-query reports it, failing
// unless it is fully installed.
func (n *chrootNode) version(t *testing.T) string {
	t.Helper()
	v, status, err := n.c.InstalledVersion(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	if status != "ii " {
		t.Fatalf("acme %s has dpkg status %q, want ii", v, status)
	}
	return v
}

// inside runs a shell command in the root and returns its trimmed output.
func (n *chrootNode) inside(t *testing.T, script string) string {
	t.Helper()
	out, err := n.c.Run(context.Background(), "sh", "-c", script)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

// scripts returns the maintainer script runs noted since the last call.
func (n *chrootNode) scripts(t *testing.T) []string {
	t.Helper()
	p := n.c.Path(apttest.ServiceScriptLog)
	data, err := os.ReadFile(p)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return strings.Fields(strings.ReplaceAll(strings.TrimSpace(string(data)), " ", "_"))
}

func (n *chrootNode) latest(t *testing.T) *engine.Tx {
	t.Helper()
	txs, err := n.eng.History(0)
	if err != nil {
		t.Fatal(err)
	}
	if len(txs) == 0 {
		t.Fatal("no transaction in the history")
	}
	return txs[0]
}

func (n *chrootNode) audit(t *testing.T) {
	t.Helper()
	if report, err := n.c.Audit(context.Background()); err != nil || report != "" {
		t.Fatalf("the root's dpkg --audit: %q, %v", report, err)
	}
}

func chrootSteps(tx *engine.Tx) string {
	var s []string
	for _, st := range tx.Steps {
		s = append(s, st.Name+":"+st.Status)
	}
	return strings.Join(s, " ")
}

// runs turns "1.0 prerm upgrade 1.1" lines into the form scripts returns.
func runs(lines ...string) []string {
	for i, l := range lines {
		lines[i] = strings.ReplaceAll(l, " ", "_")
	}
	return lines
}

// TestChrootEngineInstallAndRollback runs the engine's transactions in a
// minimal Debian 12 root against a package whose maintainer scripts need
// a real system (apttest.ServicePackage: adduser, update-alternatives,
// dpkg --compare-versions, absolute paths): a health check run inside the
// root fails and the engine rolls the upgrade back; under a new policy
// the upgrade completes; a rollback order in the policy takes the node
// back; a version whose postinst fails is rolled back by the engine.
// Each time the scripts ran with the arguments dpkg gives on a real
// system, dpkg --audit ends clean and the host is untouched.
func TestChrootEngineInstallAndRollback(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: runs apt and dpkg in a Debian root (run without -short, as make test does)")
	}
	apttest.GuardHostDB(t)
	apttest.GuardHostFiles(t, apttest.ServiceHostPaths...)
	ctx := context.Background()
	dir := t.TempDir()
	debs := map[string]string{}
	for _, v := range []string{"1.0", "1.1", "1.2"} {
		debs[v] = apttest.MustBuildDeb(t, dir, apttest.ServicePackage(v))
	}
	repo := apttest.MustStartRepo(t, apttest.RepoConfig{})
	repo.MustAdd(t, debs["1.0"])
	c := apttest.MustChroot(t, apttest.ChrootOptions{})
	c.MustAddRepo(t, "vendor", repo)

	health := fmt.Sprintf("health_check:\n  command: [%q, \"sh\", \"-c\", \"test -e /etc/acme/healthy && acme && getent passwd acme\"]\n  timeout: 60s\n", c.Runner())
	n := newChrootNode(t, c, mustPolicy(t, health))
	// The endpoint has 1.0, installed by its own apt.
	if err := n.b.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n.b.Install(ctx, []apt.PkgVersion{{Name: "acme", Version: "1.0"}}, apt.InstallOptions{}); err != nil {
		t.Fatal(err)
	}
	n.scripts(t)
	upgrade := runs("1.0 prerm upgrade 1.1", "1.1 preinst upgrade 1.0 1.1", "1.0 postrm upgrade 1.1", "1.1 postinst configure 1.0")
	downgrade := runs("1.1 prerm upgrade 1.0", "1.0 preinst upgrade 1.1 1.0", "1.1 postrm upgrade 1.0", "1.0 postinst configure 1.1")

	repo.MustAdd(t, debs["1.1"])
	chrootStep(t, "health check fails inside the root: rolled back", func(t *testing.T) {
		n.cycle(t)
		if v := n.version(t); v != "1.0" {
			t.Fatalf("acme is %s after a failed health check, want 1.0", v)
		}
		tx := n.latest(t)
		if tx.Outcome != engine.OutcomeRolledBack || !strings.Contains(tx.Error, "health check") {
			t.Fatalf("transaction: %s %q, steps %s", tx.Outcome, tx.Error, chrootSteps(tx))
		}
		if got, want := n.scripts(t), append(slices.Clone(upgrade), downgrade...); !slices.Equal(got, want) {
			t.Errorf("scripts ran:\n%q\nwant\n%q", got, want)
		}
		if got := n.inside(t, "cat /var/lib/acme/downgrades; acme"); got != "downgrade from 1.1 to 1.0\nacme 1.0" {
			t.Errorf("after the rollback: %q", got)
		}
		n.audit(t)
	})

	chrootStep(t, "healthy under a new policy: 1.1 installed", func(t *testing.T) {
		if err := os.WriteFile(c.Path("etc/acme/healthy"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		n.setPolicy(mustPolicy(t, health), "v2")
		n.cycle(t)
		if v := n.version(t); v != "1.1" {
			t.Fatalf("acme is %s, want 1.1", v)
		}
		tx := n.latest(t)
		want := "planned:done fetch:done place:done install:done verify:done health-check:done completed:done"
		if tx.Outcome != engine.OutcomeInstalled || chrootSteps(tx) != want {
			t.Fatalf("transaction: %s %q, steps %s", tx.Outcome, tx.Error, chrootSteps(tx))
		}
		if got := n.scripts(t); !slices.Equal(got, upgrade) {
			t.Errorf("scripts ran %q, want %q", got, upgrade)
		}
		if got := n.inside(t, "tail -n1 /var/lib/acme/migrations; readlink /etc/alternatives/acme; cat /var/lib/acme/dpkg-env"); got !=
			"migrated from 1.0 to 1.1\n/usr/lib/acme/acme-1.1\nDPKG_ROOT=[] DPKG_ADMINDIR=[/var/lib/dpkg]" {
			t.Errorf("after the upgrade: %q", got)
		}
	})

	chrootStep(t, "rollback order in the policy", func(t *testing.T) {
		n.setPolicy(mustPolicy(t, health+"rollbacks:\n  - package: acme\n    version: \"1.1\"\n    reason: breaks printing\n"), "v3")
		n.cycle(t)
		if v := n.version(t); v != "1.0" {
			t.Fatalf("acme is %s after the rollback order, want 1.0", v)
		}
		if tx := n.latest(t); tx.Kind != engine.KindRollback || tx.Outcome != engine.OutcomeInstalled {
			t.Fatalf("transaction: %s %s %q, steps %s", tx.Kind, tx.Outcome, tx.Error, chrootSteps(tx))
		}
		if got := n.scripts(t); !slices.Equal(got, downgrade) {
			t.Errorf("scripts ran %q, want %q", got, downgrade)
		}
		n.cycle(t)
		if v := n.version(t); v != "1.0" {
			t.Fatalf("1.1 came back after its rollback order: %s", v)
		}
	})

	repo.MustAdd(t, debs["1.2"])
	chrootStep(t, "postinst of 1.2 fails: rolled back to 1.0", func(t *testing.T) {
		if err := os.WriteFile(c.Path("etc/acme/fail-postinst-1.2"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		n.cycle(t)
		if v := n.version(t); v != "1.0" {
			t.Fatalf("acme is %s after 1.2's postinst failed, want 1.0", v)
		}
		tx := n.latest(t)
		if tx.Outcome != engine.OutcomeRolledBack || !strings.Contains(tx.Error, "install") || tx.Items[0].To != "1.2" {
			t.Fatalf("transaction: %s %q, steps %s", tx.Outcome, tx.Error, chrootSteps(tx))
		}
		// 1.2 was never configured, so dpkg tells 1.0's postinst that the
		// last configured version is 1.0.
		got := n.scripts(t)
		if !slices.Contains(got, "1.2_postinst_configure_1.0") || !slices.Contains(got, "1.0_preinst_upgrade_1.2_1.0") ||
			got[len(got)-1] != "1.0_postinst_configure_1.0" {
			t.Errorf("scripts ran %q: want 1.2's failed postinst, then 1.0 unpacked and configured over it", got)
		}
		if got := n.inside(t, "acme; getent passwd acme | cut -d: -f1"); got != "acme 1.0\nacme" {
			t.Errorf("after the rollback: %q", got)
		}
		n.audit(t)
	})
}

// chrootStep runs a named step of a scenario and stops the scenario when it
// fails.
func chrootStep(t *testing.T, name string, f func(t *testing.T)) {
	t.Helper()
	if !t.Run(name, f) {
		t.FailNow()
	}
}
