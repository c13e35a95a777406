// Package bundle imports offline bundles: a copy of the fleet's signed
// repository (`patchring bundle create`) that an admin carries to a site
// without a link to the origin. The bundle is verified through TUF from
// the agent's trusted root; its policy is adopted and its catalog payloads
// and advisory database go into the content store, each checked against
// its signed hash.
package bundle

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/patchring/patchring/daemon/apicall"
	"github.com/patchring/patchring/daemon/apitypes"
	"github.com/patchring/patchring/p2p/content"
	"github.com/patchring/patchring/platform/diskspace"
	"github.com/patchring/patchring/policy/trust"
	"github.com/patchring/patchring/policy/tufrepo"
)

// Limits on an offline bundle: it comes from an admin, but a damaged or
// hostile file must not fill the disk.
const (
	maxBundleBytes = 16 << 30
	maxBundleFiles = 100000
)

// Config is what an Importer needs from the rest of the agent.
type Config struct {
	Log *slog.Logger
	// StateDir is where a bundle is unpacked (and whose file system must
	// have room for it).
	StateDir string
	// Policy is the policy service; nil without a policy source (then
	// nothing can be verified and imports fail).
	Policy Policy
	// Targets locates the signed targets; nil without a policy source.
	Targets Targets
	// Content is the payload store; nil when the agent keeps none.
	Content Content
	// DiskUsage reports free space; nil is diskspace.Of.
	DiskUsage func(string) (diskspace.Usage, error)
	// Imported is called after a bundle was imported (to replan).
	Imported func()
	// TrustState is the last verified TUF state (trust.Client.LastGood),
	// for the apt snapshot a bundle pins; nil: apt content is skipped.
	TrustState func() (trust.State, error)
	// Apt is the apt proxy, which takes the pinned Release files; nil
	// when it is off (the snapshot's files still go into the store, for
	// the site's proxies).
	Apt AptSeeder
	// FromSite fetches a content-addressed file into the store through
	// the site's peers (Run's following of a snapshot that reached this
	// node as metadata from peers, not as a bundle); nil: not followed.
	FromSite func(ctx context.Context, h content.Hash, size int64) error
}

// AptSeeder is the apt proxy as an import hands it a pinned snapshot
// (aptproxy.Proxy).
type AptSeeder interface {
	SeedRelease(ctx context.Context, url string, h content.Hash) error
}

// Policy is the policy service as an import uses it.
type Policy interface {
	RefreshFrom(ctx context.Context, sources []trust.Source) error
	Effective() apitypes.EffectivePolicy
	Catalog() []trust.CatalogEntry
}

// Targets locates a signed target's path, length and hashes.
type Targets interface {
	LocateTarget(name string) (trust.TargetLocation, error)
}

// Content is the content store as an import fills it.
type Content interface {
	Has(h content.Hash) bool
	Put(ctx context.Context, want content.Hash, size int64, r io.Reader) error
}

// Importer imports offline bundles, and makes this node's apt proxy follow
// the apt snapshot its verified metadata pins (Run).
type Importer struct {
	cfg     Config
	changed chan struct{}
}

// New returns an Importer.
func New(cfg Config) *Importer {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.DiskUsage == nil {
		cfg.DiskUsage = diskspace.Of
	}
	return &Importer{cfg: cfg, changed: make(chan struct{}, 1)}
}

// ImportBundle imports the offline bundle at req.Path (POST
// /bundle/import); the path must be absolute, the agent reads it itself.
func (d *Importer) ImportBundle(ctx context.Context, req apitypes.BundleImportRequest) (apitypes.BundleImport, error) {
	if !filepath.IsAbs(req.Path) {
		return apitypes.BundleImport{}, apicall.BadRequest("bundle path %q must be absolute (the agent reads it itself)", req.Path)
	}
	return d.importBundle(ctx, req.Path)
}

