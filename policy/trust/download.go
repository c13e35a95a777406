package trust

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"

	"github.com/patchring/patchring/internal/atomicfile"
	"github.com/patchring/patchring/internal/targetname"
)

// remoteTargetPath is where a target lives below the repository root: with
// consistent snapshots, targets/<dir>/<sha256>.<base>.
func remoteTargetPath(name string, tf *metadata.TargetFiles, consistent bool) string {
	if !consistent {
		return "targets/" + name
	}
	alg := "sha256"
	if _, ok := tf.Hashes[alg]; !ok {
		algs := make([]string, 0, len(tf.Hashes))
		for a := range tf.Hashes {
			algs = append(algs, a)
		}
		slices.Sort(algs)
		if len(algs) > 0 {
			alg = algs[0]
		}
	}
	dir, base := path.Split(name)
	return "targets/" + dir + tf.Hashes[alg].String() + "." + base
}

// fetchVerified streams a target from src into w, checking it against the
// signed length (the cap) and every signed hash. w may have received bytes
// when it fails.
func (c *Client) fetchVerified(ctx context.Context, src Source, remote string, tf *metadata.TargetFiles, w io.Writer, timeout time.Duration) error {
	if len(tf.Hashes) == 0 {
		return fmt.Errorf("%w: target has no signed hashes", ErrHashMismatch)
	}
	hashers := map[string]hash.Hash{}
	writers := []io.Writer{w}
	for alg := range tf.Hashes {
		var h hash.Hash
		switch alg {
		case "sha256":
			h = sha256.New()
		case "sha512":
			h = sha512.New()
		default:
			return fmt.Errorf("%w: unsupported hash algorithm %q", ErrHashMismatch, alg)
		}
		hashers[alg] = h
		writers = append(writers, h)
	}
	body, err := c.open(ctx, src, remote, tf.Length, timeout)
	if err != nil {
		return err
	}
	defer body.Close()
	n, err := io.Copy(io.MultiWriter(writers...), body)
	if err != nil {
		return err
	}
	if n != tf.Length {
		return fmt.Errorf("%w: got %d bytes, signed length is %d", ErrHashMismatch, n, tf.Length)
	}
	for alg, h := range hashers {
		if subtle.ConstantTimeCompare(h.Sum(nil), tf.Hashes[alg]) != 1 {
			return fmt.Errorf("%w: %s of the %d bytes received differs from the signed one", ErrHashMismatch, alg, n)
		}
	}
	return nil
}

// targetFile looks name up through go-tuf (GetTargetInfo) from the last
// verified state, offline, checking expiry at the client's clock.
func (c *Client) targetFile(st *State, name string) (*metadata.TargetFiles, bool, error) {
	if err := st.expiredError(c.cfg.Now()); err != nil {
		return nil, false, err
	}
	work, err := os.MkdirTemp(c.cfg.StateDir, "lookup-")
	if err != nil {
		return nil, false, err
	}
	defer os.RemoveAll(work)
	if _, err := c.seed(work, st); err != nil {
		return nil, false, err
	}
	ucfg, err := c.updaterConfig(st.raw.Root, work, nil)
	if err != nil {
		return nil, false, err
	}
	ucfg.UnsafeLocalMode = true
	up, err := updater.New(ucfg)
	if err != nil {
		return nil, false, err
	}
	up.UnsafeSetRefTime(c.cfg.Now())
	if err := up.Refresh(); err != nil {
		return nil, false, err
	}
	trusted := up.GetTrustedMetadataSet()
	top := trusted.Targets[metadata.TARGETS]
	if _, ok := top.Signed.Targets[name]; !ok && top.Signed.Delegations == nil {
		return nil, false, fmt.Errorf("%w: %q", ErrUnknownTarget, name)
	}
	tf, err := up.GetTargetInfo(name)
	if err != nil {
		return nil, false, fmt.Errorf("%w: %q: %v", ErrUnknownTarget, name, err)
	}
	return tf, trusted.Root.Signed.ConsistentSnapshot, nil
}

// TargetInfo returns the signed length and hashes of a target from the last
// verified state (offline; fails with ErrExpired once that has expired).
func (c *Client) TargetInfo(name string) (TargetInfo, error) {
	op := "look up " + name
	if err := targetname.Check(name); err != nil {
		return TargetInfo{}, wrap(op, "", err)
	}
	st, err := c.lastGood()
	if err != nil {
		return TargetInfo{}, wrap(op, "", err)
	}
	tf, _, err := c.targetFile(st, name)
	if err != nil {
		return TargetInfo{}, wrap(op, "", err)
	}
	return targetInfo(name, tf), nil
}

