// Package aptsnap pins an apt snapshot into the fleet's signed
// repository for an offline bundle (`patchring bundle create --apt-source`):
// it reads a Debian archive's InRelease, checks it with gpgv against the
// archive's keyring, fetches the Packages indices it lists and the .deb
// files of an explicit package list, checks each against the hashes in
// the verified metadata, and adds every file as a target
// <prefix><kind>/<sha256> (custom metadata: the URL apt asks for it at, and
// its kind) of the admin's TUF repository. The bundle's signed targets
// then pin the snapshot; agents serve it to apt with no WAN (docs/APT.md).
package aptsnap

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/patchring/patchring/platform/apt/archive"
	"github.com/patchring/patchring/platform/vercmp"
)

// Source is one distribution of a Debian archive and the packages of it
// the site needs.
type Source struct {
	// URL is the archive's root, e.g. http://deb.debian.org/debian-security.
	// Only http:// (the proxy serves http sources).
	URL string
	// Suite is the distribution under dists/, e.g. bookworm-security.
	Suite string
	// Keyrings are the keyring files (binary or armoured) whose keys
	// must have signed InRelease: the site's Signed-By for this source.
	Keyrings []string
	// Packages are the binary packages to carry (the newest version each
	// Packages index lists), by name.
	Packages []string
	// Installed is what the site's nodes have installed: package name ->
	// the versions found (from the site's exported reports). Each package
	// the archive carries at a newer version than one of them is carried
	// too: the site's pending updates. A package none of the nodes has
	// (a new dependency of an update) must be named in Packages.
	Installed map[string][]string
}

// pending returns the packages of debs newer than a version installed
// (sorted), which Packages does not name already.
func (src Source) pending(debs map[string]archive.DebHash) []string {
	named := map[string]bool{}
	for _, n := range src.Packages {
		named[n] = true
	}
	var out []string
	for name, versions := range src.Installed {
		d, ok := debs[name]
		if !ok || named[name] {
			continue
		}
		for _, v := range versions {
			if c, err := vercmp.Deb(d.Version, v); err == nil && c > 0 {
				out = append(out, name)
				break
			}
		}
	}
	sort.Strings(out)
	return out
}

// Repo is the admin's TUF repository as the pinning changes it
// (policy/tufrepo.Repo, with its target names).
type Repo interface {
	AddTargetFile(name, src string, custom json.RawMessage) error
	RemoveTarget(name string) error
	TargetNames() []string
}

// Options are the pinning's dependencies.
type Options struct {
	Client *http.Client // default: no proxy, 10 min per file
	GPGV   string       // default gpgv from PATH
	Now    func() time.Time
	Log    *slog.Logger
	// WorkDir holds downloads until they are added; default os.TempDir.
	WorkDir string
	// Prefix starts every apt target's name: policy/trust.AptPrefix,
	// which agents read the snapshot from. Required.
	Prefix string
}

// File is one pinned file.
type File struct {
	Target string
	URL    string
	Kind   string // release, index, package
	Size   int64
}

