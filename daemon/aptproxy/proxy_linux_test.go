package aptproxy

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patchring/patchring/internal/testutil"
	"github.com/patchring/patchring/p2p/content"
	"github.com/patchring/patchring/platform/apt"
	"github.com/patchring/patchring/platform/apt/apttest"
)

// fixture is a signed, by-hash archive with a realistic Packages index on
// 127.0.0.1, and a proxy in front of it.
type fixture struct {
	signer *apttest.Signer
	repo   *apttest.Repo
	debs   []apttest.PoolEntry
	store  *content.Store
	proxy  *Proxy
	clock  *testClock
	root   string
}

// testClock is the archive's and the proxy's clock: each Release file is
// dated a second after the last, so replays are visible at once.
type testClock struct{ t atomic.Int64 }

func (c *testClock) Now() time.Time          { return time.Unix(c.t.Load(), 0).UTC() }
func (c *testClock) Advance(d time.Duration) { c.t.Add(int64(d / time.Second)) }

type fixtureOptions struct {
	validFor time.Duration
	peers    PeerFetcher
}

func newFixture(t *testing.T, o fixtureOptions) *fixture { return newFixtureTB(t, o) }

func newFixtureTB(t testing.TB, o fixtureOptions) *fixture {
	t.Helper()
	apttest.RequireTools(t)
	if o.validFor == 0 {
		o.validFor = 7 * 24 * time.Hour
	}
	f := &fixture{signer: apttest.MustSigner(t), clock: &testClock{}}
	f.clock.t.Store(time.Now().Unix())
	f.repo = apttest.MustStartRepo(t, apttest.RepoConfig{
		Origin: "Debian", Label: "Debian-Security", Suite: "stable-security", Codename: "bookworm-security",
		Signer: f.signer, ByHash: true, ValidFor: o.validFor, Filler: 5000,
		Clock: func() time.Time { f.clock.Advance(time.Second); return f.clock.Now() },
	})
	dir := t.TempDir()
	var files []string
	for i := range 3 {
		files = append(files, apttest.MustBuildDeb(t, dir, apttest.Package{
			Name: fmt.Sprintf("batch%d", i), Version: "1.0-1", Arch: "all",
			Files: []apttest.File{{Path: fmt.Sprintf("/usr/share/batch%d/data", i), Body: []byte(strings.Repeat("x", 20000+i))}},
		}))
	}
	f.debs = f.repo.MustAdd(t, files...)
	var err error
	f.store, err = content.Open(filepath.Join(t.TempDir(), "content"), content.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The proxy reads the sources (and their Signed-By) of the node's
	// apt root; every sandbox here has the same one.
	f.root = t.TempDir()
	if err := os.MkdirAll(filepath.Join(f.root, "etc/apt/sources.list.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.root, "etc/apt/sources.list.d/archive.list"), []byte(f.repo.SourcesLine()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f.proxy = startProxy(t, Config{Listen: "127.0.0.1:0", Root: f.root, Store: f.store, Peers: o.peers, Now: f.clock.Now,
		StateFile: filepath.Join(t.TempDir(), "aptproxy.json"), Logger: testutil.Logger(t)})
	return f
}

func startProxy(t testing.TB, cfg Config) *Proxy {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("proxy: %v", err)
		}
	})
	return p
}

// sandbox is a new sandbox with the fixture's archive as its source.
func (f *fixture) sandbox(t *testing.T) *apttest.Sandbox {
	t.Helper()
	s := apttest.MustSandbox(t, apttest.SandboxOptions{ProxyAllowed: true})
	s.MustAddRepo(t, "archive", f.repo)
	return s
}

// apt runs apt-get through the proxy.
func (f *fixture) apt(t *testing.T, s *apttest.Sandbox, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	full := append([]string{"-o", "Acquire::http::Proxy=" + f.proxy.URL(), "-o", "Acquire::PDiffs=false", "-q"}, args...)
	out, err := s.Run(ctx, "apt-get", full...)
	return string(out), err
}

func (f *fixture) mustApt(t *testing.T, s *apttest.Sandbox, args ...string) string {
	t.Helper()
	out, err := f.apt(t, s, args...)
	if err != nil {
		t.Fatalf("apt-get %v: %v\n%s", args, err, out)
	}
	for _, bad := range []string{"W: ", "unauthenticated", "NO_PUBKEY", "not signed"} {
		if strings.Contains(out, bad) {
			t.Fatalf("apt-get %v reported %q:\n%s", args, bad, out)
		}
	}
	return out
}

func installed(t *testing.T, s *apttest.Sandbox, pkg string) string {
	t.Helper()
	v, _, err := s.InstalledVersion(context.Background(), pkg)
	if err != nil {
		return ""
	}
	return v
}

