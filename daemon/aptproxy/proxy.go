package aptproxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/patchring/patchring/internal/atomicfile"
	"github.com/patchring/patchring/p2p/content"
	"github.com/patchring/patchring/platform/apt/archive"
)

// PeerFetcher gets a verified file into the content store through the
// site: the site's chosen node reads it from origin (the vendor), the
// others from their peers. daemon/membership implements it; it is the
// same path the engine's payloads take.
type PeerFetcher interface {
	FetchFromPeers(ctx context.Context, h content.Hash, size int64, origin func(ctx context.Context, offset int64) (io.ReadCloser, error)) error
}

// Config configures a Proxy.
type Config struct {
	// Listen is the loopback address to serve on; default 127.0.0.1:3142.
	// Any other host is refused.
	Listen string
	// Root is apt's Dir: where etc/apt/sources.list(.d) and the trusted
	// keyrings are read. Default "/".
	Root string
	// Store receives every verified file.
	Store *content.Store
	// Peers fetches index files and .debs through the site; nil: from the
	// vendor only.
	Peers PeerFetcher
	// StateFile remembers the verified release of each distribution (its
	// date, for replay protection, and its hash in Store) across restarts.
	StateFile string
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Skew is how far in the future a Release's Date may be; default 10
	// minutes.
	Skew time.Duration
	// OriginTimeout bounds one download from the vendor; default 30 min.
	OriginTimeout time.Duration
	// Pinned reports whether the file with hash h is pinned by the
	// admin's TUF metadata (a target of the verified metadata the agent
	// holds, from an offline bundle) and until when that metadata is in
	// force; nil: nothing is pinned. While a Release file is pinned the
	// admin's expiry replaces its Valid-Until, and the proxy serves it
	// from the store when the vendor cannot be reached (docs/APT.md,
	// offline sites).
	Pinned func(h content.Hash) (until time.Time, ok bool)
	// PinnedProbe is how long the vendor's Release is waited for when a
	// pinned one could be served instead; default 20 seconds.
	PinnedProbe time.Duration
	// Releases gets a distribution's InRelease through the site
	// (siterelease.go); nil: this node reads every InRelease from the
	// vendor.
	Releases SiteReleases
	// VendorCheck is how often each node reads every InRelease from the
	// vendor itself, whatever the site serves; default 6 hours.
	VendorCheck time.Duration
	// GPGV is the gpgv binary; default from PATH.
	GPGV string
	// Logger; nil logs nothing.
	Logger *slog.Logger
}

// Kind is a class of apt file, for the traffic counters.
type Kind int

// Kinds of apt files.
const (
	KindRelease Kind = iota // InRelease, Release, Release.gpg
	KindIndex               // Packages, Sources, Translation, Contents ... (by path or by-hash)
	KindPackage             // .deb, .udeb, .ddeb
	numKinds
)

func (k Kind) String() string {
	return [...]string{"release", "index", "package"}[k]
}

// Counters are the bytes handed to apt for one kind of file, by where they
// came from, and the files refused.
type Counters struct {
	FromVendor int64 // read from the vendor (the WAN) by this node
	FromPeers  int64 // read from the site's peers
	FromStore  int64 // already in this node's content store
	Refused    int64 // files that failed verification and were not served
}

// Stats is the proxy's traffic per kind.
type Stats map[string]Counters

// Proxy is the verifying apt proxy.
type Proxy struct {
	cfg    Config
	log    *slog.Logger
	ln     net.Listener
	client *http.Client
	verify archive.Verifier

	mu     sync.Mutex
	dists  map[string]*dist           // by distribution URL, ".../dists/<suite>/"
	debs   map[string]archive.DebHash // by full URL of the .deb
	debURL map[content.Hash]string    // the URL of each .deb in debs, by hash
	// prefetching counts the downloads members asked for (prefetch.go);
	// prefetchFailed is when one last failed, by hash.
	prefetching    atomic.Int32
	prefetchFailed map[content.Hash]time.Time
	parsed         map[content.Hash]bool // Packages indices already read into debs
	flights        map[content.Hash]*flight
	reach          *reachability
	// The InRelease through the site (siterelease.go).
	shared        map[string]*shared    // by distribution URL
	relFlights    map[string]*relFlight // revalidations of shared releases
	vendorChecked map[string]time.Time  // this node's last own read from the vendor

	counters [numKinds]struct{ vendor, peers, store, refused atomic.Int64 }
}

