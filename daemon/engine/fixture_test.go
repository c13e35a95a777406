package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patchring/patchring/daemon/engine"
	"github.com/patchring/patchring/daemon/store"
	"github.com/patchring/patchring/p2p/content"
	"github.com/patchring/patchring/platform/apt"
	"github.com/patchring/patchring/platform/apt/apttest"
	"github.com/patchring/patchring/policy"
)

// engineConfigHook, when set, changes the config of the engines openNode
// makes (tests that need another batch size or a wrapped backend). A test
// that sets it (or testMinFree) must not call t.Parallel: the parallel
// tests (the dnf ones) run after every sequential one has ended and read
// both when they open their engines.
var engineConfigHook func(*engine.Config)

// testMinFree is the free space the engines of the tests require.
var testMinFree uint64 = 1

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// policyYAML is a policy with rings pilot (tag pilot, no deferral) and
// broad (2 days), approving every apt update. {{HEALTH}} is replaced by a
// health check section.
const policyYAML = `schema: 1
name: engine-test
expires: 2030-01-01T00:00:00Z
rings:
  - name: pilot
    select:
      - tags: [pilot]
    defer: 0d
  - name: broad
    default: true
    defer: 2d
auto_approve:
  - name: everything from apt
    sources: [apt]
{{EXTRA}}`

