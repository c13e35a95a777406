package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/patchring/patchring/internal/minrate"
	"github.com/patchring/patchring/p2p/content"
	"github.com/patchring/patchring/policy/trust"
)

// PeerFetcher gets a payload from LAN peers into the store. The p2p layer
// implements it; without it payloads come from their origin.
type PeerFetcher interface {
	FetchFromPeers(ctx context.Context, h content.Hash, size int64, origin func(ctx context.Context, offset int64) (io.ReadCloser, error)) error
}

// payloads is the engine's content source: the content-addressed store,
// filled from peers when there are any and from the payload's origin URI
// otherwise. Every byte is verified against the hash from signed metadata
// (or from the indices apt verified) before the store makes it visible.
type payloads struct {
	store *content.Store
	http  *http.Client
	peers PeerFetcher // nil: origin only
	opts  OriginOptions
}

// OriginOptions bound downloads from a payload's origin (apt's mirror or a
// catalog entry's URI), the same way the trust client bounds its own: a
// whole-download deadline and a minimum rate, so a stalled or trickling
// origin cannot hold an install for long.
type OriginOptions struct {
	// Timeout bounds one download (default trust.DefaultPayloadTimeout).
	Timeout time.Duration
	// MinRate is the minimum rate in bytes per second, measured over each
	// RateWindow (defaults trust.DefaultMinRate over
	// trust.DefaultRateWindow); a slower origin is cut off with
	// ErrSlowOrigin. Negative disables the check.
	MinRate    int64
	RateWindow time.Duration
}

// ErrSlowOrigin is returned (wrapped) when a payload's origin sends fewer
// bytes than OriginOptions.MinRate.
var ErrSlowOrigin = errors.New("payload origin below the minimum rate")

// StoreContent returns the engine's content source over a content store:
// payloads come from peers when peers is not nil, else from their origin,
// with the default OriginOptions.
func StoreContent(store *content.Store, peers PeerFetcher) Content {
	return StoreContentWith(store, peers, OriginOptions{})
}

// StoreContentWith is StoreContent with explicit origin bounds.
func StoreContentWith(store *content.Store, peers PeerFetcher, opts OriginOptions) Content {
	if opts.Timeout <= 0 {
		opts.Timeout = trust.DefaultPayloadTimeout
	}
	if opts.MinRate == 0 {
		opts.MinRate = trust.DefaultMinRate
	}
	if opts.RateWindow <= 0 {
		opts.RateWindow = trust.DefaultRateWindow
	}
	return &payloads{store: store, http: &http.Client{Timeout: opts.Timeout}, peers: peers, opts: opts}
}

func (p *payloads) Fetch(ctx context.Context, pl Payload) error {
	h, err := content.ParseHash(pl.SHA256)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", pl.URI, err)
	}
	if p.store.Has(h) {
		return nil
	}
	origin := func(ctx context.Context, offset int64) (io.ReadCloser, error) { return p.open(ctx, pl.URI, offset) }
	if p.peers != nil {
		return p.peers.FetchFromPeers(ctx, h, pl.Size, origin)
	}
	body, err := origin(ctx, 0)
	if err != nil {
		return err
	}
	defer body.Close()
	if err := p.store.Put(ctx, h, pl.Size, body); err != nil {
		return fmt.Errorf("fetch %s: %w", pl.URI, err)
	}
	return nil
}

// open reads uri from offset: http(s) with a Range request, or a local
// file (apt's file: repositories).
func (p *payloads) open(ctx context.Context, uri string, offset int64) (io.ReadCloser, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return nil, fmt.Errorf("payload uri %q: %w", uri, err)
	}
	switch u.Scheme {
	case "file":
		f, err := os.Open(u.Path)
		if err != nil {
			return nil, fmt.Errorf("open payload: %w", err)
		}
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			f.Close()
			return nil, err
		}
		return f, nil
	case "http", "https":
		g := p.guard(ctx, uri)
		req, err := http.NewRequestWithContext(g.Context(), http.MethodGet, uri, nil)
		if err != nil {
			g.Close()
			return nil, err
		}
		if offset > 0 {
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
		}
		resp, err := p.http.Do(req)
		if err != nil {
			err = g.mapErr(err)
			g.Close()
			return nil, fmt.Errorf("download %s: %w", uri, err)
		}
		g.rc = resp.Body
		if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusPartialContent {
			g.Close()
			return nil, fmt.Errorf("download %s: %s", uri, resp.Status)
		}
		if offset > 0 && resp.StatusCode != http.StatusPartialContent {
			g.Close()
			return nil, fmt.Errorf("download %s: the server ignored the range request", uri)
		}
		return g, nil
	}
	return nil, fmt.Errorf("payload uri %q: scheme %q is not supported (use http, https or file)", uri, u.Scheme)
}

func (p *payloads) Open(sha string) (io.ReadCloser, error) {
	h, err := content.ParseHash(sha)
	if err != nil {
		return nil, err
	}
	return p.store.Open(h)
}

func (p *payloads) Keep(sha, reason string, until time.Time) error {
	h, err := content.ParseHash(sha)
	if err != nil {
		return err
	}
	return p.store.Pin(h, reason, until)
}

// rateGuard is an origin download under the minimum-rate watchdog
// (internal/minrate): the request's context is cancelled with
// ErrSlowOrigin when fewer than MinRate*RateWindow bytes arrived in a
// window (waiting for the response headers counts too).
type rateGuard struct {
	*minrate.Guard
	uri  string
	rc   io.ReadCloser // nil until the response arrived
	once sync.Once
}

func (p *payloads) guard(ctx context.Context, uri string) *rateGuard {
	return &rateGuard{Guard: minrate.Watch(ctx, p.opts.MinRate, p.opts.RateWindow, ErrSlowOrigin), uri: uri}
}

// mapErr names the watchdog as the cause of an error it provoked.
func (g *rateGuard) mapErr(err error) error {
	if cause := g.Slow(); cause != nil {
		return fmt.Errorf("%w after %d bytes (%v)", cause, g.Bytes(), err)
	}
	return err
}

func (g *rateGuard) Read(b []byte) (int, error) {
	n, err := g.rc.Read(b)
	g.Add(n)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("download %s: %w", g.uri, g.mapErr(err))
	}
	return n, err
}

// Close stops the watchdog, waits for it and closes the body.
func (g *rateGuard) Close() error {
	var err error
	g.once.Do(func() {
		g.Stop()
		if g.rc != nil {
			err = g.rc.Close()
		}
	})
	return err
}