// Pin replaces the apt snapshot pinned in r (every apt/ target) with the
// current snapshot of sources. The caller publishes r. Nothing is changed
// in r unless every file of every source was fetched and verified.
func Pin(ctx context.Context, r Repo, sources []Source, o Options) ([]File, error) {
	if o.Client == nil {
		o.Client = &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 10 * time.Minute}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Prefix == "" || !strings.HasSuffix(o.Prefix, "/") {
		return nil, fmt.Errorf("pin apt snapshot: target prefix %q must end in /", o.Prefix)
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	work, err := os.MkdirTemp(o.WorkDir, "aptbundle-")
	if err != nil {
		return nil, fmt.Errorf("pin apt snapshot: %w", err)
	}
	defer os.RemoveAll(work)
	var files []File
	var paths []string
	for _, src := range sources {
		fs, ps, err := fetchSource(ctx, src, o, work)
		if err != nil {
			return nil, fmt.Errorf("pin apt snapshot of %s %s: %w", src.URL, src.Suite, err)
		}
		files, paths = append(files, fs...), append(paths, ps...)
	}
	for _, name := range r.TargetNames() {
		if strings.HasPrefix(name, o.Prefix) {
			if err := r.RemoveTarget(name); err != nil {
				return nil, fmt.Errorf("pin apt snapshot: %w", err)
			}
		}
	}
	seen := map[string]bool{}
	for i, f := range files {
		if seen[f.Target] {
			continue
		}
		seen[f.Target] = true
		custom, err := json.Marshal(map[string]any{"apt": map[string]string{"url": f.URL, "kind": f.Kind}})
		if err != nil {
			return nil, err
		}
		if err := r.AddTargetFile(f.Target, paths[i], custom); err != nil {
			return nil, fmt.Errorf("pin apt snapshot: %w", err)
		}
	}
	return files, nil
}

// fetchSource fetches and verifies one source's files into work.
func fetchSource(ctx context.Context, src Source, o Options, work string) ([]File, []string, error) {
	if !strings.HasPrefix(src.URL, "http://") {
		return nil, nil, fmt.Errorf("archive URL %q: only http:// sources are served by the apt proxy", src.URL)
	}
	if src.Suite == "" || strings.Contains(src.Suite, "..") {
		return nil, nil, fmt.Errorf("suite %q: a distribution name under dists/ is required", src.Suite)
	}
	if len(src.Keyrings) == 0 {
		return nil, nil, errors.New("no keyring: give the keyring apt trusts for this source (--apt-keyring)")
	}
	base := strings.TrimSuffix(src.URL, "/") + "/"
	durl := base + "dists/" + src.Suite + "/"
	var files []File
	var paths []string
	add := func(kind, url string, size int64, sha, p string) {
		files = append(files, File{Target: o.Prefix + kind + "/" + sha, URL: url, Kind: kind, Size: size})
		paths = append(paths, p)
	}

	inrel, raw, err := fetch(ctx, o.Client, durl+"InRelease", archive.MaxReleaseSize, work)
	if err != nil {
		return nil, nil, err
	}
	text, err := archive.Verifier{GPGV: o.GPGV}.VerifyInRelease(ctx, archive.Keyring{Files: src.Keyrings}, raw)
	if err != nil {
		return nil, nil, fmt.Errorf("%sInRelease: %w", durl, err)
	}
	rel, err := archive.ParseRelease(text)
	if err != nil {
		return nil, nil, fmt.Errorf("%sInRelease: %w", durl, err)
	}
	if err := rel.CheckFresh(o.Now(), 10*time.Minute); err != nil {
		return nil, nil, fmt.Errorf("%sInRelease: %w (an expired snapshot cannot be pinned)", durl, err)
	}
	add("release", durl+"InRelease", int64(len(raw)), sum(raw), inrel)

	// Every Packages index the release lists that the archive serves; one
	// readable form of each is parsed for the .debs.
	debs := map[string]archive.DebHash{}
	parsed := map[string]bool{}
	for _, fh := range sortedFiles(rel) {
		if !archive.IsPackagesIndex(fh.Path) {
			continue
		}
		url := durl + fh.Path
		if rel.AcquireByHash {
			url = durl + path.Dir(fh.Path) + "/by-hash/SHA256/" + fh.SHA256
		}
		p, err := fetchVerified(ctx, o.Client, url, fh.Size, fh.SHA256, work)
		if errors.Is(err, errNotFound) {
			continue // the release lists compressions the archive does not keep
		}
		if err != nil {
			return nil, nil, err
		}
		add("index", url, fh.Size, fh.SHA256, p)
		dir := path.Dir(fh.Path)
		if parsed[dir] {
			continue
		}
		if err := readDebs(p, fh.Path, debs); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", url, err)
		}
		parsed[dir] = true
	}
	if len(parsed) == 0 {
		return nil, nil, fmt.Errorf("%sInRelease lists no Packages index the archive serves", durl)
	}
	pending := src.pending(debs)
	if len(src.Installed) > 0 {
		o.Log.Info("apt snapshot: the site's pending updates", "dist", durl, "installed_packages", len(src.Installed), "pending", len(pending))
	}
	for _, name := range append(slices.Clone(src.Packages), pending...) {
		d, ok := debs[name]
		if !ok {
			return nil, nil, fmt.Errorf("package %q is in no Packages index of %s", name, durl)
		}
		url := base + d.Filename
		p, err := fetchVerified(ctx, o.Client, url, d.Size, d.SHA256, work)
		if err != nil {
			return nil, nil, err
		}
		add("package", url, d.Size, d.SHA256, p)
		o.Log.Info("apt snapshot: package pinned", "package", name, "version", d.Version, "url", url)
	}
	return files, paths, nil
}

func sortedFiles(rel *archive.Release) []archive.FileHash {
	out := make([]archive.FileHash, 0, len(rel.Files))
	for _, fh := range rel.Files {
		out = append(out, fh)
	}
	// Uncompressed last: the smaller forms are parsed first.
	rank := func(p string) int {
		switch path.Ext(p) {
		case ".xz":
			return 0
		case ".gz":
			return 1
		case ".bz2":
			return 2
		}
		return 3
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		return rank(a.Path) < rank(b.Path) || rank(a.Path) == rank(b.Path) && a.Path < b.Path
	})
	return out
}

// readDebs adds the newest version of each package the index lists.
func readDebs(file, name string, debs map[string]archive.DebHash) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	r, err := archive.Decompress(name, f)
	if err != nil {
		return err
	}
	return archive.ParsePackages(r, func(d archive.DebHash) error {
		if d.Package == "" {
			return nil
		}
		if old, ok := debs[d.Package]; ok {
			if c, err := vercmp.Deb(d.Version, old.Version); err != nil || c <= 0 {
				return nil
			}
		}
		debs[d.Package] = d
		return nil
	})
}

var errNotFound = errors.New("not found")

// fetch downloads url (at most limit bytes) into a file in work.
func fetch(ctx context.Context, c *http.Client, url string, limit int64, work string) (string, []byte, error) {
	p, err := download(ctx, c, url, limit, work)
	if err != nil {
		return "", nil, err
	}
	data, err := os.ReadFile(p)
	return p, data, err
}

// fetchVerified downloads url and checks its size and SHA-256.
func fetchVerified(ctx context.Context, c *http.Client, url string, size int64, sha string, work string) (string, error) {
	p, err := download(ctx, c, url, size+1, work)
	if err != nil {
		return "", err
	}
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", err
	}
	if n != size || hex.EncodeToString(h.Sum(nil)) != sha {
		return "", fmt.Errorf("download %s: %d bytes with sha256 %x, the verified metadata says %d bytes, %s", url, n, h.Sum(nil), size, sha)
	}
	return p, nil
}

func download(ctx context.Context, c *http.Client, url string, limit int64, work string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", fmt.Errorf("download %s: %w", url, err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", fmt.Errorf("download %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return "", fmt.Errorf("download %s: %w", url, errNotFound)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("download %s: %s", url, resp.Status)
	}
	f, err := os.CreateTemp(work, "file-*")
	if err != nil {
		return "", err
	}
	n, err := io.Copy(f, io.LimitReader(resp.Body, limit+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("download %s: %w", url, err)
	}
	if n > limit {
		return "", fmt.Errorf("download %s: larger than %d bytes", url, limit)
	}
	return filepath.Clean(f.Name()), nil
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
