//go:build linux

package sitetest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patchring/patchring/platform/apt/apttest"
	"github.com/patchring/patchring/policy"
	"github.com/patchring/patchring/policy/credential/credtest"
	"github.com/patchring/patchring/policy/tufrepo"
)

// origin is what lives behind the WAN: the vendor's apt repository (its
// indices on originIP:80, its pool on cdnIP:80, reached by a redirect as
// Debian's mirrors redirect to a CDN) and the fleet's signed repository
// (TUF) on originIP:8080. The servers run in the test process on listeners
// opened inside the origin namespace.
type origin struct {
	apt      *apttest.Repo
	tuf      *tufrepo.Repo
	tufDir   string
	keysDir  string // the TUF keys, every role's (the admin's)
	rootFile string
	pool     *poolLog
	// ca is the fleet CA (tufrepo.InitFleet): the repository publishes
	// fleet.json, so the site's agents need credentials it signed.
	ca *credtest.CA

	mu         sync.Mutex
	indexReqs  map[string]int // GETs of the apt repository's dists/ files answered with the file, by path
	targetReqs map[string]int // GETs of the signed repository's targets/ files, by path
}

// TargetRequests returns how often the signed repository served a target
// file whose name ends with name (targets are named <sha256>.<name>).
func (o *origin) TargetRequests(name string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for p, c := range o.targetReqs {
		if strings.HasSuffix(p, "."+name) || strings.HasSuffix(p, "/"+name) {
			n += c
		}
	}
	return n
}

// IndexRequests returns how often each dists/ file was asked for.
func (o *origin) IndexRequests() map[string]int {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make(map[string]int, len(o.indexReqs))
	for k, v := range o.indexReqs {
		out[k] = v
	}
	return out
}

// transfer is one GET served from the pool.
type transfer struct {
	Client string // remote IP
	Path   string
	Start  time.Time
	Range  string
	sent   atomic.Int64
	done   atomic.Bool
}

func (x *transfer) Sent() int64 { return x.sent.Load() }
func (x *transfer) Done() bool  { return x.done.Load() }

// poolLog records every transfer the pool serves.
type poolLog struct {
	mu        sync.Mutex
	transfers []*transfer
	hold      *poolHold
}

// poolHold stalls the transfers of one file once they sent at bytes, until
// released: a test catches a download mid-way however slow or fast the
// machine is.
type poolHold struct {
	base     string
	at       int64
	released chan struct{}
	once     sync.Once
}

// Hold stalls every transfer of file base after it sent at bytes, until
// the returned release is called (it is also called when the test ends).
func (l *poolLog) Hold(t testing.TB, base string, at int64) (release func()) {
	h := &poolHold{base: base, at: at, released: make(chan struct{})}
	l.mu.Lock()
	l.hold = h
	l.mu.Unlock()
	release = func() { h.once.Do(func() { close(h.released) }) }
	t.Cleanup(release)
	return release
}

// holdFor is the hold that applies to a transfer of p (nil: none).
func (l *poolLog) holdFor(p string) *poolHold {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.hold != nil && path.Base(p) == l.hold.base {
		return l.hold
	}
	return nil
}

func (l *poolLog) add(x *transfer) {
	l.mu.Lock()
	l.transfers = append(l.transfers, x)
	l.mu.Unlock()
}

// Transfers returns the transfers of file base name (all when base is "").
// transfersAll returns every transfer the pool served.
func (l *poolLog) transfersAll() []*transfer {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*transfer(nil), l.transfers...)
}

func (l *poolLog) Transfers(base string) []*transfer {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*transfer
	for _, x := range l.transfers {
		if base == "" || path.Base(x.Path) == base {
			out = append(out, x)
		}
	}
	return out
}

// Clients returns the distinct client IPs that fetched base, in order of
// their first request.
func (l *poolLog) Clients(base string) []string {
	var out []string
	seen := map[string]bool{}
	for _, x := range l.Transfers(base) {
		if !seen[x.Client] {
			seen[x.Client] = true
			out = append(out, x.Client)
		}
	}
	return out
}

// Bytes is the sum of bytes sent for base.
func (l *poolLog) Bytes(base string) int64 {
	var n int64
	for _, x := range l.Transfers(base) {
		n += x.Sent()
	}
	return n
}

type countingWriter struct {
	http.ResponseWriter
	x    *transfer
	hold *poolHold
	r    *http.Request
}

func (w countingWriter) Write(p []byte) (int, error) {
	if h := w.hold; h != nil && w.x.sent.Load() < h.at && w.x.sent.Load()+int64(len(p)) > h.at {
		// Send up to the hold, flush it to the client, and wait.
		k := h.at - w.x.sent.Load()
		n, err := w.ResponseWriter.Write(p[:k])
		w.x.sent.Add(int64(n))
		if err != nil {
			return n, err
		}
		if f, ok := w.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		select {
		case <-h.released:
		case <-w.r.Context().Done():
			return n, w.r.Context().Err()
		}
		m, err := w.ResponseWriter.Write(p[k:])
		w.x.sent.Add(int64(m))
		return n + m, err
	}
	n, err := w.ResponseWriter.Write(p)
	w.x.sent.Add(int64(n))
	return n, err
}

// serveFile serves dir/<url path> with Range support and without
// Last-Modified (indices rewritten within one second must not get a 304).
func serveFile(w http.ResponseWriter, r *http.Request, dir string) {
	serveFileAt(w, r, dir, false)
}

