package engine

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/patchring/patchring/p2p/content"
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
}

// StoreContent returns the engine's content source over a content store:
// payloads come from peers when peers is not nil, else from their origin.
func StoreContent(store *content.Store, peers PeerFetcher) Content {
	return &payloads{store: store, http: &http.Client{Timeout: 30 * time.Minute}, peers: peers}
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
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
		if err != nil {
			return nil, err
		}
		if offset > 0 {
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
		}
		resp, err := p.http.Do(req)
		if err != nil {
			return nil, fmt.Errorf("download %s: %w", uri, err)
		}
		if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusPartialContent {
			resp.Body.Close()
			return nil, fmt.Errorf("download %s: %s", uri, resp.Status)
		}
		if offset > 0 && resp.StatusCode != http.StatusPartialContent {
			resp.Body.Close()
			return nil, fmt.Errorf("download %s: the server ignored the range request", uri)
		}
		return resp.Body, nil
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
