package aptproxy

// A distribution's InRelease through the site. Every apt-get update asks
// for it, on every node, and it is the one apt file whose hash no signed
// file names: so, unlike the indices and packages, it cannot be fetched
// from peers by hash. Instead the member that ranks first for the
// distribution (rendezvous over the site's live members, as for payloads)
// reads it from the vendor for everyone and serves it on the exchange's
// file protocol, asking the vendor on each ask whether it changed (a
// conditional request: a few hundred bytes when it did not). The others
// verify that copy themselves (gpgv against their own keyrings, not older
// than the release they hold) before apt sees it, and go to the vendor
// when the copy cannot be had or fails. A member cannot forge a release,
// but it could keep serving an old, still valid one and so hold back the
// site's updates: every node therefore also reads the InRelease from the
// vendor itself once per VendorCheck (at a random phase per node), and
// from then on refuses anything older.

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/patchring/patchring/p2p/content"
	"github.com/patchring/patchring/p2p/exchange"
	"github.com/patchring/patchring/platform/apt/archive"
)

// SiteReleases gets a distribution's InRelease from the site's member
// that fetches it from the vendor for the others (daemon/membership
// implements it over the payload exchange).
type SiteReleases interface {
	// FetchRelease returns the InRelease of the distribution at durl
	// ("http://host/path/dists/suite/") as served by the site's fetcher
	// for it, and that member's ID. It returns ErrSiteFetcher when this
	// node is that fetcher.
	FetchRelease(ctx context.Context, durl string) (data []byte, from string, err error)
	// BadRelease reports that member from served a release that failed
	// verification: it is avoided for a while, as a peer that served a
	// corrupt payload is.
	BadRelease(from string, err error)
}

// ErrSiteFetcher means this node fetches the release from the vendor
// for its site.
var ErrSiteFetcher = errors.New("this node is the site's fetcher of the release")

// ReleasePrefix is the file-protocol path under which a node serves the
// InRelease files it fetched for its site.
const ReleasePrefix = "aptrelease/"

// ReleasePath is the file-protocol path of durl's InRelease.
func ReleasePath(durl string) string {
	return ReleasePrefix + base64.RawURLEncoding.EncodeToString([]byte(durl))
}

// Default of Config.VendorCheck.
const vendorCheck = 6 * time.Hour

// shared is the last InRelease this node read from the vendor for its
// site, with what the vendor said to ask it whether the file changed.
type shared struct {
	data []byte
	etag string
	// lastModified is the vendor's Last-Modified, kept only when it is
	// at least 2 s older than the response (a file changed in the same
	// second as it was read could change again unnoticed).
	lastModified string
}

// relFlight is one revalidation of a shared release, joined by the askers
// that arrive while it runs.
type relFlight struct {
	done chan struct{}
	data []byte
	err  error
}

// OpenFile serves the site's members the InRelease of a distribution this
// node's apt uses (ReleasePath), as the vendor has it now (siteRelease),
// and starts the downloads they ask for (PrefetchPath, prefetch.go). It
// implements exchange.Files for ReleasePrefix and PrefetchPrefix.
func (p *Proxy) OpenFile(ctx context.Context, name string) (io.ReadCloser, int64, error) {
	if strings.HasPrefix(name, PrefetchPrefix) {
		held, err := p.prefetch(ctx, name)
		if err != nil {
			return nil, 0, err
		}
		answer := ""
		if held {
			answer = PrefetchHeld
		}
		return io.NopCloser(strings.NewReader(answer)), int64(len(answer)), nil
	}
	enc, ok := strings.CutPrefix(name, ReleasePrefix)
	raw, err := base64.RawURLEncoding.DecodeString(enc)
	if !ok || err != nil {
		return nil, 0, fmt.Errorf("apt release %q: %w", name, exchange.ErrFileNotFound)
	}
	durl := string(raw)
	data, err := p.siteRelease(ctx, durl)
	if err != nil {
		var r *refusal
		if errors.As(err, &r) && r.status == http.StatusNotFound {
			return nil, 0, fmt.Errorf("apt release of %s: %w: %v", durl, exchange.ErrFileNotFound, err)
		}
		return nil, 0, fmt.Errorf("apt release of %s: %w: %v", durl, exchange.ErrFileUnavailable, err)
	}
	return io.NopCloser(bytes.NewReader(data)), int64(len(data)), nil
}