// dist is the verified release of one distribution.
type dist struct {
	URL      string           `json:"url"`
	Date     time.Time        `json:"date"`
	Hash     content.Hash     `json:"hash"`          // the InRelease (or Release) file in the store
	Detached bool             `json:"detached"`      // Release + Release.gpg rather than InRelease
	Sig      []byte           `json:"sig,omitempty"` // Release.gpg, when Detached
	rel      *archive.Release // nil until loaded from the store
}

type flight struct {
	done chan struct{}
	err  error
}

// New checks the configuration, loads the remembered releases and binds
// the listener; Run serves.
func New(cfg Config) (*Proxy, error) {
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:3142"
	}
	host, _, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("apt proxy: listen %q: %w", cfg.Listen, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("apt proxy: listen %q: only a loopback address is allowed (the proxy serves this node's apt)", cfg.Listen)
	}
	if cfg.Store == nil {
		return nil, errors.New("apt proxy: no content store")
	}
	if cfg.Root == "" {
		cfg.Root = "/"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Skew <= 0 {
		cfg.Skew = 10 * time.Minute
	}
	if cfg.OriginTimeout <= 0 {
		cfg.OriginTimeout = 30 * time.Minute
	}
	if cfg.PinnedProbe <= 0 {
		cfg.PinnedProbe = pinnedProbe
	}
	if cfg.VendorCheck <= 0 {
		cfg.VendorCheck = vendorCheck
	}
	p := &Proxy{
		cfg: cfg, log: cfg.Logger,
		// Never through the environment's proxy: that may be this proxy.
		client: &http.Client{Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           (&net.Dialer{Timeout: dialTimeout}).DialContext,
			ResponseHeaderTimeout: time.Minute,
			IdleConnTimeout:       time.Minute,
		}},
		reach:  newReachability(cfg.Now),
		verify: archive.Verifier{GPGV: cfg.GPGV},
		dists:  map[string]*dist{},
		debs:   map[string]archive.DebHash{},
		debURL: map[content.Hash]string{},

		prefetchFailed: map[content.Hash]time.Time{},
		parsed:         map[content.Hash]bool{},
		flights:        map[content.Hash]*flight{},

		shared:        map[string]*shared{},
		relFlights:    map[string]*relFlight{},
		vendorChecked: map[string]time.Time{},
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if err := p.loadState(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("apt proxy: %w", err)
	}
	p.ln = ln
	return p, nil
}

// URL is the proxy's URL for Acquire::http::Proxy.
func (p *Proxy) URL() string { return "http://" + p.ln.Addr().String() + "/" }

// Run serves until ctx ends.
func (p *Proxy) Run(ctx context.Context) error {
	srv := &http.Server{Handler: p, ReadHeaderTimeout: 30 * time.Second, BaseContext: func(net.Listener) context.Context { return ctx }}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(p.ln) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-errc
		return nil
	case err := <-errc:
		return fmt.Errorf("apt proxy: %w", err)
	}
}

// Close closes the listener of a proxy that was never Run.
func (p *Proxy) Close() error { return p.ln.Close() }

// Stats returns the bytes handed to apt per kind and source.
func (p *Proxy) Stats() Stats {
	out := Stats{}
	for k := range numKinds {
		c := &p.counters[k]
		out[k.String()] = Counters{FromVendor: c.vendor.Load(), FromPeers: c.peers.Load(), FromStore: c.store.Load(), Refused: c.refused.Load()}
	}
	return out
}

// refusal is an error apt gets as a status with a reason.
type refusal struct {
	status int
	err    error
}