// TargetLocation is a signed target and where its bytes are served.
type TargetLocation struct {
	TargetInfo
	// Path is the target's file below the repository root, as sources
	// serve it: with consistent snapshots the base name is prefixed with
	// its hash, e.g. targets/catalog/tool/1.0/<sha256>.tool_1.0_amd64.deb.
	Path string `json:"path"`
	// URLs are Path on each source that has an address (HTTPSource), in
	// the order of the source chain.
	URLs []string `json:"urls,omitempty"`
}

// urlSource is a source whose files have addresses (HTTPSource).
type urlSource interface {
	URL(path string) string
}

var _ urlSource = (*HTTPSource)(nil)

// LocateTarget returns the signed length and hashes of target name and
// where its bytes are served, from the last verified state (offline; it
// fails with ErrExpired once that has expired and ErrUnknownTarget for a
// name nothing signed). It is for callers that fetch the bytes through
// their own transport, such as a content store shared with peers: they
// must check every byte against Length and Hashes before using it.
func (c *Client) LocateTarget(name string) (TargetLocation, error) {
	op := "locate " + name
	if err := targetname.Check(name); err != nil {
		return TargetLocation{}, wrap(op, "", err)
	}
	st, err := c.lastGood()
	if err != nil {
		return TargetLocation{}, wrap(op, "", err)
	}
	tf, consistent, err := c.targetFile(st, name)
	if err != nil {
		return TargetLocation{}, wrap(op, "", err)
	}
	loc := TargetLocation{TargetInfo: targetInfo(name, tf), Path: remoteTargetPath(name, tf, consistent)}
	for _, src := range c.Sources() {
		if us, ok := src.(urlSource); ok {
			loc.URLs = append(loc.URLs, us.URL(loc.Path))
		}
	}
	return loc, nil
}

// DownloadTarget fetches target name into dstDir/<name> through the source
// chain, streaming it to a temporary file while hashing it against the
// length and hashes go-tuf's GetTargetInfo returns from the last verified
// state; the file is fsynced and renamed into place only when it matches. A
// file already there with the right length and hashes is kept. It fails
// with ErrExpired once the verified state has expired, ErrUnknownTarget for
// a target not in the signed metadata, ErrTooLarge or ErrHashMismatch for
// bad bytes.
func (c *Client) DownloadTarget(ctx context.Context, name, dstDir string) (string, error) {
	op := "download " + name
	if err := targetname.Check(name); err != nil {
		return "", wrap(op, "", err)
	}
	st, err := c.lastGood()
	if err != nil {
		return "", wrap(op, "", err)
	}
	tf, consistent, err := c.targetFile(st, name)
	if err != nil {
		return "", wrap(op, "", err)
	}
	dst := filepath.Join(dstDir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", wrap(op, "", err)
	}
	if c.matches(dst, tf) {
		return dst, nil
	}
	sources := c.Sources()
	if len(sources) == 0 {
		return "", &Error{Op: op, Reason: ErrNoSources, Err: errors.New("add the origin or a peer")}
	}
	remote := remoteTargetPath(name, tf, consistent)
	var errs []error
	for _, src := range sources {
		err := c.downloadFrom(ctx, src, remote, tf, dst)
		if err == nil {
			return dst, nil
		}
		errs = append(errs, wrap(op, src.Name(), err))
		c.log.Warn("download failed", "target", name, "source", src.Name(), "err", err)
		if ctx.Err() != nil {
			break
		}
	}
	if len(errs) == 1 {
		return "", errs[0]
	}
	return "", fmt.Errorf("%s failed through %d sources: %w", op, len(errs), errors.Join(errs...))
}

// downloadFrom streams one attempt into a temporary file next to dst and
// renames it into place once verified.
func (c *Client) downloadFrom(ctx context.Context, src Source, remote string, tf *metadata.TargetFiles, dst string) error {
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".download-"+filepath.Base(dst)+"-*")
	if err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := c.fetchVerified(ctx, src, remote, tf, tmp, c.cfg.PayloadTimeout); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return err
	}
	done = true
	return atomicfile.SyncDir(filepath.Dir(dst))
}

// matches reports whether the file at p already has the signed length and
// hashes.
func (c *Client) matches(p string, tf *metadata.TargetFiles) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Size() != tf.Length {
		return false
	}
	for alg, want := range tf.Hashes {
		var h hash.Hash
		switch alg {
		case "sha256":
			h = sha256.New()
		case "sha512":
			h = sha512.New()
		default:
			return false
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return false
		}
		if _, err := io.Copy(h, f); err != nil || subtle.ConstantTimeCompare(h.Sum(nil), want) != 1 {
			return false
		}
	}
	return true
}