// byHashRequests are the archive's by-hash index requests, by path.
func byHashRequests(r *apttest.Repo) map[string]int {
	out := map[string]int{}
	for _, q := range r.Requests() {
		if strings.Contains(q, "/by-hash/SHA256/") {
			out[q]++
		}
	}
	return out
}

// TestProxyEndToEnd: real apt through the proxy against a signed by-hash
// archive with a 5,000-stanza Packages index; a second node on the same
// proxy store gets every index and .deb without the archive being asked
// again; apt reports nothing unverified.
func TestProxyEndToEnd(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	idx, err := f.repo.ReadFile("dists/bookworm-security/main/binary-amd64/Packages")
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(idx, []byte("\nPackage: ")) + 1; n < 5000 || len(idx) < 2<<20 {
		t.Fatalf("Packages index has %d stanzas, %d bytes; want >= 5000 and >= 2 MiB", n, len(idx))
	}
	s1 := f.sandbox(t)
	f.mustApt(t, s1, "update")
	f.mustApt(t, s1, "install", "-y", "batch0", "batch1", "batch2")
	for i := range 3 {
		if v := installed(t, s1, fmt.Sprintf("batch%d", i)); v != "1.0-1" {
			t.Fatalf("batch%d: installed %q", i, v)
		}
	}
	var debBytes int64
	for _, e := range f.debs {
		debBytes += e.Size
	}
	st := f.proxy.Stats()
	if st["index"].FromVendor < int64(100<<10) || st["package"].FromVendor != debBytes || st["release"].FromVendor == 0 {
		t.Fatalf("stats after the first node: %+v", st)
	}
	hashes := byHashRequests(f.repo)
	if len(hashes) == 0 {
		t.Fatalf("apt did not use by-hash; archive requests: %v", f.repo.Requests())
	}

	// A second node behind the same store: indices and .debs from the
	// store, the archive is asked for InRelease only.
	s2 := f.sandbox(t)
	f.mustApt(t, s2, "update")
	f.mustApt(t, s2, "install", "-y", "batch0", "batch1", "batch2")
	for path, n := range byHashRequests(f.repo) {
		if n != 1 {
			t.Errorf("archive served %s %d times, want once", path, n)
		}
	}
	for _, e := range f.debs {
		if n := f.repo.CountRequests(e.Filename); n != 1 {
			t.Errorf("archive served %s %d times, want once", e.Filename, n)
		}
	}
	st2 := f.proxy.Stats()
	if st2["index"].FromVendor != st["index"].FromVendor || st2["package"].FromVendor != st["package"].FromVendor {
		t.Fatalf("second node read from the vendor: %+v then %+v", st, st2)
	}
	if st2["package"].FromStore != debBytes {
		t.Fatalf("second node's packages not from the store: %+v", st2)
	}

	// A restarted proxy (same store and state) still knows the .debs
	// without a new index download: apt-get update finds nothing new.
	p2 := startProxy(t, Config{Listen: "127.0.0.1:0", Root: f.root, Store: f.store, Now: f.clock.Now, StateFile: f.proxy.cfg.StateFile})
	s3 := f.sandbox(t)
	f.proxy = p2
	f.mustApt(t, s3, "update")
	f.mustApt(t, s3, "install", "-y", "batch1")
	if v := installed(t, s3, "batch1"); v != "1.0-1" {
		t.Fatalf("after restart: batch1 %q", v)
	}
}