func (r *refusal) Error() string { return r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

func refuse(status int, format string, args ...any) error {
	return &refusal{status: status, err: fmt.Errorf(format, args...)}
}

// ServeHTTP answers apt's proxy requests.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method == http.MethodConnect {
		http.Error(w, "patchring apt proxy: https is not proxied (apt uses Acquire::https::Proxy for https sources)", http.StatusMethodNotAllowed)
		return
	}
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		http.Error(w, "patchring apt proxy: only GET and HEAD", http.StatusMethodNotAllowed)
		return
	}
	u := req.URL
	if !u.IsAbs() || u.Scheme != "http" || u.Host == "" {
		http.Error(w, "patchring apt proxy: a proxy request needs an absolute http:// URL", http.StatusBadRequest)
		return
	}
	if u.Host == p.ln.Addr().String() {
		http.Error(w, "patchring apt proxy: request for the proxy itself", http.StatusLoopDetected)
		return
	}
	target := "http://" + u.Host + path.Clean("/"+u.Path)
	if strings.HasSuffix(u.Path, "/") {
		target += "/"
	}
	ctx := req.Context()
	var err error
	switch base := path.Base(u.Path); {
	case base == "InRelease" && strings.Contains(u.Path, "/dists/"):
		err = p.serveInRelease(ctx, w, req, target)
	case (base == "Release" || base == "Release.gpg") && strings.Contains(u.Path, "/dists/"):
		err = p.serveRelease(ctx, w, req, target, base == "Release.gpg")
	case strings.Contains(u.Path, "/dists/"):
		err = p.serveIndex(ctx, w, req, target)
	case strings.HasSuffix(base, ".deb") || strings.HasSuffix(base, ".udeb") || strings.HasSuffix(base, ".ddeb"):
		err = p.servePackage(ctx, w, req, target)
	default:
		err = refuse(http.StatusNotFound, "%s is not a file of a Debian archive the proxy can verify", target)
	}
	if err == nil {
		return
	}
	status := http.StatusBadGateway
	var r *refusal
	if errors.As(err, &r) {
		status = r.status
	}
	p.log.Warn("apt proxy: refused", "url", target, "status", status, "err", err)
	writeRefusal(w, status, "patchring apt proxy: "+err.Error())
}

// writeRefusal answers with status and the reason as the status line's
// reason phrase too: apt prints the status line ("Err: ... 502 <reason>"),
// never the body, and the admin should see why.
func writeRefusal(w http.ResponseWriter, status int, msg string) {
	reason := make([]byte, 0, 300)
	for i := 0; i < len(msg) && len(reason) < 300; i++ {
		c := msg[i]
		if c < 0x20 || c > 0x7e {
			c = ' '
		}
		reason = append(reason, c)
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, msg, status)
		return
	}
	conn, buf, err := hj.Hijack()
	if err != nil {
		http.Error(w, msg, status)
		return
	}
	defer conn.Close()
	body := msg + "\n"
	fmt.Fprintf(buf, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		status, reason, len(body), body)
	_ = buf.Flush()
}

// fetchVendor reads a small file (a release file) from the vendor whole.
// A 404 is a refusal with 404, so apt can fall back (InRelease to
// Release).
func (p *Proxy) fetchVendor(ctx context.Context, url string, kind Kind) ([]byte, error) {
	rc, err := p.openOrigin(ctx, url, 0)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, archive.MaxReleaseSize+1))
	p.counters[kind].vendor.Add(int64(len(data)))
	if err != nil {
		return nil, fmt.Errorf("download %s: %w", url, err)
	}
	if len(data) > archive.MaxReleaseSize {
		return nil, fmt.Errorf("download %s: larger than %d bytes", url, archive.MaxReleaseSize)
	}
	return data, nil
}