// siteRelease returns durl's InRelease as the vendor has it now: each ask
// revalidates this node's copy with a conditional request (a few hundred
// bytes when nothing changed; the whole file when it did), and the askers
// that arrive while one runs share it. Only distributions of this node's
// own apt sources are fetched: a member cannot make this node a proxy for
// other URLs.
func (p *Proxy) siteRelease(ctx context.Context, durl string) ([]byte, error) {
	if !strings.HasPrefix(durl, "http://") || !strings.HasSuffix(durl, "/") || !strings.Contains(durl, "/dists/") {
		return nil, refuse(http.StatusNotFound, "%s is not a distribution URL", durl)
	}
	sources, err := p.sources()
	if err != nil {
		return nil, err
	}
	if _, ok := archive.Match(sources, durl); !ok {
		return nil, refuse(http.StatusNotFound, "%s is not among this node's apt sources", durl)
	}
	p.mu.Lock()
	if fl := p.relFlights[durl]; fl != nil {
		p.mu.Unlock()
		select {
		case <-fl.done:
			return fl.data, fl.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	fl := &relFlight{done: make(chan struct{})}
	p.relFlights[durl] = fl
	prev := p.shared[durl]
	p.mu.Unlock()
	// The request outlives one asker's context: the others wait for it.
	data, sh, err := p.vendorRelease(context.WithoutCancel(ctx), durl, prev)
	p.mu.Lock()
	if err == nil {
		p.shared[durl] = sh
	}
	delete(p.relFlights, durl)
	fl.data, fl.err = data, err
	close(fl.done)
	p.mu.Unlock()
	return data, err
}

// vendorRelease reads durl's InRelease from the vendor, verifies it and
// makes it the distribution's current release. With prev (the copy read
// before) the request is conditional, and a "not modified" answer keeps
// prev while it is still this node's current, unexpired release.
func (p *Proxy) vendorRelease(ctx context.Context, durl string, prev *shared) ([]byte, *shared, error) {
	target := durl + "InRelease"
	var cond http.Header
	if prev != nil && (prev.etag != "" || prev.lastModified != "") {
		cond = http.Header{}
		if prev.etag != "" {
			cond.Set("If-None-Match", prev.etag)
		}
		if prev.lastModified != "" {
			cond.Set("If-Modified-Since", prev.lastModified)
		}
	}
	resp, err := p.getOrigin(ctx, target, 0, cond)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotModified {
		p.mu.Lock()
		d := p.dists[durl]
		p.mu.Unlock()
		if d == nil || d.Hash != content.Sum(prev.data) {
			// This node's current release is another one: read it whole.
			return p.vendorRelease(ctx, durl, nil)
		}
		rel, err := p.relOf(ctx, d)
		if err != nil {
			return nil, nil, err
		}
		if err := p.checkFresh(rel, d.Hash); err != nil {
			return nil, nil, refuse(http.StatusBadGateway, "release of %s: %w", durl, err)
		}
		p.markVendorChecked(durl)
		return prev.data, prev, nil
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, archive.MaxReleaseSize+1))
	p.counters[KindRelease].vendor.Add(int64(len(data)))
	if err != nil {
		return nil, nil, fmt.Errorf("download %s: %w", target, err)
	}
	if len(data) > archive.MaxReleaseSize {
		return nil, nil, fmt.Errorf("download %s: larger than %d bytes", target, archive.MaxReleaseSize)
	}
	kr, err := p.keyring(durl)
	if err != nil {
		p.counters[KindRelease].refused.Add(1)
		return nil, nil, refuse(http.StatusBadGateway, "%s: %w", target, err)
	}
	text, err := p.verify.VerifyInRelease(ctx, kr, data)
	if err != nil {
		p.counters[KindRelease].refused.Add(1)
		return nil, nil, refuse(http.StatusBadGateway, "%s from the vendor: %w", target, err)
	}
	if err := p.accept(ctx, durl, text, data, nil); err != nil {
		p.counters[KindRelease].refused.Add(1)
		return nil, nil, err
	}
	p.markVendorChecked(durl)
	sh := &shared{data: data, etag: resp.Header.Get("ETag")}
	if lm := resp.Header.Get("Last-Modified"); lm != "" {
		lmt, err1 := http.ParseTime(lm)
		date, err2 := http.ParseTime(resp.Header.Get("Date"))
		if err1 == nil && err2 == nil && date.Sub(lmt) >= 2*time.Second {
			sh.lastModified = lm
		}
	}
	return data, sh, nil
}

func (p *Proxy) markVendorChecked(durl string) {
	p.mu.Lock()
	p.vendorChecked[durl] = p.cfg.Now()
	p.mu.Unlock()
}

// vendorDue reports whether this node should read durl's InRelease from
// the vendor itself rather than take the site's copy: once per
// VendorCheck, the first time at a random point of the first period.
func (p *Proxy) vendorDue(durl string) bool {
	now := p.cfg.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	last, ok := p.vendorChecked[durl]
	if !ok {
		last = now.Add(-rand.N(p.cfg.VendorCheck))
		p.vendorChecked[durl] = last
	}
	return now.Sub(last) >= p.cfg.VendorCheck
}

// releaseFromSite tries the site's copy of durl's InRelease: it returns
// the bytes to serve apt, already verified and accepted, or ok false when
// apt must be served from the vendor (this node fetches for its site, the
// copy could not be had, or it failed verification).
func (p *Proxy) releaseFromSite(ctx context.Context, durl string) (data []byte, ok bool, err error) {
	if p.cfg.Releases == nil || p.vendorDue(durl) {
		return nil, false, nil
	}
	data, from, err := p.cfg.Releases.FetchRelease(ctx, durl)
	if errors.Is(err, ErrSiteFetcher) {
		data, err := p.siteRelease(ctx, durl)
		return data, err == nil, err
	}
	if err != nil {
		p.log.Info("apt proxy: the site's copy of the release is not available; from the vendor", "dist", durl, "from", from, "err", err)
		return nil, false, nil
	}
	kr, err := p.keyring(durl)
	if err != nil {
		return nil, false, nil // the vendor path reports it
	}
	text, err := p.verify.VerifyInRelease(ctx, kr, data)
	if err != nil {
		p.counters[KindRelease].refused.Add(1)
		p.cfg.Releases.BadRelease(from, err)
		p.log.Warn("apt proxy: refused the site's copy of the release; from the vendor", "dist", durl, "from", from, "err", err)
		return nil, false, nil
	}
	if err := p.accept(ctx, durl, text, data, nil); err != nil {
		// Older than the release this node holds: a member that has not
		// seen the vendor's newest yet, or one holding the site back.
		// Not proof of either; the vendor decides.
		p.log.Info("apt proxy: the site's copy of the release is not current here; from the vendor", "dist", durl, "from", from, "err", err)
		return nil, false, nil
	}
	p.counters[KindRelease].peers.Add(int64(len(data)))
	return data, true, nil
}