// TestProxyRefuses: a tampered index, a tampered .deb, a replayed older
// InRelease, an expired one and one signed by another key are never
// handed to apt; apt fails on them, keeps what it had, and completes once
// the source is honest again.
func TestProxyRefuses(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	s := f.sandbox(t)
	dist := "dists/bookworm-security/"

	t.Run("tampered index", func(t *testing.T) {
		rel, err := f.repo.ReadFile(dist + "Release")
		if err != nil {
			t.Fatal(err)
		}
		// Tamper with every Packages index the Release lists, by-hash and
		// by name (apt falls back from one to the other).
		var tampered []string
		for _, line := range strings.Split(string(rel), "\n") {
			fs := strings.Fields(line)
			if len(fs) == 3 && len(fs[0]) == 64 && strings.HasPrefix(fs[2], "main/binary-amd64/Packages") {
				for _, p := range []string{dist + path.Dir(fs[2]) + "/by-hash/SHA256/" + fs[0], dist + fs[2]} {
					data, err := f.repo.ReadFile(p)
					if err != nil {
						t.Fatal(err)
					}
					data = append([]byte{}, data...)
					data[len(data)/2] ^= 0x40
					f.repo.Override(p, data)
					tampered = append(tampered, p)
				}
			}
		}
		before := f.proxy.Stats()["index"].Refused
		out, err := f.apt(t, s, "update", "--error-on=any")
		if err == nil {
			t.Fatalf("apt-get update succeeded with tampered indices:\n%s", out)
		}
		if !strings.Contains(out, "not verified") {
			t.Fatalf("apt's error does not carry the proxy's reason:\n%s", out)
		}
		if f.proxy.Stats()["index"].Refused <= before {
			t.Fatalf("no refusal counted: %+v", f.proxy.Stats())
		}
		for _, p := range tampered {
			f.repo.Override(p, nil)
		}
		f.mustApt(t, s, "update")
	})

	t.Run("tampered deb", func(t *testing.T) {
		e := f.debs[0]
		data, err := f.repo.ReadFile(e.Filename)
		if err != nil {
			t.Fatal(err)
		}
		bad := append([]byte{}, data...)
		bad[len(bad)-100] ^= 1
		f.repo.Override(e.Filename, bad)
		out, err := f.apt(t, s, "install", "-y", e.Package)
		if err == nil || installed(t, s, e.Package) != "" {
			t.Fatalf("install of a tampered .deb went through:\n%s", out)
		}
		if !strings.Contains(out, "not verified") {
			t.Fatalf("apt's error does not carry the proxy's reason:\n%s", out)
		}
		if f.store.Has(content.MustParseHash(e.SHA256)) {
			t.Fatal("the store holds the .deb after a tampered download")
		}
		f.repo.Override(e.Filename, nil)
		f.mustApt(t, s, "install", "-y", e.Package)
		if installed(t, s, e.Package) != "1.0-1" {
			t.Fatal("not installed from the honest archive")
		}
	})

	t.Run("replayed InRelease", func(t *testing.T) {
		old, err := f.repo.ReadFile(dist + "InRelease")
		if err != nil {
			t.Fatal(err)
		}
		newer := apttest.MustBuildDeb(t, t.TempDir(), apttest.Package{Name: "batch0", Version: "1.1-1", Arch: "all"})
		f.repo.MustAdd(t, newer)
		f.mustApt(t, s, "update")
		f.repo.Override(dist+"InRelease", old)
		out, err := f.apt(t, s, "update", "--error-on=any")
		if err == nil || !strings.Contains(out, "replay") {
			t.Fatalf("a replayed older InRelease was not refused (err %v):\n%s", err, out)
		}
		f.repo.Override(dist+"InRelease", nil)
		f.mustApt(t, s, "update")
		f.mustApt(t, s, "install", "-y", "batch0")
		if v := installed(t, s, "batch0"); v != "1.1-1" {
			t.Fatalf("batch0 %q after the replay was refused, want 1.1-1", v)
		}
	})

	t.Run("other key", func(t *testing.T) {
		other := apttest.MustSigner(t)
		rel, err := f.repo.ReadFile(dist + "Release")
		if err != nil {
			t.Fatal(err)
		}
		forged, err := other.ClearSign(rel)
		if err != nil {
			t.Fatal(err)
		}
		f.repo.Override(dist+"InRelease", forged)
		defer f.repo.Override(dist+"InRelease", nil)
		out, err := f.apt(t, s, "update", "--error-on=any")
		if err == nil || !strings.Contains(out, "signature not verified") {
			t.Fatalf("InRelease signed by another key was not refused (err %v):\n%s", err, out)
		}
	})

	t.Run("expired", func(t *testing.T) {
		f.clock.Advance(8 * 24 * time.Hour) // past Valid-Until, archive not re-signed
		defer f.clock.Advance(-8 * 24 * time.Hour)
		in, err := f.repo.ReadFile(dist + "InRelease")
		if err != nil {
			t.Fatal(err)
		}
		f.repo.Override(dist+"InRelease", in) // the mirror keeps serving the old file
		defer f.repo.Override(dist+"InRelease", nil)
		out, err := f.apt(t, s, "update", "--error-on=any")
		if err == nil || !strings.Contains(out, "Valid-Until") {
			t.Fatalf("expired InRelease was not refused (err %v):\n%s", err, out)
		}
	})
}

// TestBackendThroughProxy: the engine's apt backend, given the proxy,
// runs apt-get update and install through it.
func TestBackendThroughProxy(t *testing.T) {
	f := newFixture(t, fixtureOptions{})
	s := f.sandbox(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	b, err := apt.New(ctx, apt.Options{AptConfig: s.AptConfig, HTTPProxy: f.proxy.URL(), LockTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Install(ctx, []apt.PkgVersion{{Name: "batch2", Version: "1.0-1"}}, apt.InstallOptions{}); err != nil {
		t.Fatal(err)
	}
	if v := installed(t, s, "batch2"); v != "1.0-1" {
		t.Fatalf("batch2 %q", v)
	}
	st := f.proxy.Stats()
	if st["release"].FromVendor == 0 || st["index"].FromVendor == 0 || st["package"].FromVendor == 0 {
		t.Fatalf("the backend's apt-get did not go through the proxy: %+v", st)
	}
}