// openOrigin opens url at the vendor from offset. A vendor host that could
// not be reached is not tried again until its backoff has passed
// (reachability).
func (p *Proxy) openOrigin(ctx context.Context, url string, offset int64) (io.ReadCloser, error) {
	resp, err := p.getOrigin(ctx, url, offset, nil)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// getOrigin is openOrigin with extra request headers, returning the
// response (its Body closes the request's context). A 304 answer to a
// conditional request is returned as is.
func (p *Proxy) getOrigin(ctx context.Context, url string, offset int64, header http.Header) (*http.Response, error) {
	host := hostOf(url)
	if err := p.reach.check(host); err != nil {
		return nil, fmt.Errorf("download %s: %w", url, err)
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.OriginTimeout)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("download %s: %w", url, err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if offset > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
	}
	resp, err := p.client.Do(req)
	p.reach.result(ctx, host, err)
	if err != nil {
		cancel()
		if p.reach.check(host) != nil {
			p.log.Warn("apt proxy: vendor unreachable: serving pinned releases and peers' files only until it is retried", "host", host, "err", err)
		}
		return nil, fmt.Errorf("download %s: %w", url, err)
	}
	ok := resp.StatusCode == http.StatusOK && offset == 0 || resp.StatusCode == http.StatusPartialContent && offset > 0 ||
		resp.StatusCode == http.StatusNotModified && header != nil
	if !ok {
		resp.Body.Close()
		cancel()
		if resp.StatusCode == http.StatusNotFound {
			return nil, refuse(http.StatusNotFound, "download %s: %s", url, resp.Status)
		}
		return nil, fmt.Errorf("download %s (from byte %d): %s", url, offset, resp.Status)
	}
	resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelBody) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// countingBody counts the bytes read from the vendor.
type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c *countingBody) Read(b []byte) (int, error) {
	n, err := c.ReadCloser.Read(b)
	c.n.Add(int64(n))
	return n, err
}

// distURLOf is the distribution URL of a release file's URL.
func distURLOf(target string) string { return target[:strings.LastIndex(target, "/")+1] }

func (p *Proxy) serveInRelease(ctx context.Context, w http.ResponseWriter, req *http.Request, target string) error {
	durl := distURLOf(target)
	vctx := ctx
	if _, ok := p.pinnedRelease(ctx, durl); ok {
		// A pinned snapshot can stand in: wait for the vendor only so long.
		var cancel context.CancelFunc
		vctx, cancel = context.WithTimeout(ctx, p.cfg.PinnedProbe)
		defer cancel()
	} else {
		data, ok, err := p.releaseFromSite(ctx, durl)
		if err != nil {
			return err
		}
		if ok {
			serveBytes(w, req, data)
			return nil
		}
	}
	data, _, err := p.vendorRelease(vctx, durl, nil)
	if err != nil {
		var r *refusal
		if !errors.As(err, &r) {
			// The vendor cannot be reached: an offline site serves the
			// snapshot the admin pinned, while the pin holds.
			if pdata, ok := p.pinnedRelease(ctx, durl); ok {
				p.log.Info("apt proxy: vendor unreachable, serving the release the admin pinned", "dist", durl, "err", err)
				p.counters[KindRelease].store.Add(int64(len(pdata)))
				serveBytes(w, req, pdata)
				return nil
			}
		}
		return err
	}
	serveBytes(w, req, data)
	return nil
}

func (p *Proxy) serveRelease(ctx context.Context, w http.ResponseWriter, req *http.Request, target string, wantSig bool) error {
	durl := distURLOf(target)
	if wantSig {
		// apt asks for Release.gpg right after Release: serve the
		// signature of the release just verified.
		p.mu.Lock()
		d := p.dists[durl]
		p.mu.Unlock()
		if d != nil && d.Detached && len(d.Sig) > 0 {
			serveBytes(w, req, d.Sig)
			return nil
		}
	}
	data, err := p.fetchVendor(ctx, durl+"Release", KindRelease)
	if err != nil {
		return err
	}
	sig, err := p.fetchVendor(ctx, durl+"Release.gpg", KindRelease)
	if err != nil {
		p.counters[KindRelease].refused.Add(1)
		return refuse(http.StatusBadGateway, "%sRelease has no signature the proxy can check: %w", durl, err)
	}
	kr, err := p.keyring(durl)
	if err != nil {
		p.counters[KindRelease].refused.Add(1)
		return refuse(http.StatusBadGateway, "%s: %w", target, err)
	}
	if err := p.verify.VerifyDetached(ctx, kr, data, sig); err != nil {
		p.counters[KindRelease].refused.Add(1)
		return refuse(http.StatusBadGateway, "%sRelease from the vendor: %w", durl, err)
	}
	if err := p.accept(ctx, durl, data, data, sig); err != nil {
		p.counters[KindRelease].refused.Add(1)
		return err
	}
	if wantSig {
		serveBytes(w, req, sig)
	} else {
		serveBytes(w, req, data)
	}
	return nil
}

