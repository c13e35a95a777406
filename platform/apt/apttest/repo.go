package apttest

import (
	"bytes"
	"compress/gzip"
	"crypto/md5" //nolint:gosec // apt's Release format lists MD5Sum; it is not used for trust here.
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// RepoConfig describes the Release file of a test repository. Zero fields
// get defaults.
type RepoConfig struct {
	Origin string // default "patchring-test"
	Label  string // default Origin
	Suite  string // default "stable"
	// Codename defaults to Suite. The distribution directory is
	// dists/<Codename>, as on Debian's mirrors, and SourcesLine uses it.
	Codename    string
	Version     string // optional release version, e.g. "12"
	Description string
	Component   string   // default "main"
	Archs       []string // default [DefaultArch]; "all" packages go into every one

	// Signer signs the Release file: the repository then serves InRelease
	// and Release.gpg, and SourcesLine names the key with signed-by
	// instead of trusted=yes. Nil: unsigned. The caller closes it.
	Signer *Signer
	// ByHash serves every index also under <dir>/by-hash/SHA256/<hash>
	// (kept after the index changes, as Debian's mirrors do) and says
	// Acquire-By-Hash: yes.
	ByHash bool
	// ValidFor sets Valid-Until to Date+ValidFor, as Debian's security
	// archive does (about a week). Zero: no Valid-Until.
	ValidFor time.Duration
	// Filler adds that many synthetic stanzas to every Packages index (for
	// packages whose files are not in the pool), so the index has a
	// realistic size: Debian's have tens of thousands.
	Filler int
	// Clock dates the Release file; default time.Now.
	Clock func() time.Time
}

// SecurityRepoConfig looks like Debian 12's security archive.
func SecurityRepoConfig() RepoConfig {
	return RepoConfig{
		Origin:   "Debian",
		Label:    "Debian-Security",
		Suite:    "oldstable-security",
		Codename: "bookworm-security",
		Version:  "12",
	}
}

func (c RepoConfig) withDefaults() RepoConfig {
	if c.Origin == "" {
		c.Origin = "patchring-test"
	}
	if c.Label == "" {
		c.Label = c.Origin
	}
	if c.Suite == "" {
		c.Suite = "stable"
	}
	if c.Codename == "" {
		c.Codename = c.Suite
	}
	if c.Component == "" {
		c.Component = "main"
	}
	if len(c.Archs) == 0 {
		c.Archs = []string{DefaultArch}
	}
	return c
}

// PoolEntry is a package published in a Repo.
type PoolEntry struct {
	DebInfo
	// Filename is the path relative to the repository root, as in Packages.
	Filename string
	Size     int64
	SHA256   string
}

// Repo is a real apt repository served over HTTP on 127.0.0.1. It is safe
// for concurrent use.
type Repo struct {
	cfg      RepoConfig
	dir      string
	url      string
	srv      *http.Server
	serveErr chan error

	mu        sync.Mutex
	entries   map[string]PoolEntry // by name_version_arch
	requests  []string
	unchanged []string // requests answered 304 Not Modified
	stopped   bool
	overrides map[string][]byte // URL path -> what to serve instead
	filler    []byte
}

// StartRepo creates an empty repository in a new temporary directory and
// serves it on 127.0.0.1 on a free port. Close stops it and removes the
// directory.
func StartRepo(cfg RepoConfig) (*Repo, error) {
	cfg = cfg.withDefaults()
	dir, err := os.MkdirTemp("", "apttest-repo-")
	if err != nil {
		return nil, fmt.Errorf("start repo: %w", err)
	}
	r := &Repo{cfg: cfg, dir: dir, entries: map[string]PoolEntry{}, serveErr: make(chan error, 1), overrides: map[string][]byte{}}
	if err := r.writeIndices(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start repo: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start repo: %w", err)
	}
	r.url = "http://" + ln.Addr().String() + "/"
	r.srv = &http.Server{Handler: http.HandlerFunc(r.serve), ReadHeaderTimeout: 10 * time.Second}
	go func() { r.serveErr <- r.srv.Serve(ln) }()
	return r, nil
}

// MustStartRepo is StartRepo for tests: it fails t on error and closes the
// repository when the test ends.
func MustStartRepo(t TB, cfg RepoConfig) *Repo {
	t.Helper()
	r, err := StartRepo(cfg)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// Config returns the repository's configuration with defaults applied.
func (r *Repo) Config() RepoConfig { return r.cfg }

// URL is the repository's base URL, with a trailing slash.
func (r *Repo) URL() string { return r.url }

// Dir is the directory the repository is served from.
func (r *Repo) Dir() string { return r.dir }

// SourcesLine is a one-line sources.list entry for the repository: with
// signed-by naming the Signer's keyring when the repository is signed,
// else marked [trusted=yes].
func (r *Repo) SourcesLine() string {
	if r.cfg.Signer != nil {
		return fmt.Sprintf("deb [signed-by=%s] %s %s %s", r.cfg.Signer.Keyring, r.url, r.cfg.Codename, r.cfg.Component)
	}
	return fmt.Sprintf("deb [trusted=yes] %s %s %s", r.url, r.cfg.Codename, r.cfg.Component)
}

// DistURL is the URL of the distribution directory, .../dists/<Codename>/.
func (r *Repo) DistURL() string { return r.url + "dists/" + r.cfg.Codename + "/" }

// ReadFile returns the file the repository serves at rel (relative to its
// root), ignoring overrides.
func (r *Repo) ReadFile(rel string) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return os.ReadFile(filepath.Join(r.dir, filepath.FromSlash(path.Clean("/"+rel))))
}

// Override serves data at rel (relative to the root) instead of the file:
// a tampering or replaying mirror. Nil data removes the override.
func (r *Repo) Override(rel string, data []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := path.Clean("/" + rel)
	if data == nil {
		delete(r.overrides, p)
		return
	}
	r.overrides[p] = data
}

// CountRequests returns how many requests asked for rel (relative to the
// root).
func (r *Repo) CountRequests(rel string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return countPath(r.requests, rel)
}

// countPath counts the occurrences of rel's URL path in paths.
func countPath(paths []string, rel string) int {
	p, n := path.Clean("/"+rel), 0
	for _, q := range paths {
		if q == p {
			n++
		}
	}
	return n
}

// Add copies the .deb files into the pool and regenerates the indices. A
// package with the same name, version and architecture as one already
// published replaces it. Add works before and after Stop.
func (r *Repo) Add(debs ...string) ([]PoolEntry, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	added := make([]PoolEntry, 0, len(debs))
	for _, p := range debs {
		e, err := r.addLocked(p)
		if err != nil {
			return nil, fmt.Errorf("repo add %s: %w", p, err)
		}
		added = append(added, e)
	}
	if err := r.writeIndicesLocked(); err != nil {
		return nil, fmt.Errorf("repo add: %w", err)
	}
	return added, nil
}

// MustAdd is Add for tests.
func (r *Repo) MustAdd(t TB, debs ...string) []PoolEntry {
	t.Helper()
	e, err := r.Add(debs...)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return e
}

// Entry returns the published package name at version for arch.
func (r *Repo) Entry(name, version, arch string) (PoolEntry, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.entries[name+"_"+version+"_"+arch]
	return e, ok
}

func (r *Repo) addLocked(src string) (PoolEntry, error) {
	info, err := ReadDebInfo(src)
	if err != nil {
		return PoolEntry{}, err
	}
	prefix := info.Package[:1]
	if strings.HasPrefix(info.Package, "lib") && len(info.Package) > 3 {
		prefix = info.Package[:4]
	}
	rel := path.Join("pool", r.cfg.Component, prefix, info.Package,
		PoolFilename(info.Package, info.Version, info.Architecture))
	data, err := os.ReadFile(src)
	if err != nil {
		return PoolEntry{}, err
	}
	if err := writeFileAtomic(filepath.Join(r.dir, filepath.FromSlash(rel)), data); err != nil {
		return PoolEntry{}, err
	}
	sum := sha256.Sum256(data)
	e := PoolEntry{DebInfo: info, Filename: rel, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}
	r.entries[info.Package+"_"+info.Version+"_"+info.Architecture] = e
	return e, nil
}

func (r *Repo) writeIndices() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.writeIndicesLocked()
}

