package aptproxy

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/patchring/patchring/p2p/content"
	"github.com/patchring/patchring/platform/apt/archive"
)

// An offline site's apt snapshot: an offline bundle carries InRelease
// files, indices and .debs as targets of the admin's TUF metadata; the
// bundle import puts them into the content store and hands the InRelease
// files to SeedRelease. From then on the proxy serves that snapshot with
// no WAN, and its Valid-Until yields to the admin's signed expiry for as
// long as Config.Pinned says the file is pinned.

// SeedRelease makes the InRelease file with hash h, already in the content
// store, the current release of the distribution of url
// (".../dists/<suite>/InRelease"). It must be pinned (Config.Pinned), it
// is verified with gpgv against the keys apt trusts for that source as a
// vendor's would be, and it must not be older than the release last
// verified for the distribution: an older snapshot is a replay and is
// refused with archive.ErrStale.
func (p *Proxy) SeedRelease(ctx context.Context, url string, h content.Hash) error {
	if !strings.HasPrefix(url, "http://") || !strings.HasSuffix(url, "/InRelease") || !strings.Contains(url, "/dists/") {
		return fmt.Errorf("seed apt release %s: not an http://.../dists/<suite>/InRelease URL", url)
	}
	if _, ok := p.pinned(h); !ok {
		return fmt.Errorf("seed apt release %s: sha256 %s is not pinned by the verified, unexpired signed metadata", url, h)
	}
	durl := distURLOf(url)
	raw, err := p.readStore(h)
	if err != nil {
		return fmt.Errorf("seed apt release %s: %w", url, err)
	}
	kr, err := p.keyring(durl)
	if err != nil {
		return fmt.Errorf("seed apt release %s: %w", url, err)
	}
	text, err := p.verify.VerifyInRelease(ctx, kr, raw)
	if err != nil {
		return fmt.Errorf("seed apt release %s: %w", url, err)
	}
	p.mu.Lock()
	prev := p.dists[durl]
	p.mu.Unlock()
	if prev != nil && prev.Hash == h {
		return nil
	}
	if err := p.accept(ctx, durl, text, raw, nil); err != nil {
		return fmt.Errorf("seed apt release %s: %w", url, err)
	}
	return nil
}

// readStore reads a (small) verified file from the store whole.
func (p *Proxy) readStore(h content.Hash) ([]byte, error) {
	r, err := p.cfg.Store.Open(h)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(io.LimitReader(r, archive.MaxReleaseSize+1))
}

// pinnedRelease returns the current InRelease of durl when it is pinned
// and fresh by the pin, for serving without the vendor.
func (p *Proxy) pinnedRelease(ctx context.Context, durl string) ([]byte, bool) {
	p.mu.Lock()
	d := p.dists[durl]
	p.mu.Unlock()
	if d == nil || d.Detached {
		return nil, false
	}
	if _, ok := p.pinned(d.Hash); !ok {
		return nil, false
	}
	rel, err := p.relOf(ctx, d)
	if err != nil || p.checkFresh(rel, d.Hash) != nil {
		return nil, false
	}
	raw, err := p.readStore(d.Hash)
	if err != nil {
		return nil, false
	}
	return raw, true
}

// PinnedAptConf is the apt configuration that makes apt itself accept the
// pinned releases past their Valid-Until: for each archive label with a
// current, pinned release, Acquire::Min-ValidTime::<label> set to the time
// from the release's Date to the pin's expiry (apt then treats the release
// as valid until the admin's metadata expires, and no longer). Empty when
// nothing is pinned. The agent writes it next to the proxy snippet; apt's
// own check of every other archive is untouched.
func (p *Proxy) PinnedAptConf(ctx context.Context) string {
	p.mu.Lock()
	ds := make([]*dist, 0, len(p.dists))
	for _, d := range p.dists {
		ds = append(ds, d)
	}
	p.mu.Unlock()
	secs := map[string]int64{}
	for _, d := range ds {
		until, ok := p.pinned(d.Hash)
		if !ok {
			continue
		}
		rel, err := p.relOf(ctx, d)
		if err != nil || rel.Label == "" || !validLabel(rel.Label) {
			continue
		}
		if s := int64(until.Sub(rel.Date) / time.Second); s > secs[rel.Label] {
			secs[rel.Label] = s
		}
	}
	labels := make([]string, 0, len(secs))
	for l := range secs {
		labels = append(labels, l)
	}
	sort.Strings(labels)
	var b strings.Builder
	for _, l := range labels {
		fmt.Fprintf(&b, "Acquire::Min-ValidTime::%s \"%d\";\n", l, secs[l])
	}
	return b.String()
}

// validLabel keeps a Label that is safe inside an apt.conf option name.
func validLabel(l string) bool {
	for _, r := range l {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.+", r)) {
			return false
		}
	}
	return true
}