// importBundle verifies an offline bundle (a copy of the fleet's signed
// repository made with `patchring bundle create`) through TUF from the
// agent's trusted root, adopts its policy and puts its catalog payloads,
// each checked against its signed hash, into the content store.
func (d *Importer) importBundle(ctx context.Context, file string) (apitypes.BundleImport, error) {
	out := apitypes.BundleImport{Path: file}
	if d.cfg.Policy == nil || d.cfg.Targets == nil {
		return out, apicall.Unavailable("this agent has no policy source configured (policy.root_file): there is no root of trust to verify a bundle with")
	}
	if err := checkBundleSpace(file, d.cfg.StateDir, d.cfg.DiskUsage); err != nil {
		var ae *apicall.Error
		if errors.As(err, &ae) {
			return out, err
		}
		return out, apicall.BadRequest("bundle %s: %v", file, err)
	}
	dir, err := os.MkdirTemp(d.cfg.StateDir, ".bundle-*")
	if err != nil {
		return out, err
	}
	defer os.RemoveAll(dir)
	n, err := extractBundle(file, dir)
	if err != nil {
		return out, apicall.BadRequest("bundle %s: %v", file, err)
	}
	out.Files = n
	src := &trust.DirSource{Dir: dir, Label: "bundle " + filepath.Base(file)}
	if err := d.cfg.Policy.RefreshFrom(ctx, []trust.Source{src}); err != nil {
		return out, apicall.Conflict("bundle %s does not verify against this fleet's root of trust: %v", file, err)
	}
	ep := d.cfg.Policy.Effective()
	out.PolicyVersion, out.Policy = ep.Version, ep.Name
	for _, e := range d.cfg.Policy.Catalog() {
		if d.cfg.Content == nil {
			out.Skipped = append(out.Skipped, e.Name+": no content store on this agent (apt or p2p off)")
			continue
		}
		if err := d.importPayload(ctx, dir, e.Name); err != nil {
			out.Skipped = append(out.Skipped, e.Name+": "+err.Error())
			continue
		}
		out.Payloads++
	}
	// The advisory database, for this node's vulnerability matching and
	// the site's peers (vulns.SiteTargets reads it from the store).
	if _, err := d.cfg.Targets.LocateTarget(tufrepo.AdvisoryDBTarget); err == nil && d.cfg.Content != nil {
		if err := d.importPayload(ctx, dir, tufrepo.AdvisoryDBTarget); err != nil {
			out.Skipped = append(out.Skipped, tufrepo.AdvisoryDBTarget+": "+err.Error())
		} else {
			out.AdvisoryDB = true
		}
	}
	if err := d.importApt(ctx, dir, &out); err != nil {
		return out, err
	}
	d.cfg.Log.Info("offline bundle imported", "file", file, "policy", out.PolicyVersion, "payloads", out.Payloads, "advisory_db", out.AdvisoryDB, "apt_files", out.AptFiles, "skipped", len(out.Skipped))
	if d.cfg.Imported != nil {
		d.cfg.Imported()
	}
	return out, nil
}

func (d *Importer) importPayload(ctx context.Context, dir, target string) error {
	loc, err := d.cfg.Targets.LocateTarget(target)
	if err != nil {
		return err
	}
	h, err := content.ParseHash(loc.Hashes["sha256"])
	if err != nil {
		return fmt.Errorf("signed sha256: %w", err)
	}
	if d.cfg.Content.Has(h) {
		return nil
	}
	f, err := os.Open(filepath.Join(dir, filepath.FromSlash(loc.Path)))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return errors.New("not in the bundle")
		}
		return err
	}
	defer f.Close()
	// Put verifies the length and SHA-256 before the payload is visible.
	return d.cfg.Content.Put(ctx, h, loc.Length, f)
}

// bundleSpaceReserve is what an import leaves free on the state dir's file
// system besides what it needs.
const bundleSpaceReserve = 64 << 20

// checkBundleSpace reads the bundle's entries without unpacking them and
// refuses it, with a 507 answer saying how much is needed, when the file
// system holding stateDir has not room for it twice over (unpacked, then
// its payloads copied into the content store) plus bundleSpaceReserve.
func checkBundleSpace(file, stateDir string, usage func(string) (diskspace.Usage, error)) error {
	_, total, err := walkBundle(file, "")
	if err != nil {
		return err
	}
	u, err := usage(stateDir)
	if err != nil {
		return fmt.Errorf("free space for the bundle: %w", err)
	}
	need := uint64(2*total) + bundleSpaceReserve
	if u.Free < need {
		return apicall.NoSpace(
			"bundle %s unpacks to %d bytes; importing it needs %d bytes free in %s (unpacked, then its payloads copied into the content store, and %d bytes to spare), and only %d are free: free some space there and try again",
			file, total, need, stateDir, int64(bundleSpaceReserve), u.Free)
	}
	return nil
}

