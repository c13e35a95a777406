package engine_test

import (
	"context"
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
	"github.com/patchring/patchring/platform/dnf"
	"github.com/patchring/patchring/platform/dnf/dnftest"
	"github.com/patchring/patchring/policy"
)

// dnfPolicy is mustPolicy approving dnf's updates instead of apt's.
func dnfPolicy(t testing.TB, extra string) *policy.Policy {
	t.Helper()
	y := strings.Replace(strings.Replace(policyYAML, "{{EXTRA}}", extra, 1), "sources: [apt]", "sources: [dnf]", 1)
	p, err := policy.Parse([]byte(y), "test-policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// dnfWorld is a signed repository with acme-tool 1.0-1 and, once
// published, 1.1-1.
type dnfWorld struct {
	repo       *dnftest.Repo
	rpm10      string
	rpm11      string
	v10, v11   dnftest.Package
	stateDir   string
	sandboxDir string
}

func newDnfWorld(t testing.TB, second dnftest.Package) *dnfWorld {
	t.Helper()
	if err := dnftest.CheckTools(); err != nil {
		t.Fatalf("%v", err)
	}
	dnftest.GuardHost(t)
	dir := t.TempDir()
	w := &dnfWorld{stateDir: t.TempDir(), sandboxDir: t.TempDir()}
	w.repo = dnftest.MustStartRepo(t, dnftest.RepoConfig{Signer: dnftest.MustSigner(t)})
	w.v10 = dnftest.Package{Name: "acme-tool", Version: "1.0", Files: []dnftest.File{{Path: "/usr/share/acme-tool/VERSION", Body: []byte("1.0\n")}}}
	w.rpm10 = dnftest.MustBuildRPM(t, dir, w.v10)
	w.repo.MustAdd(t, w.rpm10)
	if second.Name == "" {
		second = dnftest.Package{Name: "acme-tool", Version: "1.1", Files: []dnftest.File{{Path: "/usr/share/acme-tool/VERSION", Body: []byte("1.1\n")}}}
	}
	w.v11 = second
	w.rpm11 = dnftest.MustBuildRPM(t, dir, second)
	return w
}

func (w *dnfWorld) publish11(t testing.TB) { w.repo.MustAdd(t, w.rpm11) }

// newDnfNode makes a sandbox with acme-tool 1.0 installed from the
// repository and an engine on it.
func (w *dnfWorld) newNode(t testing.TB, name string, tags []string, pol *policy.Policy) *dnfNode {
	t.Helper()
	sb := dnftest.MustSandbox(t, dnftest.SandboxOptions{TempDir: w.sandboxDir})
	sb.MustAddRepo(t, "test", w.repo, dnftest.RepoOptions{})
	if out, err := sb.Run(context.Background(), "dnf", "install", w.v10.NEVRA()); err != nil {
		t.Fatalf("install 1.0: %v\n%s", err, out)
	}
	return openDnfNode(t, name, sb, tags, pol, filepath.Join(w.stateDir, name))
}

type dnfNode struct {
	t       testing.TB
	sb      *dnftest.Sandbox
	backend *dnf.Backend
	eng     *engine.Engine
	clock   *clock
	tags    []string

	mu      sync.Mutex
	pol     *policy.Policy
	polVer  string
	reboots int
}

func dnfBackend(t testing.TB, sb *dnftest.Sandbox) *dnf.Backend {
	t.Helper()
	b, err := dnf.New(dnf.Options{Root: sb.Root, Args: sb.DNFArgs()[2:], Env: sb.Env()})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func openDnfNode(t testing.TB, name string, sb *dnftest.Sandbox, tags []string, pol *policy.Policy, stateDir string) *dnfNode {
	t.Helper()
	b := dnfBackend(t, sb)
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
	n := &dnfNode{t: t, sb: sb, backend: b, tags: tags, pol: pol, polVer: "v1",
		clock: &clock{t: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}}
	cfg := engine.Config{
		DB:       db,
		Log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		Packages: engine.DnfPackages(b),
		Content:  engine.StoreContent(cs, nil),
		Now:      n.clock.Now,
		Policy:   n.policy,
		Facts: func() policy.NodeFacts {
			return policy.NodeFacts{NodeID: name, Hostname: name, Tags: n.tags, OSID: "rhel", OSVersion: "9", Arch: "x86_64"}
		},
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

func (n *dnfNode) policy() (*policy.Policy, string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.pol, n.polVer
}

func (n *dnfNode) setPolicy(p *policy.Policy, version string) {
	n.mu.Lock()
	n.pol, n.polVer = p, version
	n.mu.Unlock()
}

func (n *dnfNode) cycle() {
	n.t.Helper()
	if err := n.eng.Cycle(context.Background()); err != nil {
		n.t.Fatalf("cycle: %v", err)
	}
}

func (n *dnfNode) version() string {
	n.t.Helper()
	v, err := n.sb.InstalledVersion(context.Background(), "acme-tool")
	if err != nil {
		n.t.Fatal(err)
	}
	return v
}

// audit fails the test when rpm's database has an interrupted
// transaction's duplicates or acme-tool's files do not verify.
func (n *dnfNode) audit() {
	n.t.Helper()
	d, err := n.backend.Duplicates(context.Background())
	if err != nil || len(d) > 0 {
		n.t.Fatalf("rpm database not clean: %v %v", d, err)
	}
	if v := n.version(); v != "" {
		if out, err := n.sb.Run(context.Background(), "rpm", "--verify", "acme-tool"); err != nil {
			n.t.Fatalf("rpm --verify acme-tool: %v\n%s", err, out)
		}
	}
}

func (n *dnfNode) history() []*engine.Tx {
	n.t.Helper()
	txs, err := n.eng.History(0)
	if err != nil {
		n.t.Fatal(err)
	}
	return txs
}

func (n *dnfNode) decision(pkg string) policy.Decision {
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