// writeIndicesLocked regenerates Packages, Packages.gz and Release. Every
// file is replaced atomically, Release last, so a client never sees a
// Release whose hashes do not match the indices.
func (r *Repo) writeIndicesLocked() error {
	keys := make([]string, 0, len(r.entries))
	for k := range r.entries {
		keys = append(keys, k)
	}
	slices.Sort(keys)

	type indexFile struct {
		rel  string
		data []byte
	}
	var indices []indexFile
	for _, arch := range r.cfg.Archs {
		var b bytes.Buffer
		for _, k := range keys {
			e := r.entries[k]
			if e.Architecture != arch && e.Architecture != "all" {
				continue
			}
			data, err := os.ReadFile(filepath.Join(r.dir, filepath.FromSlash(e.Filename)))
			if err != nil {
				return err
			}
			md := md5.Sum(data)  //nolint:gosec // see import
			s1 := sha1.Sum(data) //nolint:gosec // see import
			fmt.Fprintf(&b, "%s\nFilename: %s\nSize: %d\nMD5sum: %s\nSHA1: %s\nSHA256: %s\n\n",
				e.Control, e.Filename, e.Size, hex.EncodeToString(md[:]), hex.EncodeToString(s1[:]), e.SHA256)
		}
		b.Write(r.fillerLocked())
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		if _, err := zw.Write(b.Bytes()); err != nil {
			return err
		}
		if err := zw.Close(); err != nil {
			return err
		}
		base := path.Join(r.cfg.Component, "binary-"+arch)
		indices = append(indices,
			indexFile{path.Join(base, "Packages"), b.Bytes()},
			indexFile{path.Join(base, "Packages.gz"), gz.Bytes()})
	}

	dist := path.Join("dists", r.cfg.Codename)
	for _, f := range indices {
		if err := writeFileAtomic(filepath.Join(r.dir, filepath.FromSlash(path.Join(dist, f.rel))), f.data); err != nil {
			return err
		}
		if r.cfg.ByHash {
			s := sha256.Sum256(f.data)
			bh := path.Join(dist, path.Dir(f.rel), "by-hash", "SHA256", hex.EncodeToString(s[:]))
			if err := writeFileAtomic(filepath.Join(r.dir, filepath.FromSlash(bh)), f.data); err != nil {
				return err
			}
		}
	}
	now := time.Now
	if r.cfg.Clock != nil {
		now = r.cfg.Clock
	}
	date := now().UTC()

	var rel bytes.Buffer
	fmt.Fprintf(&rel, "Origin: %s\nLabel: %s\nSuite: %s\nCodename: %s\n", r.cfg.Origin, r.cfg.Label, r.cfg.Suite, r.cfg.Codename)
	if r.cfg.Version != "" {
		fmt.Fprintf(&rel, "Version: %s\n", r.cfg.Version)
	}
	fmt.Fprintf(&rel, "Date: %s\n", date.Format(time.RFC1123))
	if r.cfg.ValidFor > 0 {
		fmt.Fprintf(&rel, "Valid-Until: %s\n", date.Add(r.cfg.ValidFor).Format(time.RFC1123))
	}
	if r.cfg.ByHash {
		rel.WriteString("Acquire-By-Hash: yes\n")
	}
	fmt.Fprintf(&rel, "Architectures: %s\nComponents: %s\n", strings.Join(r.cfg.Archs, " "), r.cfg.Component)
	if r.cfg.Description != "" {
		fmt.Fprintf(&rel, "Description: %s\n", r.cfg.Description)
	}
	rel.WriteString("MD5Sum:\n")
	for _, f := range indices {
		s := md5.Sum(f.data) //nolint:gosec // see import
		fmt.Fprintf(&rel, " %s %d %s\n", hex.EncodeToString(s[:]), len(f.data), f.rel)
	}
	rel.WriteString("SHA256:\n")
	for _, f := range indices {
		s := sha256.Sum256(f.data)
		fmt.Fprintf(&rel, " %s %d %s\n", hex.EncodeToString(s[:]), len(f.data), f.rel)
	}
	if r.cfg.Signer != nil {
		in, err := r.cfg.Signer.ClearSign(rel.Bytes())
		if err != nil {
			return err
		}
		sig, err := r.cfg.Signer.DetachSign(rel.Bytes())
		if err != nil {
			return err
		}
		if err := writeFileAtomic(filepath.Join(r.dir, filepath.FromSlash(path.Join(dist, "Release.gpg"))), sig); err != nil {
			return err
		}
		if err := writeFileAtomic(filepath.Join(r.dir, filepath.FromSlash(path.Join(dist, "InRelease"))), in); err != nil {
			return err
		}
	}
	return writeFileAtomic(filepath.Join(r.dir, filepath.FromSlash(path.Join(dist, "Release"))), rel.Bytes())
}

