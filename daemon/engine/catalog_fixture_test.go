package engine_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patchring/patchring/daemon/engine"
	"github.com/patchring/patchring/daemon/policysvc"
	"github.com/patchring/patchring/daemon/store"
	"github.com/patchring/patchring/p2p/content"
	"github.com/patchring/patchring/platform/apt"
	"github.com/patchring/patchring/platform/apt/apttest"
	"github.com/patchring/patchring/policy"
	"github.com/patchring/patchring/policy/trust"
	"github.com/patchring/patchring/policy/tufrepo"
)

// catalogApproval extends policyYAML's auto_approve list with catalog
// updates.
const catalogApproval = `  - name: third-party catalog
    sources: [catalog]
`

// catalogWorld is the fleet's signed TUF repository (built with tufrepo,
// carrying a policy that approves catalog updates) served on 127.0.0.1 by
// tufrepo.Handler, and an apt repository with libacme, a dependency of
// the catalog's vendor-app.
type catalogWorld struct {
	repo       *tufrepo.Repo
	repoDir    string
	root       []byte
	srv        *httptest.Server
	apt        *apttest.Repo
	debDir     string
	libacme    string // the .deb in the apt repository
	stateDir   string
	sandboxDir string

	mu       sync.Mutex
	tampered map[string][]byte // URL path -> bytes served instead
	requests []string
}

func newCatalogWorld(t testing.TB, extraPolicy string) *catalogWorld {
	t.Helper()
	apttest.RequireTools(t)
	apttest.GuardHostDB(t)
	base := t.TempDir()
	w := &catalogWorld{repoDir: filepath.Join(base, "repo"), debDir: filepath.Join(base, "debs"),
		stateDir: t.TempDir(), sandboxDir: t.TempDir(), tampered: map[string][]byte{}}
	if err := os.MkdirAll(w.debDir, 0o755); err != nil {
		t.Fatal(err)
	}
	repo, err := tufrepo.Init(w.repoDir, filepath.Join(base, "keys"), tufrepo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	w.repo = repo
	if w.root, err = repo.RootJSON(); err != nil {
		t.Fatal(err)
	}
	canonical, err := policy.MarshalCanonical(mustPolicy(t, catalogApproval+extraPolicy))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.PublishPolicy(canonical); err != nil {
		t.Fatal(err)
	}
	files := tufrepo.Handler(w.repoDir)
	w.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.mu.Lock()
		body, bad := w.tampered[r.URL.Path]
		w.requests = append(w.requests, r.URL.Path)
		w.mu.Unlock()
		if bad {
			rw.Write(body)
			return
		}
		files.ServeHTTP(rw, r)
	}))
	t.Cleanup(w.srv.Close)

	w.apt = apttest.MustStartRepo(t, apttest.RepoConfig{})
	w.libacme = apttest.MustBuildDeb(t, w.debDir, apttest.Package{Name: "libacme", Version: "1.0",
		Files: []apttest.File{{Path: "/usr/lib/libacme.so.1", Body: []byte("libacme 1.0\n")}}})
	w.apt.MustAdd(t, w.libacme)
	return w
}

// vendorPkg is a third-party package: it depends on libacme from the apt
// repository and records its version in /usr/share/<name>/VERSION.
func vendorPkg(name, version string) apttest.Package {
	return apttest.Package{Name: name, Version: version, Depends: []string{"libacme"},
		Files: []apttest.File{{Path: "/usr/share/" + name + "/VERSION", Body: []byte(version + "\n")}}}
}

// build builds p's .deb.
func (w *catalogWorld) build(t testing.TB, p apttest.Package) string {
	t.Helper()
	return apttest.MustBuildDeb(t, w.debDir, p)
}

// add builds p and publishes it as a catalog entry (security, high) with
// the given applies_to list. It returns the target name.
func (w *catalogWorld) add(t testing.TB, p apttest.Package, appliesTo ...string) string {
	t.Helper()
	name, err := w.repo.AddCatalogFile(w.build(t, p), tufrepo.CatalogMeta{Package: p.Name, Version: p.Version,
		AppliesTo: appliesTo, Severity: "high", Classification: "security"})
	if err != nil {
		t.Fatal(err)
	}
	w.publish(t)
	return name
}

// addCustom publishes p with custom metadata as given (any schema).
func (w *catalogWorld) addCustom(t testing.TB, p apttest.Package, custom any) string {
	t.Helper()
	data, err := json.Marshal(custom)
	if err != nil {
		t.Fatal(err)
	}
	deb := w.build(t, p)
	name := tufrepo.CatalogTargetName(p.Name, p.Version, filepath.Base(deb))
	if err := w.repo.AddTargetFile(name, deb, data); err != nil {
		t.Fatal(err)
	}
	w.publish(t)
	return name
}

// remove takes a target out of the catalog; its payload is no longer served.
func (w *catalogWorld) remove(t testing.TB, target string) {
	t.Helper()
	if err := w.repo.RemoveTarget(target); err != nil {
		t.Fatal(err)
	}
	w.publish(t)
}

func (w *catalogWorld) publish(t testing.TB) {
	t.Helper()
	if _, err := w.repo.Publish(); err != nil {
		t.Fatal(err)
	}
}