// extractBundle unpacks a .tar or .tar.gz of a repository (metadata/ and
// targets/) into dir: regular files and directories only, no path
// leaving dir, within the size and count limits.
func extractBundle(file, dir string) (int, error) {
	if dir == "" {
		return 0, errors.New("no directory to unpack into")
	}
	n, _, err := walkBundle(file, dir)
	return n, err
}

// walkBundle checks the entries of a bundle as extractBundle does and,
// when dir is not empty, unpacks them there. It returns the number of
// files and their total size.
func walkBundle(file, dir string) (int, int64, error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	var r io.Reader = f
	var magic [2]byte
	if _, err := io.ReadFull(f, magic[:]); err == nil && magic == [2]byte{0x1f, 0x8b} {
		f.Seek(0, io.SeekStart)
		zr, err := gzip.NewReader(f)
		if err != nil {
			return 0, 0, fmt.Errorf("gzip: %w", err)
		}
		defer zr.Close()
		r = zr
	} else {
		f.Seek(0, io.SeekStart)
	}
	tr := tar.NewReader(r)
	var files int
	var total int64
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return files, total, fmt.Errorf("read: %w", err)
		}
		name := path.Clean(strings.TrimPrefix(hdr.Name, "./"))
		if name == "." {
			continue
		}
		if strings.HasPrefix(name, "/") || name == ".." || strings.HasPrefix(name, "../") ||
			!(name == "metadata" || name == "targets" || strings.HasPrefix(name, "metadata/") || strings.HasPrefix(name, "targets/")) {
			return files, total, fmt.Errorf("entry %q: a bundle holds only metadata/ and targets/", hdr.Name)
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if dir == "" {
				continue
			}
			if err := os.MkdirAll(filepath.Join(dir, filepath.FromSlash(name)), 0o700); err != nil {
				return files, total, err
			}
		case tar.TypeReg:
			files++
			total += hdr.Size
			if files > maxBundleFiles || total > maxBundleBytes || hdr.Size < 0 {
				return files, total, fmt.Errorf("more than %d files or %d bytes", maxBundleFiles, int64(maxBundleBytes))
			}
			if dir == "" {
				continue
			}
			if err := extractEntry(tr, hdr, filepath.Join(dir, filepath.FromSlash(name))); err != nil {
				return files, total, err
			}
		default:
			return files, total, fmt.Errorf("entry %q: only regular files and directories are allowed", hdr.Name)
		}
	}
	if files == 0 {
		return 0, 0, errors.New("no files: make one with `patchring bundle create`")
	}
	return files, total, nil
}

func extractEntry(tr *tar.Reader, hdr *tar.Header, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	w, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("entry %q: %w", hdr.Name, err)
	}
	_, err = io.Copy(w, io.LimitReader(tr, hdr.Size))
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("entry %q: %w", hdr.Name, err)
	}
	return nil
}

// importApt puts the files of the apt snapshot the verified targets pin
// (trust.AptPrefix) into the content store, each checked against its
// signed hash, and hands the pinned Release files to the apt proxy, which
// verifies them with gpgv and refuses one older than the release it last
// verified (a replayed snapshot inside newer signed metadata). A refused
// Release fails the import with a conflict.
func (d *Importer) importApt(ctx context.Context, dir string, out *apitypes.BundleImport) error {
	if d.cfg.TrustState == nil {
		return nil
	}
	st, err := d.cfg.TrustState()
	if err != nil {
		return fmt.Errorf("import apt snapshot: %w", err)
	}
	if len(st.Apt) == 0 {
		return nil
	}
	if d.cfg.Content == nil {
		out.Skipped = append(out.Skipped, fmt.Sprintf("apt snapshot (%d files): no content store on this agent (apt or p2p off)", len(st.Apt)))
		return nil
	}
	var releases []trust.AptEntry
	for _, e := range st.Apt {
		if e.Problem != "" {
			out.Skipped = append(out.Skipped, e.Name+": "+e.Problem)
			continue
		}
		if err := d.importPayload(ctx, dir, e.Name); err != nil {
			out.Skipped = append(out.Skipped, e.Name+" ("+e.URL+"): "+err.Error())
			continue
		}
		out.AptFiles++
		if e.Kind == "release" {
			releases = append(releases, e)
		}
	}
	if d.cfg.Apt == nil {
		return nil
	}
	for _, e := range releases {
		h, err := content.ParseHash(e.Hashes["sha256"])
		if err != nil {
			return fmt.Errorf("import apt snapshot: %s: %w", e.Name, err)
		}
		if err := d.cfg.Apt.SeedRelease(ctx, e.URL, h); err != nil {
			return apicall.Conflict("bundle's apt snapshot refused: %v", err)
		}
		out.AptReleases++
	}
	return nil
}