// servePoolFile is serveFile with Last-Modified, as archives send it for
// their pool: a pool file never changes, and caches such as apt-cacher-ng
// keep what they can date.
func servePoolFile(w http.ResponseWriter, r *http.Request, dir string) {
	serveFileAt(w, r, dir, true)
}

func serveFileAt(w http.ResponseWriter, r *http.Request, dir string, dated bool) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	rel := path.Clean("/" + r.URL.Path)
	f, err := os.Open(filepath.Join(dir, filepath.FromSlash(rel)))
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		http.NotFound(w, r)
		return
	}
	var mod time.Time
	if dated {
		if st, err := f.Stat(); err == nil {
			mod = st.ModTime()
		}
	}
	http.ServeContent(w, r, path.Base(rel), mod, f)
}

// releaseETag is the ETag of a release file (InRelease, Release,
// Release.gpg) of the archive in dir: a hash of its content; "" for
// other files.
func releaseETag(dir, urlPath string) string {
	switch path.Base(urlPath) {
	case "InRelease", "Release", "Release.gpg":
	default:
		return ""
	}
	data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(path.Clean("/"+urlPath))))
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(data)
	return `"` + hex.EncodeToString(sum[:16]) + `"`
}

// startOrigin creates the repositories and serves them inside tp's origin
// namespace until the test ends.
func startOrigin(t testing.TB, tp *topo, dir string, repo apttest.RepoConfig, expiries map[string]time.Duration) *origin {
	t.Helper()
	o := &origin{pool: &poolLog{}, indexReqs: map[string]int{}, targetReqs: map[string]int{}}
	if repo.Origin == "" {
		repo.Origin, repo.Suite = "Acme", "stable"
	}
	o.apt = apttest.MustStartRepo(t, repo)
	o.tufDir, o.keysDir = filepath.Join(dir, "tuf"), filepath.Join(dir, "tuf-keys")
	var err error
	if o.tuf, err = tufrepo.Init(o.tufDir, o.keysDir, tufrepo.Options{Expiries: expiries}); err != nil {
		t.Fatal(err)
	}
	if _, err := o.tuf.InitFleet(); err != nil {
		t.Fatal(err)
	}
	caKey, err := o.tuf.FleetKey(tufrepo.RoleFleetCA)
	if err != nil {
		t.Fatal(err)
	}
	o.ca = credtest.FromKey(caKey)
	root, err := o.tuf.RootJSON()
	if err != nil {
		t.Fatal(err)
	}
	o.rootFile = filepath.Join(dir, "root.json")
	if err := os.WriteFile(o.rootFile, root, 0o644); err != nil {
		t.Fatal(err)
	}
	repoDir := o.apt.Dir()
	indices := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/pool/") {
			http.Redirect(w, r, "http://"+cdnIP+r.URL.Path, http.StatusFound)
			return
		}
		if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/dists/") {
			// The release files carry an ETag of their content, as a real
			// archive's web server sends one; a conditional request whose
			// file did not change is answered 304 (by ServeContent) and
			// not counted as a transfer.
			etag := releaseETag(repoDir, r.URL.Path)
			if etag != "" {
				w.Header().Set("ETag", etag)
			}
			if etag == "" || r.Header.Get("If-None-Match") != etag {
				o.mu.Lock()
				o.indexReqs[r.URL.Path]++
				o.mu.Unlock()
			}
		}
		serveFile(w, r, repoDir)
	})
	pool := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/pool/") {
			http.NotFound(w, r)
			return
		}
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		x := &transfer{Client: host, Path: r.URL.Path, Start: time.Now(), Range: r.Header.Get("Range")}
		o.pool.add(x)
		defer x.done.Store(true)
		servePoolFile(countingWriter{ResponseWriter: w, x: x, hold: o.pool.holdFor(r.URL.Path), r: r}, r, repoDir)
	})
	serve(t, tp.origin, originIP+":80", indices)
	serve(t, tp.origin, cdnIP+":80", pool)
	tuf := tufrepo.Handler(o.tufDir)
	serve(t, tp.origin, originIP+":8080", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/targets/") {
			o.mu.Lock()
			o.targetReqs[r.URL.Path]++
			o.mu.Unlock()
		}
		tuf.ServeHTTP(w, r)
	}))
	return o
}

// serve serves h on addr inside namespace ns until the test ends.
func serve(t testing.TB, ns, addr string, h http.Handler) {
	t.Helper()
	ln, err := listenIn(ns, addr)
	if err != nil {
		t.Fatalf("listen on %s in %s: %v", addr, ns, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("origin server %s: %v", addr, err)
		}
	})
}

// sourcesLine is the sandboxes' sources.list entry for the vendor's
// repository as seen from the site.
func (o *origin) sourcesLine() string {
	c := o.apt.Config()
	if c.Signer != nil {
		return fmt.Sprintf("deb [signed-by=%s] http://%s/ %s %s", c.Signer.Keyring, originIP, c.Codename, c.Component)
	}
	return fmt.Sprintf("deb [trusted=yes] http://%s/ %s %s", originIP, c.Codename, c.Component)
}

// policyURL is the TUF origin as seen from the site.
func (o *origin) policyURL() string { return "http://" + originIP + ":8080" }

// publishPolicy validates and publishes a policy (YAML) to the signed
// repository; nodes pick it up at their next refresh.
func (o *origin) publishPolicy(t testing.TB, doc string) {
	t.Helper()
	p, err := policy.Parse([]byte(doc), "policy.yaml")
	if err != nil {
		t.Fatalf("test policy: %v", err)
	}
	canon, err := policy.MarshalCanonical(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.tuf.PublishPolicy(canon); err != nil {
		t.Fatal(err)
	}
}