// checkFresh is Release.CheckFresh, except that a Release file the
// admin's TUF metadata pins (by hash) is held to that metadata's expiry
// instead of its own Valid-Until.
func (p *Proxy) checkFresh(rel *archive.Release, h content.Hash) error {
	now := p.cfg.Now()
	if until, ok := p.pinned(h); ok {
		if now.After(until) {
			return fmt.Errorf("%w: pinned by the admin's signed metadata, which expired at %s", archive.ErrStale, until.Format(time.RFC3339))
		}
		relaxed := *rel
		relaxed.ValidUntil = time.Time{}
		return relaxed.CheckFresh(now, p.cfg.Skew)
	}
	return rel.CheckFresh(now, p.cfg.Skew)
}

// pinned asks Config.Pinned.
func (p *Proxy) pinned(h content.Hash) (time.Time, bool) {
	if p.cfg.Pinned == nil {
		return time.Time{}, false
	}
	return p.cfg.Pinned(h)
}

// accept checks a verified release's dates against the clock and the
// last release verified for the distribution, and makes it current.
func (p *Proxy) accept(ctx context.Context, durl string, text, raw, sig []byte) error {
	rel, err := archive.ParseRelease(text)
	if err != nil {
		return refuse(http.StatusBadGateway, "%s: %w", durl, err)
	}
	h := content.Sum(raw)
	if err := p.checkFresh(rel, h); err != nil {
		return refuse(http.StatusBadGateway, "release of %s: %w", durl, err)
	}
	p.mu.Lock()
	prev := p.dists[durl]
	p.mu.Unlock()
	if prev != nil && rel.Date.Before(prev.Date) {
		return refuse(http.StatusBadGateway, "release of %s: %w: dated %s, older than the one verified before (%s): a replay",
			durl, archive.ErrStale, rel.Date.Format(time.RFC3339), prev.Date.Format(time.RFC3339))
	}
	if err := p.cfg.Store.Put(ctx, h, int64(len(raw)), bytes.NewReader(raw)); err != nil {
		return fmt.Errorf("store release of %s: %w", durl, err)
	}
	d := &dist{URL: durl, Date: rel.Date, Hash: h, Detached: sig != nil, Sig: sig, rel: rel}
	p.mu.Lock()
	p.dists[durl] = d
	p.mu.Unlock()
	if prev == nil || prev.Hash != h {
		p.log.Info("apt proxy: release verified", "dist", durl, "date", rel.Date, "valid_until", rel.ValidUntil, "files", len(rel.Files))
	}
	return p.saveState()
}

// release returns the verified release whose distribution URL is the
// longest prefix of target.
func (p *Proxy) release(ctx context.Context, target string) (*dist, *archive.Release, string, error) {
	p.mu.Lock()
	var best *dist
	for u, d := range p.dists {
		if strings.HasPrefix(target, u) && (best == nil || len(u) > len(best.URL)) {
			best = d
		}
	}
	p.mu.Unlock()
	if best == nil {
		return nil, nil, "", refuse(http.StatusNotFound, "%s: no verified release of its distribution (apt fetches InRelease first)", target)
	}
	rel, err := p.relOf(ctx, best)
	if err != nil {
		return nil, nil, "", err
	}
	if err := p.checkFresh(rel, best.Hash); err != nil {
		return nil, nil, "", refuse(http.StatusBadGateway, "release of %s: %w (run apt-get update)", best.URL, err)
	}
	return best, rel, strings.TrimPrefix(target, best.URL), nil
}

// relOf returns d's parsed release, reading it from the store if needed.
func (p *Proxy) relOf(ctx context.Context, d *dist) (*archive.Release, error) {
	p.mu.Lock()
	rel := d.rel
	p.mu.Unlock()
	if rel != nil {
		return rel, nil
	}
	return p.loadRelease(ctx, d)
}