// PinnedReleases is the apt proxy's Config.Pinned: a Release file is
// pinned while it is an apt target of the verified TUF state and that
// state has not expired at now; it is pinned until the state expires.
func PinnedReleases(state func() (trust.State, error), now func() time.Time) func(content.Hash) (time.Time, bool) {
	return func(h content.Hash) (time.Time, bool) {
		st, err := state()
		if err != nil || st.Expired(now()) {
			return time.Time{}, false
		}
		for _, e := range st.Apt {
			if e.Kind == "release" && e.Problem == "" && e.Hashes["sha256"] == h.String() {
				return st.ExpiresAt(), true
			}
		}
		return time.Time{}, false
	}
}

// followRetry is how often Run tries again to follow a pinned snapshot it
// could not complete (no peer held the Release file yet).
const followRetry = 30 * time.Second

// Name names the part in the agent's logs.
func (d *Importer) Name() string { return "bundles" }

// MetadataChanged tells Run that the verified metadata changed (it may pin
// another apt snapshot). It does not block.
func (d *Importer) MetadataChanged() {
	select {
	case d.changed <- struct{}{}:
	default:
	}
}

// Run follows the apt snapshot the verified metadata pins until ctx ends:
// on an offline site one node imports the bundle, and the others get the
// newer metadata from it through their peers, verified from their own
// root. Each of them then fetches the pinned Release files from the site
// (checked against their signed SHA-256) and hands them to its own apt
// proxy as an import would, so its apt can update from the site with no
// WAN. The indices and .debs follow on demand, through the proxy.
func (d *Importer) Run(ctx context.Context) error {
	if d.cfg.TrustState == nil || d.cfg.Apt == nil || d.cfg.FromSite == nil || d.cfg.Content == nil {
		<-ctx.Done()
		return nil
	}
	retry := time.NewTimer(0) // once at start: metadata verified before
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-d.changed:
		case <-retry.C:
		}
		if n, err := d.followPinned(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			d.cfg.Log.Warn("apt snapshot: cannot follow the pinned release yet; trying again", "err", err, "in", followRetry)
			retry.Reset(followRetry)
		} else if n > 0 {
			d.cfg.Log.Info("apt snapshot: following the pinned releases of the verified metadata", "releases", n)
		}
	}
}

// followPinned seeds every pinned Release file into the apt proxy,
// fetching from the site those the store lacks. It returns how many it
// handed to the proxy.
func (d *Importer) followPinned(ctx context.Context) (int, error) {
	st, err := d.cfg.TrustState()
	if err != nil {
		return 0, nil // nothing verified yet
	}
	if st.Expired(time.Now()) {
		return 0, nil // pins end with the metadata
	}
	var errs []error
	n := 0
	for _, e := range st.Apt {
		if e.Kind != "release" || e.Problem != "" {
			continue
		}
		h, err := content.ParseHash(e.Hashes["sha256"])
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", e.Name, err))
			continue
		}
		if !d.cfg.Content.Has(h) {
			fctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			err := d.cfg.FromSite(fctx, h, e.Length)
			cancel()
			if err != nil {
				errs = append(errs, fmt.Errorf("fetch pinned release %s (%s) from the site: %w", e.URL, h, err))
				continue
			}
		}
		if err := d.cfg.Apt.SeedRelease(ctx, e.URL, h); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}
