package bundle_test

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patchring/patchring/daemon/apicall"
	"github.com/patchring/patchring/daemon/apitypes"
	"github.com/patchring/patchring/daemon/aptproxy"
	"github.com/patchring/patchring/daemon/bundle"
	"github.com/patchring/patchring/internal/testutil"
	"github.com/patchring/patchring/p2p/content"
	"github.com/patchring/patchring/platform/apt/aptsnap"
	"github.com/patchring/patchring/platform/apt/apttest"
	"github.com/patchring/patchring/policy/trust"
	"github.com/patchring/patchring/policy/tufrepo"
)

// clock is a settable clock (Unix seconds).
type clock struct{ t atomic.Int64 }

func (c *clock) Now() time.Time      { return time.Unix(c.t.Load(), 0).UTC() }
func (c *clock) Set(t time.Time)     { c.t.Store(t.Unix()) }
func (c *clock) Add(d time.Duration) { c.t.Add(int64(d / time.Second)) }

// policyOnly is the policy service as an import uses it, over a real TUF
// client: the repository here publishes no policy, only targets.
type policyOnly struct{ tc *trust.Client }

func (p policyOnly) RefreshFrom(ctx context.Context, sources []trust.Source) error {
	_, err := p.tc.RefreshFrom(ctx, sources)
	return err
}
func (p policyOnly) Effective() apitypes.EffectivePolicy { return apitypes.EffectivePolicy{} }
func (p policyOnly) Catalog() []trust.CatalogEntry       { return nil }

// namedRepo gives aptsnap the repository's target names.
type namedRepo struct{ *tufrepo.Repo }

func (r namedRepo) TargetNames() []string {
	var out []string
	for _, t := range r.ListTargets() {
		out = append(out, t.Name)
	}
	return out
}