// loadRelease reads a remembered release back from the store; gpgv has
// verified it before it went there.
func (p *Proxy) loadRelease(ctx context.Context, d *dist) (*archive.Release, error) {
	r, err := p.cfg.Store.Open(d.Hash)
	if err != nil {
		return nil, refuse(http.StatusNotFound, "release of %s is no longer in the content store (run apt-get update): %w", d.URL, err)
	}
	defer r.Close()
	raw, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read release of %s: %w", d.URL, err)
	}
	text := raw
	if !d.Detached {
		kr, err := p.keyring(d.URL)
		if err != nil {
			return nil, err
		}
		// Re-run gpgv to get the signed text without the armour.
		if text, err = p.verify.VerifyInRelease(ctx, kr, raw); err != nil {
			return nil, fmt.Errorf("release of %s in the store: %w", d.URL, err)
		}
	}
	rel, err := archive.ParseRelease(text)
	if err != nil {
		return nil, fmt.Errorf("release of %s in the store: %w", d.URL, err)
	}
	p.mu.Lock()
	d.rel = rel
	p.mu.Unlock()
	return rel, nil
}

func (p *Proxy) serveIndex(ctx context.Context, w http.ResponseWriter, req *http.Request, target string) error {
	d, release, rel, err := p.release(ctx, target)
	if err != nil {
		return err
	}
	fh, ok := release.Lookup(rel)
	if !ok {
		return refuse(http.StatusNotFound, "%s is not listed in the verified release of %s", rel, d.URL)
	}
	h, err := content.ParseHash(fh.SHA256)
	if err != nil {
		return err
	}
	if err := p.obtain(ctx, KindIndex, h, fh.Size, target); err != nil {
		return err
	}
	if err := p.serveStore(w, req, h); err != nil {
		return err
	}
	if archive.IsPackagesIndex(fh.Path) {
		if err := p.readPackages(d.URL, fh.Path, h); err != nil {
			p.log.Warn("apt proxy: reading Packages index", "dist", d.URL, "index", fh.Path, "err", err)
		}
	}
	return nil
}

func (p *Proxy) servePackage(ctx context.Context, w http.ResponseWriter, req *http.Request, target string) error {
	p.mu.Lock()
	dh, ok := p.debs[target]
	p.mu.Unlock()
	if !ok {
		// After a restart: read the indices of the remembered releases.
		p.loadIndices(ctx)
		p.mu.Lock()
		dh, ok = p.debs[target]
		p.mu.Unlock()
	}
	if !ok {
		return refuse(http.StatusNotFound, "%s is not listed in any verified Packages index (run apt-get update)", target)
	}
	h, err := content.ParseHash(dh.SHA256)
	if err != nil {
		return err
	}
	if err := p.obtain(ctx, KindPackage, h, dh.Size, target); err != nil {
		return err
	}
	return p.serveStore(w, req, h)
}

// obtain gets h into the store: already there, through the site, or from
// the vendor. The store (and the exchange, for peers) verifies every byte
// against h before the file becomes visible; a failure is never served.
func (p *Proxy) obtain(ctx context.Context, kind Kind, h content.Hash, size int64, url string) error {
	c := &p.counters[kind]
	if p.cfg.Store.Has(h) {
		c.store.Add(size)
		return nil
	}
	p.mu.Lock()
	if f, ok := p.flights[h]; ok {
		p.mu.Unlock()
		select {
		case <-f.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if f.err != nil {
			return f.err
		}
		c.store.Add(size)
		return nil
	}
	f := &flight{done: make(chan struct{})}
	p.flights[h] = f
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.flights, h)
		p.mu.Unlock()
		close(f.done)
	}()

	var vendor atomic.Int64
	origin := func(ctx context.Context, offset int64) (io.ReadCloser, error) {
		rc, err := p.openOrigin(ctx, url, offset)
		if err != nil {
			return nil, err
		}
		return &countingBody{ReadCloser: rc, n: &vendor}, nil
	}
	// The download must not end when one apt client hangs up: another
	// may be waiting for the same file.
	fctx := context.WithoutCancel(ctx)
	fctx, cancel := context.WithTimeout(fctx, p.cfg.OriginTimeout)
	defer cancel()
	var err error
	if p.cfg.Peers != nil {
		err = p.cfg.Peers.FetchFromPeers(fctx, h, size, origin)
	} else {
		var rc io.ReadCloser
		if rc, err = origin(fctx, 0); err == nil {
			err = p.cfg.Store.Put(fctx, h, size, rc)
			rc.Close()
		}
	}
	v := vendor.Load()
	c.vendor.Add(v)
	if err != nil {
		c.refused.Add(1)
		f.err = fmt.Errorf("%s (sha256 %s, %d bytes): not verified, not served: %w", url, h, size, err)
		var r *refusal
		if errors.As(err, &r) {
			f.err = &refusal{status: r.status, err: f.err}
		}
		return f.err
	}
	if peers := size - v; peers > 0 {
		c.peers.Add(peers)
	}
	return nil
}