// fillerLocked is the synthetic part of every Packages index: Filler
// stanzas shaped like Debian's (about 700 bytes each).
func (r *Repo) fillerLocked() []byte {
	if r.cfg.Filler == 0 || r.filler != nil {
		return r.filler
	}
	var b bytes.Buffer
	for i := range r.cfg.Filler {
		name := fmt.Sprintf("filler-%05d", i)
		sum := sha256.Sum256([]byte(name))
		fmt.Fprintf(&b, "Package: %s\nVersion: 1.%d-1\nInstalled-Size: %d\nMaintainer: Patchring Test <test@patchring.invalid>\n"+
			"Architecture: all\nDepends: libc6 (>= 2.34), libfiller%d (>= 1.0)\n"+
			"Description: synthetic package %d of a realistically sized index\n"+
			" This stanza stands for one of the tens of thousands a Debian Packages\n"+
			" index lists; its file is not in the pool and nothing installs it.\n"+
			"Homepage: https://patchring.invalid/%s\nSection: misc\nPriority: optional\n"+
			"Filename: pool/%s/f/%s/%s_1.%d-1_all.deb\nSize: %d\nSHA256: %s\n\n",
			name, i, 100+i%900, i%97, i, name, r.cfg.Component, name, name, i, 1000+i, hex.EncodeToString(sum[:]))
	}
	r.filler = b.Bytes()
	return r.filler
}

