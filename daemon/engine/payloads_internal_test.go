package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/patchring/patchring/p2p/content"
)

func newOriginTestStore(t *testing.T) *content.Store {
	t.Helper()
	cs, err := content.Open(t.TempDir(), content.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// TestOriginBelowMinimumRateIsCut: an origin that sends a few bytes and
// then stalls is cut off by the minimum-rate guard with ErrSlowOrigin,
// long before the download's deadline; so is one that never answers.
func TestOriginBelowMinimumRateIsCut(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/silent" {
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		w.Header().Set("Content-Length", "1000000")
		w.Write(make([]byte, 100))
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	p := StoreContentWith(newOriginTestStore(t), nil, OriginOptions{MinRate: 1024, RateWindow: 200 * time.Millisecond})
	for _, path := range []string{"/stall", "/silent"} {
		t.Run(path, func(t *testing.T) {
			// The context's deadline stands in for the download timeout:
			// only the guard can end the fetch before it.
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			err := p.Fetch(ctx, Payload{URI: srv.URL + path, Size: 1000000, SHA256: hex.EncodeToString(make([]byte, 32))})
			if !errors.Is(err, ErrSlowOrigin) {
				t.Fatalf("Fetch = %v, want ErrSlowOrigin", err)
			}
		})
	}
}

// TestOriginAboveMinimumRateCompletes: a steady origin above the minimum
// rate is not cut, however long the download takes.
func TestOriginAboveMinimumRateCompletes(t *testing.T) {
	body := make([]byte, 64<<10)
	for i := range body {
		body[i] = byte(i)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for off := 0; off < len(body); off += 4 << 10 {
			if _, err := w.Write(body[off : off+4<<10]); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-time.After(10 * time.Millisecond):
			case <-r.Context().Done():
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	cs := newOriginTestStore(t)
	p := StoreContentWith(cs, nil, OriginOptions{MinRate: 100, RateWindow: 500 * time.Millisecond})
	sum := sha256.Sum256(body)
	if err := p.Fetch(context.Background(), Payload{URI: srv.URL + "/ok", Size: int64(len(body)), SHA256: hex.EncodeToString(sum[:])}); err != nil {
		t.Fatal(err)
	}
	h, _ := content.ParseHash(hex.EncodeToString(sum[:]))
	if !cs.Has(h) {
		t.Fatal("the payload is not in the store")
	}
}