// serveStore serves a verified blob, with ranges (apt resumes partial
// downloads).
func (p *Proxy) serveStore(w http.ResponseWriter, req *http.Request, h content.Hash) error {
	r, err := p.cfg.Store.Open(h)
	if err != nil {
		return fmt.Errorf("open %s: %w", h, err)
	}
	defer r.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, req, "", time.Time{}, r)
	return nil
}

func serveBytes(w http.ResponseWriter, req *http.Request, data []byte) {
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, req, "", time.Time{}, bytes.NewReader(data))
}

// readPackages adds the .debs a verified Packages index lists.
func (p *Proxy) readPackages(durl, name string, h content.Hash) error {
	p.mu.Lock()
	done := p.parsed[h]
	p.mu.Unlock()
	if done {
		return nil
	}
	r, err := p.cfg.Store.Open(h)
	if err != nil {
		return err
	}
	defer r.Close()
	dr, err := archive.Decompress(name, r)
	if err != nil {
		return err
	}
	base := durl[:strings.LastIndex(durl, "/dists/")+1]
	found := map[string]archive.DebHash{}
	if err := archive.ParsePackages(dr, func(d archive.DebHash) error {
		found[base+d.Filename] = d
		return nil
	}); err != nil {
		return err
	}
	p.mu.Lock()
	for k, v := range found {
		p.debs[k] = v
		if dh, err := content.ParseHash(v.SHA256); err == nil {
			p.debURL[dh] = k
		}
	}
	p.parsed[h] = true
	p.mu.Unlock()
	return nil
}

// loadIndices reads the Packages indices of every remembered release that
// are in the store.
func (p *Proxy) loadIndices(ctx context.Context) {
	p.mu.Lock()
	ds := make([]*dist, 0, len(p.dists))
	for _, d := range p.dists {
		ds = append(ds, d)
	}
	p.mu.Unlock()
	for _, d := range ds {
		rel, err := p.relOf(ctx, d)
		if err != nil {
			p.log.Warn("apt proxy: remembered release", "dist", d.URL, "err", err)
			continue
		}
		// One form of each index is enough: the first in the store.
		seen := map[string]bool{}
		for _, fh := range rel.Files {
			if !archive.IsPackagesIndex(fh.Path) {
				continue
			}
			dir := path.Dir(fh.Path)
			h, err := content.ParseHash(fh.SHA256)
			if err != nil || seen[dir] || !p.cfg.Store.Has(h) {
				continue
			}
			if err := p.readPackages(d.URL, fh.Path, h); err == nil {
				seen[dir] = true
			}
		}
	}
}

// keyring is the set of keys apt trusts for the distribution at durl: the
// Signed-By of its sources entry, else apt's trusted keyrings.
func (p *Proxy) keyring(durl string) (archive.Keyring, error) {
	sources, err := p.sources()
	if err != nil {
		return archive.Keyring{}, err
	}
	var kr archive.Keyring
	src, ok := archive.Match(sources, durl)
	if ok {
		if src.Trusted && len(src.SignedBy) == 0 {
			return kr, fmt.Errorf("source %s is [trusted=yes] (unsigned): the proxy cannot verify it; exempt its host with Acquire::http::Proxy::<host> \"DIRECT\"", src.Where)
		}
		for _, sb := range src.SignedBy {
			switch {
			case strings.Contains(sb, "-----BEGIN PGP PUBLIC KEY BLOCK-----"):
				kr.Inline = append(kr.Inline, sb)
			case isFingerprint(sb):
				kr.Fingerprints = append(kr.Fingerprints, strings.ToUpper(strings.TrimSuffix(sb, "!")))
			default:
				kr.Files = append(kr.Files, p.rooted(sb))
			}
		}
	}
	if len(kr.Files) == 0 && len(kr.Inline) == 0 {
		kr.Files = p.trustedKeyrings()
	}
	if len(kr.Files) == 0 && len(kr.Inline) == 0 {
		return kr, fmt.Errorf("no trusted keyring for %s (Signed-By or %s)", durl, filepath.Join(p.cfg.Root, "etc/apt/trusted.gpg.d"))
	}
	return kr, nil
}

