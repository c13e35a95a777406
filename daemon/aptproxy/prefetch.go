package aptproxy

// Prefetch on a member's request. A .deb's site fetcher (the member ranked
// first for its hash) reads it from the vendor when its own apt asks for
// it; the others wait for it to appear on the LAN. But the fetcher's apt
// may not want the file at all (an admin installs a package on one node),
// or want it only later, so the others would wait out their patience and
// read the vendor themselves: a second WAN copy. So a node about to wait
// asks the fetcher to fetch the file now (PrefetchPath); the fetcher does,
// for a .deb listed in a Packages index it verified itself, and says so
// when asked again; once it holds the file, the asker takes it from there
// (without waiting for the site's gossip to announce it).

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/patchring/patchring/p2p/content"
	"github.com/patchring/patchring/p2p/exchange"
)

// PrefetchPrefix is the file-protocol path under which a member asks this
// node to fetch a .deb for the site: PrefetchPath(hash). The answer is
// PrefetchHeld once the file is in this node's store, an empty file while
// its download runs; the member asks again until it is held.
const PrefetchPrefix = "aptfetch/"

// PrefetchHeld is the answer to a prefetch request for a file this node
// holds.
const PrefetchHeld = "1"

// PrefetchPath is the file-protocol path that asks for h to be fetched.
func PrefetchPath(h content.Hash) string { return PrefetchPrefix + h.String() }

// maxPrefetches bounds the downloads members' requests keep running at
// once on this node; prefetchRetry is how long a failed one is not tried
// again (the member fetches the file itself meanwhile).
const (
	maxPrefetches = 4
	prefetchRetry = 30 * time.Second
)

// prefetch answers a member's prefetch request for a .deb, which must be
// listed in a Packages index this node verified: held, or its download
// started (or already running). It does not wait for the download.
func (p *Proxy) prefetch(ctx context.Context, name string) (held bool, err error) {
	h, err := content.ParseHash(strings.TrimPrefix(name, PrefetchPrefix))
	if err != nil {
		return false, fmt.Errorf("apt prefetch %q: %w", name, exchange.ErrFileNotFound)
	}
	if p.cfg.Store.Has(h) {
		return true, nil
	}
	now := p.cfg.Now()
	p.mu.Lock()
	_, known := p.debURL[h]
	p.mu.Unlock()
	if !known {
		// apt may have the index before this node has read it (it is
		// read after it is served), or this node restarted since.
		p.loadIndices(ctx)
	}
	p.mu.Lock()
	url, known := p.debURL[h]
	dh := p.debs[url]
	_, coming := p.flights[h]
	failed, hasFailed := p.prefetchFailed[h]
	p.mu.Unlock()
	switch {
	case !known:
		return false, fmt.Errorf("apt prefetch of %s: not in a Packages index this node verified: %w", h, exchange.ErrFileNotFound)
	case coming:
		return false, nil
	case hasFailed && now.Sub(failed) < prefetchRetry:
		return false, fmt.Errorf("apt prefetch of %s: failed %s ago: %w", h, now.Sub(failed).Round(time.Second), exchange.ErrFileUnavailable)
	}
	if p.prefetching.Add(1) > maxPrefetches {
		p.prefetching.Add(-1)
		return false, fmt.Errorf("apt prefetch of %s: %d prefetches running: %w", h, maxPrefetches, exchange.ErrFileUnavailable)
	}
	go func() {
		defer p.prefetching.Add(-1)
		err := p.obtain(context.Background(), KindPackage, h, dh.Size, url)
		p.mu.Lock()
		if err != nil {
			p.prefetchFailed[h] = p.cfg.Now()
		} else {
			delete(p.prefetchFailed, h)
		}
		p.mu.Unlock()
		if err != nil {
			p.log.Info("apt proxy: prefetch for the site failed", "url", url, "err", err)
		}
	}()
	return false, nil
}
