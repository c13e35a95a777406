package vulns

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/patchring/patchring/internal/atomicfile"
	"github.com/patchring/patchring/p2p/content"
	"github.com/patchring/patchring/policy/trust"
)

// Store is the content store as SiteTargets uses it (p2p/content.Store).
type Store interface {
	Has(h content.Hash) bool
	Open(h content.Hash) (*content.Reader, error)
	Put(ctx context.Context, want content.Hash, size int64, r io.Reader) error
}

// SiteTargets downloads signed targets (the advisory database) so that an
// offline site gets them too: from this node's content store (where a
// bundle import puts them), else through the repository's source chain
// (the origin), kept in the store afterwards for the site's peers, else
// from the site's peers by their signed SHA-256. Every byte is checked
// against the signed length and hash: by the trust client, or by the
// content store as it takes the file.
type SiteTargets struct {
	// Chain is the verified repository and its source chain
	// (trust.Client).
	Chain Targets
	// Store returns the content store, read at each call (the daemon
	// builds it after this part); nil, or a nil result: not used.
	Store func() Store
	// FromSite fetches a content-addressed file into the store from the
	// site's peers; nil: not used.
	FromSite func(ctx context.Context, h content.Hash, size int64) error
}

// TargetInfo implements Targets.
func (s SiteTargets) TargetInfo(name string) (trust.TargetInfo, error) {
	return s.Chain.TargetInfo(name)
}

// DownloadTarget implements Targets.
func (s SiteTargets) DownloadTarget(ctx context.Context, name, dstDir string) (string, error) {
	info, err := s.Chain.TargetInfo(name)
	if err != nil {
		return "", err
	}
	h, err := content.ParseHash(info.Hashes["sha256"])
	if err != nil {
		return "", fmt.Errorf("download %s: signed sha256: %w", name, err)
	}
	var st Store
	if s.Store != nil {
		st = s.Store()
	}
	if st == nil {
		return s.Chain.DownloadTarget(ctx, name, dstDir)
	}
	dst := filepath.Join(dstDir, filepath.FromSlash(name))
	if st.Has(h) {
		return dst, copyOut(st, h, dst)
	}
	p, chainErr := s.Chain.DownloadTarget(ctx, name, dstDir)
	if chainErr == nil {
		// Keep it for the site's peers (and the next restart). A full
		// store only costs them the origin.
		if f, err := os.Open(p); err == nil {
			st.Put(ctx, h, info.Length, f)
			f.Close()
		}
		return p, nil
	}
	if s.FromSite == nil || ctx.Err() != nil {
		return "", chainErr
	}
	// A bundle import may put the file into the store meanwhile (its
	// verified metadata triggered this download before its targets were
	// in): stop asking the peers then.
	sctx, cancel := context.WithTimeout(ctx, fromSiteTimeout)
	go func() {
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-tick.C:
				if st.Has(h) {
					cancel()
					return
				}
			}
		}
	}()
	err = s.FromSite(sctx, h, info.Length)
	cancel()
	if err != nil && !st.Has(h) {
		return "", errors.Join(chainErr, fmt.Errorf("download %s from the site's peers: %w", name, err))
	}
	return dst, copyOut(st, h, dst)
}

// fromSiteTimeout bounds one attempt at the site's peers: a node alone,
// or whose peers lack the file too, tries again later (vulns retries).
const fromSiteTimeout = 30 * time.Second

// copyOut writes the stored file h to dst.
func copyOut(st Store, h content.Hash, dst string) error {
	r, err := st.Open(h)
	if err != nil {
		return fmt.Errorf("read %s from the content store: %w", h, err)
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("read %s from the content store: %w", h, err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFile(dst, data, 0o600)
}