// payloadPath is the URL path of a target's bytes on the server.
func (w *catalogWorld) payloadPath(t testing.TB, target string) string {
	t.Helper()
	for _, tg := range w.repo.ListTargets() {
		if tg.Name == target {
			dir, base := path.Split(target)
			return "/targets/" + dir + tg.SHA256 + "." + base
		}
	}
	t.Fatalf("no target %s", target)
	return ""
}

func (w *catalogWorld) sha256(t testing.TB, target string) string {
	t.Helper()
	for _, tg := range w.repo.ListTargets() {
		if tg.Name == target {
			return tg.SHA256
		}
	}
	t.Fatalf("no target %s", target)
	return ""
}

// tamper makes the server send other bytes of the same length for target.
func (w *catalogWorld) tamper(t testing.TB, target string) {
	t.Helper()
	p := w.payloadPath(t, target)
	data, err := os.ReadFile(filepath.Join(w.repoDir, filepath.FromSlash(p)))
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	w.mu.Lock()
	w.tampered[p] = data
	w.mu.Unlock()
}

// requestCount is how often the server was asked for path.
func (w *catalogWorld) requestCount(p string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, r := range w.requests {
		if r == p {
			n++
		}
	}
	return n
}

// sandbox returns a sandboxed package root with the apt repository as its
// source and debs installed with dpkg.
func (w *catalogWorld) sandbox(t testing.TB, debs ...string) *apttest.Sandbox {
	t.Helper()
	sb := apttest.MustSandbox(t, apttest.SandboxOptions{TempDir: w.sandboxDir})
	sb.MustAddRepo(t, "test", w.apt)
	if len(debs) > 0 {
		if err := sb.DpkgInstall(context.Background(), debs...); err != nil {
			t.Fatal(err)
		}
	}
	return sb
}

// catalogNode is an agent as the daemon wires it: a trust client on the
// origin, the policy service, and the engine with the verified catalog.
type catalogNode struct {
	*node
	pol *policysvc.Service
}

// newNode returns an agent in ring pilot (tag pilot) or broad on a Debian
// 12 amd64 node; opts change the engine's configuration.
func (w *catalogWorld) newNode(t testing.TB, name string, tags []string, sb *apttest.Sandbox, opts ...func(*engine.Config)) *catalogNode {
	t.Helper()
	return openCatalogNode(t, name, tags, sb, w.srv.URL, w.root, filepath.Join(w.stateDir, name), opts...)
}

func openCatalogNode(t testing.TB, name string, tags []string, sb *apttest.Sandbox, origin string, root []byte, stateDir string, opts ...func(*engine.Config)) *catalogNode {
	t.Helper()
	ctx := context.Background()
	b, err := apt.New(ctx, apt.Options{AptConfig: sb.AptConfig})
	if err != nil {
		t.Fatal(err)
	}
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
	// Not testutil.Logger: the crash tests' agent process opens a node
	// too, before the testing flags are parsed (testing.Verbose panics).
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	tc, err := trust.New(trust.Config{TrustedRoot: root, StateDir: filepath.Join(stateDir, "tuf"),
		Sources: []trust.Source{trust.NewOriginSource(origin)}, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	n := &node{t: t, sb: sb, backend: b, db: db, tags: tags,
		clock: &clock{t: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}}
	facts := func() policy.NodeFacts {
		return policy.NodeFacts{NodeID: name, Hostname: name, Tags: n.tags, OSID: "debian", OSVersion: "12", Arch: "amd64"}
	}
	svc := policysvc.New(policysvc.Config{Trust: tc, Log: log, Facts: facts})
	cfg := engine.Config{
		DB:          db,
		Log:         log,
		Packages:    engine.AptPackages(b),
		Content:     engine.StoreContent(cs, nil),
		Now:         n.clock.Now,
		Policy:      svc.Current,
		Catalog:     engine.TrustCatalog(svc.Catalog, tc),
		Facts:       facts,
		LockTimeout: 2 * time.Second,
		MinFree:     testMinFree,
		HealthEnv:   []string{"PATCHRING_ROOT=" + sb.Root},
		OnReboot:    func(time.Time, string, []string) { n.mu.Lock(); n.reboots++; n.mu.Unlock() },
	}
	for _, o := range opts {
		o(&cfg)
	}
	n.eng = engine.New(cfg)
	cn := &catalogNode{node: n, pol: svc}
	cn.refresh()
	return cn
}

// refresh verifies the repository through the policy service.
func (n *catalogNode) refresh() {
	n.t.Helper()
	if err := n.pol.Refresh(context.Background()); err != nil {
		n.t.Fatalf("policy refresh: %v", err)
	}
}

// versionOf returns the installed version of pkg ("" when not installed).
func (n *catalogNode) versionOf(pkg string) string {
	n.t.Helper()
	v, _, err := n.sb.InstalledVersion(context.Background(), pkg)
	if err != nil {
		n.t.Fatal(err)
	}
	return v
}

// plan plans and returns the decisions by package.
func (n *catalogNode) plan() map[string]policy.Decision {
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

func stepNames(tx *engine.Tx) string {
	var names []string
	for _, s := range tx.Steps {
		names = append(names, s.Name+":"+s.Status)
	}
	return strings.Join(names, " ")
}