// tarRepo writes the repository's metadata/ and targets/ as a bundle, as
// `patchring bundle create` does.
func tarRepo(t *testing.T, repo, out string) {
	t.Helper()
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zw := gzip.NewWriter(f)
	tw := tar.NewWriter(zw)
	for _, top := range []string{"metadata", "targets"} {
		err := filepath.WalkDir(filepath.Join(repo, top), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(repo, p)
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if err := tw.WriteHeader(&tar.Header{Name: filepath.ToSlash(rel), Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
				return err
			}
			_, err = tw.Write(data)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestOfflineSiteAptFromBundle: an admin pins a snapshot of a signed
// by-hash archive (security-style Valid-Until of an hour) into the TUF
// repository and carries it in a bundle. On the site the archive is
// unreachable and Valid-Until has passed; the bundle is imported into a
// real TUF client, content store and apt proxy, and real apt updates and
// installs the batch from it. apt alone would refuse the expired release;
// the pin makes proxy and apt accept it only while the admin's metadata is
// in force. A replayed older bundle is refused by TUF, an older InRelease
// inside newer signed metadata by the proxy.
func TestOfflineSiteAptFromBundle(t *testing.T) {
	apttest.RequireTools(t)
	ctx := context.Background()
	signer := apttest.MustSigner(t)
	// The archive signs two hours ago with a one-hour Valid-Until: by the
	// time the site uses it, it has expired for apt and for the proxy.
	archiveClock := &clock{}
	archiveClock.Set(time.Now().Add(-2 * time.Hour))
	archive := apttest.MustStartRepo(t, apttest.RepoConfig{
		Origin: "Debian", Label: "Debian-Security", Suite: "stable-security", Codename: "bookworm-security",
		Signer: signer, ByHash: true, ValidFor: time.Hour, Filler: 5000,
		Clock: func() time.Time { archiveClock.Add(time.Second); return archiveClock.Now() },
	})
	debDir := t.TempDir()
	build := func(name, version string) string {
		return apttest.MustBuildDeb(t, debDir, apttest.Package{
			Name: name, Version: version, Arch: "all",
			Files: []apttest.File{{Path: "/usr/share/" + name + "/data", Body: []byte(strings.Repeat(version, 5000))}},
		})
	}
	archive.MustAdd(t, build("batch0", "1.0-1"), build("batch1", "1.0-1"), build("batch2", "1.0-1"))

	// The admin's repository and the snapshot pinned into it.
	repoDir, keysDir := filepath.Join(t.TempDir(), "repo"), filepath.Join(t.TempDir(), "keys")
	repo, err := tufrepo.Init(repoDir, keysDir, tufrepo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	src := aptsnap.Source{URL: strings.TrimSuffix(archive.URL(), "/"), Suite: "bookworm-security", Keyrings: []string{signer.Keyring},
		Packages: []string{"batch0", "batch1", "batch2"}}
	pin := func(name string) string {
		t.Helper()
		files, err := aptsnap.Pin(ctx, namedRepo{repo}, []aptsnap.Source{src}, aptsnap.Options{Now: archiveClock.Now, Prefix: trust.AptPrefix, WorkDir: t.TempDir()})
		if err != nil {
			t.Fatalf("pin: %v", err)
		}
		kinds := map[string]int{}
		for _, f := range files {
			kinds[f.Kind]++
		}
		if kinds["release"] != 1 || kinds["index"] == 0 || kinds["package"] != 3 {
			t.Fatalf("pinned %v", kinds)
		}
		if _, err := repo.Publish(); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(t.TempDir(), name)
		tarRepo(t, repoDir, out)
		return out
	}
	// A key the archive does not use is refused at creation.
	other := apttest.MustSigner(t)
	if _, err := aptsnap.Pin(ctx, namedRepo{repo}, []aptsnap.Source{{URL: src.URL, Suite: src.Suite, Keyrings: []string{other.Keyring}}},
		aptsnap.Options{Now: archiveClock.Now, Prefix: trust.AptPrefix, WorkDir: t.TempDir()}); err == nil {
		t.Fatal("a snapshot signed by another key was pinned")
	}
	oldBundle := pin("site-old.tar.gz")
	oldRelease, err := archive.ReadFile("dists/bookworm-security/InRelease")
	if err != nil {
		t.Fatal(err)
	}
	// A security update, and the bundle that carries it.
	archive.MustAdd(t, build("batch0", "1.0-2"))
	newBundle := pin("site-new.tar.gz")

	// The site: the archive (the WAN) is gone from here on.
	if err := archive.Stop(); err != nil {
		t.Fatal(err)
	}
	rootJSON, err := repo.RootJSON()
	if err != nil {
		t.Fatal(err)
	}
	tc, err := trust.New(trust.Config{TrustedRoot: rootJSON, StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	store, err := content.Open(filepath.Join(t.TempDir(), "content"), content.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := apttest.MustSandbox(t, apttest.SandboxOptions{ProxyAllowed: true})
	s.MustAddRepo(t, "archive", archive)
	siteClock := &clock{}
	siteClock.Set(time.Now())
	px, err := aptproxy.New(aptproxy.Config{Listen: "127.0.0.1:0", Root: s.Root, Store: store, Now: siteClock.Now,
		StateFile: filepath.Join(t.TempDir(), "aptproxy.json"), Logger: testutil.Logger(t),
		Pinned: bundle.PinnedReleases(tc.LastGood, siteClock.Now), PinnedProbe: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	pctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- px.Run(pctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("proxy: %v", err)
		}
	})
	snippet := s.Path("etc/apt/apt.conf.d/" + aptproxy.SnippetName)
	if err := aptproxy.WriteSnippet(snippet, px.URL()); err != nil {
		t.Fatal(err)
	}
	apt := func(args ...string) (string, error) {
		actx, acancel := context.WithTimeout(ctx, 3*time.Minute)
		defer acancel()
		out, err := s.Run(actx, "apt-get", append([]string{"-q"}, args...)...)
		return string(out), err
	}
	imp := bundle.New(bundle.Config{Log: testutil.Logger(t), StateDir: t.TempDir(), Policy: policyOnly{tc}, Targets: tc,
		Content: store, TrustState: tc.LastGood, Apt: px})

	// Before any bundle: nothing to serve.
	if out, err := apt("update"); err == nil && !strings.Contains(out, "Err") {
		t.Fatalf("apt-get update with no WAN and no bundle succeeded:\n%s", out)
	}

	// The WAN now drops packets instead of refusing: the archive's address
	// accepts connections and never answers. The proxy waits for the
	// vendor's Release only PinnedProbe before it serves the pinned one,
	// and then leaves the host alone until its backoff passes (the site
	// clock stands still from here), so apt never waits on it again.
	siteClock.Set(siteClock.Now().Add(10 * time.Minute)) // past the backoff of the refused attempts above
	hole := blackHole(t, strings.TrimSuffix(strings.TrimPrefix(archive.URL(), "http://"), "/"))

	res, err := imp.ImportBundle(ctx, apitypes.BundleImportRequest{Path: newBundle})
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	if res.AptReleases != 1 || res.AptFiles < 5 || len(res.Skipped) != 0 {
		t.Fatalf("import: %+v", res)
	}

	// The proxy serves the pinned release, but apt checks Valid-Until
	// itself: without the agent's configuration it refuses the release.
	if out, err := apt("update"); err == nil || !strings.Contains(out, "expired") {
		t.Fatalf("apt-get update of an expired release without the pin's apt configuration: %v\n%s", err, out)
	}
	conf := px.PinnedAptConf(ctx)
	if !strings.Contains(conf, "Acquire::Min-ValidTime::Debian-Security ") {
		t.Fatalf("pinned apt configuration: %q", conf)
	}
	if err := aptproxy.WriteSnippet(snippet, px.URL(), conf); err != nil {
		t.Fatal(err)
	}
	out, err := apt("update")
	if err != nil || strings.Contains(out, "W: ") || strings.Contains(out, "E: ") {
		t.Fatalf("apt-get update from the bundle: %v\n%s", err, out)
	}
	if out, err := apt("install", "-y", "batch0", "batch1", "batch2"); err != nil {
		t.Fatalf("apt-get install from the bundle: %v\n%s", err, out)
	}
	for pkg, want := range map[string]string{"batch0": "1.0-2", "batch1": "1.0-1", "batch2": "1.0-1"} {
		if v, _, err := s.InstalledVersion(ctx, pkg); err != nil || v != want {
			t.Errorf("%s: installed %q (%v), want %s", pkg, v, err, want)
		}
	}
	if n := hole.accepted.Load(); n != 1 {
		t.Errorf("the unanswering vendor got %d connections, want 1 (the first Release probe; then its backoff)", n)
	}
	st := px.Stats()
	if st["index"].FromVendor != 0 || st["package"].FromVendor != 0 || st["package"].FromStore == 0 || st["index"].FromStore == 0 {
		t.Errorf("traffic: %+v", st)
	}

	// A replayed older bundle: TUF refuses the rollback, nothing changes.
	_, err = imp.ImportBundle(ctx, apitypes.BundleImportRequest{Path: oldBundle})
	var ae *apicall.Error
	if !errors.As(err, &ae) || ae.Kind != apicall.KindConflict {
		t.Fatalf("replayed older bundle: %v", err)
	}
	t.Logf("replayed bundle refused: %v", err)

	// Newer signed metadata that pins an older InRelease (an admin's
	// mistake or a compromised builder): the proxy refuses the replay.
	custom, _ := json.Marshal(map[string]any{"apt": map[string]string{"url": archive.DistURL() + "InRelease", "kind": "release"}})
	if err := repo.AddTarget(trust.AptPrefix+"release/"+content.Sum(oldRelease).String(), oldRelease, custom); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Publish(); err != nil {
		t.Fatal(err)
	}
	staleBundle := filepath.Join(t.TempDir(), "site-stale.tar.gz")
	tarRepo(t, repoDir, staleBundle)
	_, err = imp.ImportBundle(ctx, apitypes.BundleImportRequest{Path: staleBundle})
	if !errors.As(err, &ae) || ae.Kind != apicall.KindConflict || !strings.Contains(err.Error(), "replay") {
		t.Fatalf("older InRelease in newer metadata: %v", err)
	}
	if out, err := apt("update"); err != nil || strings.Contains(out, "E: ") {
		t.Fatalf("apt-get update after the refused bundle: %v\n%s", err, out)
	}

	// Once the admin's metadata expires, the pin ends: nothing is served.
	lg, err := tc.LastGood()
	if err != nil {
		t.Fatal(err)
	}
	hole.close() // refused again: an expired pin is not waited for
	siteClock.Set(lg.ExpiresAt().Add(time.Minute))
	// (apt keeps its old lists then, as it does for an expired Release.)
	if out, err := apt("update"); err == nil && !strings.Contains(out, "Err:1 ") {
		t.Fatalf("apt-get update after the signed metadata expired:\n%s", out)
	} else {
		t.Logf("after expiry: %v\n%s", err, out)
	}
}

// hole is a TCP listener that accepts connections and never answers: a
// WAN that drops packets after the handshake.
type hole struct {
	ln       net.Listener
	accepted atomic.Int64
	mu       sync.Mutex
	conns    []net.Conn
	done     chan struct{}
}

// blackHole listens on addr (the stopped archive's) until the test ends or
// close is called.
func blackHole(t *testing.T, addr string) *hole {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("black hole on %s: %v", addr, err)
	}
	h := &hole{ln: ln, done: make(chan struct{})}
	go func() {
		defer close(h.done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h.accepted.Add(1)
			h.mu.Lock()
			h.conns = append(h.conns, c)
			h.mu.Unlock()
		}
	}()
	t.Cleanup(h.close)
	return h
}

func (h *hole) close() {
	h.ln.Close()
	<-h.done
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.conns {
		c.Close()
	}
	h.conns = nil
}