// CountUnchanged returns how many requests for rel were answered 304 Not
// Modified (a conditional request whose file had not changed).
func (r *Repo) CountUnchanged(rel string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return countPath(r.unchanged, rel)
}

// serve answers GET and HEAD for files under the repository directory. It
// sends no Last-Modified, so a client never gets a stale 304 for indices
// regenerated within the same second; the release files (InRelease,
// Release, Release.gpg) get an ETag of their content, as a real archive's
// web server sends one, and If-None-Match is answered 304 when it
// matches.
func (r *Repo) serve(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	r.requests = append(r.requests, req.URL.Path)
	r.mu.Unlock()
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	rel := path.Clean("/" + req.URL.Path)
	r.mu.Lock()
	over, isOver := r.overrides[rel]
	r.mu.Unlock()
	if base := path.Base(rel); strings.Contains(rel, "/dists/") && (base == "InRelease" || base == "Release" || base == "Release.gpg") {
		data := over
		if !isOver {
			var err error
			if data, err = os.ReadFile(filepath.Join(r.dir, filepath.FromSlash(rel))); err != nil {
				http.NotFound(w, req)
				return
			}
		}
		sum := sha256.Sum256(data)
		etag := `"` + hex.EncodeToString(sum[:16]) + `"`
		w.Header().Set("ETag", etag)
		if req.Header.Get("If-None-Match") == etag {
			r.mu.Lock()
			r.unchanged = append(r.unchanged, req.URL.Path)
			r.mu.Unlock()
			w.WriteHeader(http.StatusNotModified)
			return
		}
		over, isOver = data, true
	}
	if isOver {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", fmt.Sprint(len(over)))
		w.WriteHeader(http.StatusOK)
		if req.Method == http.MethodGet {
			_, _ = w.Write(over)
		}
		return
	}
	f, err := os.Open(filepath.Join(r.dir, filepath.FromSlash(rel)))
	if err != nil {
		http.NotFound(w, req)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		http.NotFound(w, req)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", fmt.Sprint(st.Size()))
	w.WriteHeader(http.StatusOK)
	if req.Method == http.MethodGet {
		_, _ = io.Copy(w, f)
	}
}

// Requests returns the URL paths requested so far, in order.
func (r *Repo) Requests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.requests)
}

// Stop stops serving; the files stay until Close. It is idempotent.
func (r *Repo) Stop() error {
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return nil
	}
	r.stopped = true
	r.mu.Unlock()
	err := r.srv.Close()
	if serr := <-r.serveErr; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("stop repo %s: %w", r.url, err)
	}
	return nil
}

// Close stops serving and removes the repository's directory.
func (r *Repo) Close() error {
	err := r.Stop()
	if rerr := os.RemoveAll(r.dir); rerr != nil && err == nil {
		err = fmt.Errorf("close repo: %w", rerr)
	}
	return err
}

// writeFileAtomic writes data to a temporary file next to name and renames
// it into place, creating parent directories.
func writeFileAtomic(name string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(name), ".tmp-"+filepath.Base(name)+"-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), name)
}
