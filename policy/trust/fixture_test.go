package trust_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/patchring/patchring/policy/trust"
	"github.com/patchring/patchring/policy/tufrepo"
)

// policyV1 and policyV2 are opaque policy documents.
var (
	policyV1 = []byte(`{"policy":1}`)
	policyV2 = []byte(`{"policy":2,"rings":["lab","broad"]}`)
)

// fixture is a repository built with tufrepo, served by a real HTTP server
// on 127.0.0.1 that a test can make lie, and the root an agent was
// installed with.
type fixture struct {
	t        testing.TB
	repoDir  string
	keysDir  string
	repo     *tufrepo.Repo
	srv      *tamperServer
	rootV1   []byte
	clock    *clock
	catalog  string // name of the catalog target
	payload  []byte // its bytes
	payload2 string // name of a second catalog target
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// newFixture initializes a repository with opts, publishes policyV1 and two
// catalog entries, and serves it.
func newFixture(t testing.TB, opts tufrepo.Options) *fixture {
	t.Helper()
	base := t.TempDir()
	f := &fixture{t: t, repoDir: filepath.Join(base, "repo"), keysDir: filepath.Join(base, "keys"), clock: &clock{t: time.Now()}}
	repo, err := tufrepo.Init(f.repoDir, f.keysDir, opts)
	if err != nil {
		t.Fatalf("init repo: %v", err)
	}
	f.repo = repo
	f.rootV1, err = repo.RootJSON()
	if err != nil {
		t.Fatal(err)
	}
	f.payload = []byte(strings.Repeat("payload bytes of tool 1.0\n", 1000))
	src := filepath.Join(base, "tool_1.0_amd64.deb")
	if err := os.WriteFile(src, f.payload, 0o644); err != nil {
		t.Fatal(err)
	}
	f.catalog, err = repo.AddCatalogFile(src, tufrepo.CatalogMeta{Package: "tool", Version: "1.0", Reboot: true, Severity: "high", Classification: "security", CVEs: []string{"CVE-2024-1234"}, AppliesTo: []string{"debian-12"}})
	if err != nil {
		t.Fatal(err)
	}
	src2 := filepath.Join(base, "other_2.0_amd64.deb")
	if err := os.WriteFile(src2, []byte(strings.Repeat("other software\n", 1000)), 0o644); err != nil {
		t.Fatal(err)
	}
	f.payload2, err = repo.AddCatalogFile(src2, tufrepo.CatalogMeta{Package: "other", Version: "2.0"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.PublishPolicy(policyV1); err != nil {
		t.Fatal(err)
	}
	f.srv = newTamperServer(t, f.repoDir)
	return f
}

// reopen re-reads the repository from disk (as a new admin command would).
func (f *fixture) reopen() *tufrepo.Repo {
	f.t.Helper()
	r, err := tufrepo.Open(f.repoDir, f.keysDir, "")
	if err != nil {
		f.t.Fatalf("open repo: %v", err)
	}
	f.repo = r
	return r
}

// config returns an agent configuration with the installed root v1, a
// fresh state dir, the fixture's clock and the origin as only source.
func (f *fixture) config() trust.Config {
	return trust.Config{
		TrustedRoot: f.rootV1,
		StateDir:    filepath.Join(f.t.TempDir(), "state"),
		Sources:     []trust.Source{f.origin()},
		Now:         f.clock.Now,
		Timeout:     10 * time.Second,
	}
}

func (f *fixture) origin() *trust.HTTPSource {
	return &trust.HTTPSource{BaseURL: f.srv.URL, IsOriginServer: true, Client: f.srv.Client()}
}

func (f *fixture) client(mods ...func(*trust.Config)) *trust.Client {
	f.t.Helper()
	cfg := f.config()
	for _, m := range mods {
		m(&cfg)
	}
	c, err := trust.New(cfg)
	if err != nil {
		f.t.Fatalf("new client: %v", err)
	}
	return c
}

// refreshed returns a client that completed one good refresh.
func (f *fixture) refreshed(mods ...func(*trust.Config)) (*trust.Client, trust.Result) {
	f.t.Helper()
	c := f.client(mods...)
	res, err := c.Refresh(context.Background())
	if err != nil {
		f.t.Fatalf("first refresh: %v", err)
	}
	return c, res
}

// metaBytes reads a file of the served metadata directory.
func (f *fixture) metaBytes(name string) []byte {
	f.t.Helper()
	b, err := os.ReadFile(filepath.Join(f.repoDir, "metadata", name))
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

// payloadURLPath is the served path of a target's bytes.
func (f *fixture) payloadURLPath(name string) string {
	f.t.Helper()
	for _, tg := range f.repo.ListTargets() {
		if tg.Name == name {
			dir, base := path.Split(name)
			return "/targets/" + dir + tg.SHA256 + "." + base
		}
	}
	f.t.Fatalf("no target %s", name)
	return ""
}

// keys loads the private keys of role from the keys directory.
func (f *fixture) keys(role string) []*tufrepo.Key {
	f.t.Helper()
	matches, err := filepath.Glob(filepath.Join(f.keysDir, role+"-*.json"))
	if err != nil {
		f.t.Fatal(err)
	}
	var out []*tufrepo.Key
	for _, m := range matches {
		k, err := tufrepo.ReadKeyFile(m, nil, true)
		if err != nil {
			f.t.Fatal(err)
		}
		out = append(out, k)
	}
	if len(out) == 0 {
		f.t.Fatalf("no %s keys in %s", role, f.keysDir)
	}
	return out
}

// sign replaces md's signatures with ones by keys (an attacker holding
// them).
func sign[T metadata.Roles](t testing.TB, md *metadata.Metadata[T], keys ...*tufrepo.Key) []byte {
	t.Helper()
	md.ClearSignatures()
	for _, k := range keys {
		s, err := signature.LoadSigner(k.Private, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := md.Sign(s); err != nil {
			t.Fatal(err)
		}
	}
	b, err := md.ToBytes(true)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func load[T metadata.Roles](t testing.TB, data []byte) *metadata.Metadata[T] {
	t.Helper()
	md, err := (&metadata.Metadata[T]{}).FromBytes(data)
	if err != nil {
		t.Fatal(err)
	}
	return md
}

func metaFile(t testing.TB, version int64, data []byte) *metadata.MetaFiles {
	t.Helper()
	tf, err := metadata.TargetFile().FromBytes("", data, "sha256")
	if err != nil {
		t.Fatal(err)
	}
	return &metadata.MetaFiles{Version: version, Length: tf.Length, Hashes: tf.Hashes}
}

// assertKeptGood checks that the client still offers the previous verified
// state: same versions and policy.
func assertKeptGood(t testing.TB, c *trust.Client, want trust.Result) {
	t.Helper()
	st, err := c.LastGood()
	if err != nil {
		t.Fatalf("LastGood after failed refresh: %v", err)
	}
	if st.Versions != want.Versions {
		t.Errorf("versions after failed refresh = %+v, want the previous %+v", st.Versions, want.Versions)
	}
	if string(st.Policy) != string(want.Policy) {
		t.Errorf("policy after failed refresh = %q, want the previous %q", st.Policy, want.Policy)
	}
}

// assertReason checks that err wraps reason.
func assertReason(t testing.TB, err, reason error) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %v", reason)
	}
	if !errors.Is(err, reason) {
		t.Fatalf("error %q does not wrap %v", err, reason)
	}
}

// tamperServer serves a repository directory like any static server, except
// for paths a test overrides.
type tamperServer struct {
	*httptest.Server
	mu        sync.Mutex
	overrides map[string]http.HandlerFunc
	hits      map[string]int
}

func newTamperServer(t testing.TB, dir string) *tamperServer {
	t.Helper()
	s := &tamperServer{overrides: map[string]http.HandlerFunc{}, hits: map[string]int{}}
	files := tufrepo.Handler(dir)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		h := s.overrides[r.URL.Path]
		s.hits[r.URL.Path]++
		s.mu.Unlock()
		if h != nil {
			h(w, r)
			return
		}
		files.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *tamperServer) set(path string, h http.HandlerFunc) {
	s.mu.Lock()
	s.overrides[path] = h
	s.mu.Unlock()
}

func (s *tamperServer) reset() {
	s.mu.Lock()
	s.overrides = map[string]http.HandlerFunc{}
	s.mu.Unlock()
}

func (s *tamperServer) serve(path string, data []byte) {
	s.set(path, func(w http.ResponseWriter, r *http.Request) { w.Write(data) })
}

func (s *tamperServer) notFound(path string) {
	s.set(path, http.NotFound)
}

func (s *tamperServer) hitCount(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[path]
}

// endless streams bytes until the client goes away (bounded at 256 MiB).
func endless(w http.ResponseWriter, r *http.Request) {
	buf := []byte(strings.Repeat(" ", 32<<10))
	for i := 0; i < 8192 && r.Context().Err() == nil; i++ {
		if _, err := w.Write(buf); err != nil {
			return
		}
	}
}

// trickle sends one byte at a time with a pause between them (bounded at
// 10000 bytes), flushing each, until the client goes away.
func trickle(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	t := time.NewTicker(2 * time.Millisecond)
	defer t.Stop()
	for i := 0; i < 10000; i++ {
		select {
		case <-r.Context().Done():
			return
		case <-t.C:
		}
		if _, err := w.Write([]byte{' '}); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}