func isFingerprint(s string) bool {
	s = strings.TrimSuffix(s, "!")
	if len(s) != 16 && len(s) != 40 {
		return false
	}
	for _, r := range s {
		if !strings.ContainsRune("0123456789abcdefABCDEF", r) {
			return false
		}
	}
	return true
}

// rooted resolves a keyring path under Root when it exists there.
func (p *Proxy) rooted(name string) string {
	if p.cfg.Root != "/" {
		if in := filepath.Join(p.cfg.Root, name); fileExists(in) {
			return in
		}
	}
	return name
}

func fileExists(name string) bool {
	st, err := os.Stat(name)
	return err == nil && st.Mode().IsRegular()
}

// trustedKeyrings are apt's default keyrings under Root.
func (p *Proxy) trustedKeyrings() []string {
	var out []string
	if f := filepath.Join(p.cfg.Root, "etc/apt/trusted.gpg"); fileExists(f) {
		out = append(out, f)
	}
	dir := filepath.Join(p.cfg.Root, "etc/apt/trusted.gpg.d")
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if n := e.Name(); strings.HasSuffix(n, ".gpg") || strings.HasSuffix(n, ".asc") {
			out = append(out, filepath.Join(dir, n))
		}
	}
	return out
}

// sources reads apt's sources under Root (read each time: the admin may
// change them at any moment).
func (p *Proxy) sources() ([]archive.Source, error) {
	var out []archive.Source
	read := func(name string, parse func(string, []byte) ([]archive.Source, error)) error {
		data, err := os.ReadFile(name)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		ss, err := parse(name, data)
		if err != nil {
			return err
		}
		out = append(out, ss...)
		return nil
	}
	if err := read(filepath.Join(p.cfg.Root, "etc/apt/sources.list"), archive.ParseSourcesList); err != nil {
		return nil, fmt.Errorf("apt sources: %w", err)
	}
	dir := filepath.Join(p.cfg.Root, "etc/apt/sources.list.d")
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		var err error
		switch n := e.Name(); {
		case strings.HasSuffix(n, ".list"):
			err = read(filepath.Join(dir, n), archive.ParseSourcesList)
		case strings.HasSuffix(n, ".sources"):
			err = read(filepath.Join(dir, n), archive.ParseDeb822Sources)
		}
		if err != nil {
			return nil, fmt.Errorf("apt sources: %w", err)
		}
	}
	return out, nil
}

type stateFile struct {
	Dists []*dist `json:"dists"`
}

func (p *Proxy) loadState() error {
	if p.cfg.StateFile == "" {
		return nil
	}
	data, err := os.ReadFile(p.cfg.StateFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("apt proxy state: %w", err)
	}
	var st stateFile
	if err := json.Unmarshal(data, &st); err != nil {
		return fmt.Errorf("apt proxy state %s: %w (remove it to start afresh: apt-get update fills it again)", p.cfg.StateFile, err)
	}
	for _, d := range st.Dists {
		if d != nil && d.URL != "" {
			p.dists[d.URL] = d
		}
	}
	return nil
}

func (p *Proxy) saveState() error {
	if p.cfg.StateFile == "" {
		return nil
	}
	p.mu.Lock()
	st := stateFile{}
	for _, d := range p.dists {
		st.Dists = append(st.Dists, d)
	}
	data, err := json.MarshalIndent(st, "", "  ")
	p.mu.Unlock()
	if err != nil {
		return fmt.Errorf("apt proxy state: %w", err)
	}
	if err := atomicfile.WriteFile(p.cfg.StateFile, data, 0o600); err != nil {
		return fmt.Errorf("apt proxy state: %w", err)
	}
	return nil
}