func mustPolicy(t testing.TB, extra string) *policy.Policy {
	t.Helper()
	p, err := policy.Parse([]byte(strings.Replace(policyYAML, "{{EXTRA}}", extra, 1)), "test-policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// node is one agent's engine on a sandboxed package root.
type node struct {
	t       testing.TB
	sb      *apttest.Sandbox
	backend *apt.Backend
	db      *store.DB
	eng     *engine.Engine
	clock   *clock
	tags    []string

	mu      sync.Mutex
	pol     *policy.Policy
	polVer  string
	reboots int

	// The history last read and the HistoryVersion before it: history()
	// checks that the history never changes while the version stays.
	histVer  uint64
	histJSON []byte
}

// world is a repository with acme-tool 1.0 and 1.1.
type world struct {
	repo       *apttest.Repo
	deb10      string
	deb11      string
	stateDir   string
	sandboxDir string
}

func newWorld(t testing.TB, secondVersion apttest.Package) *world {
	t.Helper()
	apttest.RequireTools(t)
	apttest.GuardHostDB(t)
	dir := t.TempDir()
	w := &world{stateDir: t.TempDir(), sandboxDir: t.TempDir()}
	w.repo = apttest.MustStartRepo(t, apttest.RepoConfig{})
	w.deb10 = apttest.MustBuildDeb(t, dir, apttest.Package{Name: "acme-tool", Version: "1.0",
		Files: []apttest.File{{Path: "/usr/share/acme-tool/VERSION", Body: []byte("1.0\n")}}})
	w.repo.MustAdd(t, w.deb10)
	if secondVersion.Name == "" {
		secondVersion = apttest.Package{Name: "acme-tool", Version: "1.1",
			Files: []apttest.File{{Path: "/usr/share/acme-tool/VERSION", Body: []byte("1.1\n")}}}
	}
	w.deb11 = apttest.MustBuildDeb(t, dir, secondVersion)
	return w
}

// newPilot is most tests' start: a world, one node "pilot-1" in the
// pilot ring of mustPolicy(extraPolicy) with acme-tool 1.0 installed, and
// 1.1 published.
func newPilot(t testing.TB, extraPolicy string) (*world, *node, *policy.Policy) {
	t.Helper()
	w := newWorld(t, apttest.Package{})
	pol := mustPolicy(t, extraPolicy)
	n := w.newNode(t, "pilot-1", []string{"pilot"}, pol)
	w.publish11(t)
	return w, n, pol
}

// publish11 makes 1.1 available.
func (w *world) publish11(t testing.TB) { w.repo.MustAdd(t, w.deb11) }

func (w *world) newNode(t testing.TB, name string, tags []string, pol *policy.Policy) *node {
	t.Helper()
	sb := apttest.MustSandbox(t, apttest.SandboxOptions{TempDir: w.sandboxDir})
	sb.MustAddRepo(t, "test", w.repo)
	ctx := context.Background()
	if err := sb.DpkgInstall(ctx, w.deb10); err != nil {
		t.Fatal(err)
	}
	return openNode(t, name, sb, tags, pol, filepath.Join(w.stateDir, name))
}

func openNode(t testing.TB, name string, sb *apttest.Sandbox, tags []string, pol *policy.Policy, stateDir string) *node {
	t.Helper()
	ctx := context.Background()
	b, err := apt.New(ctx, apt.Options{AptConfig: sb.AptConfig})
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(stateDir, 0o700)
	db, err := store.Open(filepath.Join(stateDir, "state.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	cs, err := content.Open(filepath.Join(stateDir, "content"), content.Options{})
	if err != nil {
		t.Fatal(err)
	}
	n := &node{t: t, sb: sb, backend: b, db: db, tags: tags, pol: pol, polVer: "v1",
		clock: &clock{t: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}}
	// The logger is not testutil.Logger: the crash tests' agent process
	// opens a node too, before the testing flags are parsed (where
	// testing.Verbose panics).
	cfg := engine.Config{
		DB:          db,
		Log:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		Packages:    engine.AptPackages(b),
		Content:     engine.StoreContent(cs, nil),
		Now:         n.clock.Now,
		Policy:      n.policy,
		Facts:       func() policy.NodeFacts { return policy.NodeFacts{NodeID: name, Hostname: name, Tags: n.tags} },
		LockTimeout: 2 * time.Second,
		MinFree:     testMinFree,
		HealthEnv:   []string{"PATCHRING_ROOT=" + sb.Root},
		OnReboot:    func(time.Time, string, []string) { n.mu.Lock(); n.reboots++; n.mu.Unlock() },
	}
	if engineConfigHook != nil {
		engineConfigHook(&cfg)
	}
	n.eng = engine.New(cfg)
	return n
}

func (n *node) policy() (*policy.Policy, string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.pol, n.polVer
}

func (n *node) setPolicy(p *policy.Policy, version string) {
	n.mu.Lock()
	n.pol, n.polVer = p, version
	n.mu.Unlock()
}

func (n *node) cycle() {
	n.t.Helper()
	if err := n.eng.Cycle(context.Background()); err != nil {
		n.t.Fatalf("cycle: %v", err)
	}
}

func (n *node) version() string {
	n.t.Helper()
	v, _, err := n.sb.InstalledVersion(context.Background(), "acme-tool")
	if err != nil {
		n.t.Fatal(err)
	}
	return v
}

func (n *node) audit() {
	n.t.Helper()
	out, err := n.sb.Run(context.Background(), "dpkg", append(n.sb.DpkgArgs(), "--audit")...)
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		n.t.Fatalf("dpkg --audit is not clean: %v\n%s", err, out)
	}
}

func (n *node) history() []*engine.Tx {
	n.t.Helper()
	v := n.eng.HistoryVersion()
	txs, err := n.eng.History(0)
	if err != nil {
		n.t.Fatal(err)
	}
	js, err := json.Marshal(txs)
	if err != nil {
		n.t.Fatal(err)
	}
	if n.histJSON != nil && v == n.histVer && !bytes.Equal(js, n.histJSON) {
		n.t.Fatalf("the history changed while HistoryVersion stayed %d", v)
	}
	n.histVer, n.histJSON = v, js
	return txs
}

func (n *node) decision(pkg string) policy.Decision {
	n.t.Helper()
	ds, _ := n.eng.Decisions()
	for _, d := range ds {
		if d.Update.Package == pkg {
			return d
		}
	}
	n.t.Fatalf("no decision for %s in %+v", pkg, ds)
	return policy.Decision{}
}
