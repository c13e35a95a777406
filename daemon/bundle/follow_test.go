package bundle

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patchring/patchring/internal/testutil"
	"github.com/patchring/patchring/p2p/content"
	"github.com/patchring/patchring/policy/trust"
)

type memContent struct {
	mu    sync.Mutex
	blobs map[content.Hash][]byte
}

func (m *memContent) Has(h content.Hash) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.blobs[h]
	return ok
}

func (m *memContent) Put(_ context.Context, want content.Hash, size int64, r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if int64(len(data)) != size || sha256.Sum256(data) != want {
		return errors.New("hash mismatch")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.blobs[want] = data
	return nil
}

type seeded struct {
	mu   sync.Mutex
	urls []string
	err  error
}

func (s *seeded) SeedRelease(_ context.Context, url string, _ content.Hash) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.urls = append(s.urls, url)
	return nil
}

// A node whose verified metadata pins an apt release it does not hold
// (the metadata came from a peer that imported the bundle) fetches it from
// the site and hands it to its proxy; once held, it only hands it again;
// nothing when the metadata has expired; a failed fetch is an error that
// names the release (Run tries again).
func TestFollowPinnedFetchesAndSeeds(t *testing.T) {
	release := []byte("-----BEGIN PGP SIGNED MESSAGE-----\nOrigin: Debian\n")
	h := content.Hash(sha256.Sum256(release))
	url := "http://deb.example/debian-security/dists/bookworm-security/InRelease"
	expires := time.Now().Add(time.Hour)
	state := trust.State{
		Expires: trust.Expiries{Root: expires, Timestamp: expires, Snapshot: expires, Targets: expires},
		Apt: []trust.AptEntry{
			{TargetInfo: trust.TargetInfo{Name: "apt/release/" + h.String(), Length: int64(len(release)), Hashes: map[string]string{"sha256": h.String()}}, URL: url, Kind: "release"},
			{TargetInfo: trust.TargetInfo{Name: "apt/package/x", Length: 1, Hashes: map[string]string{"sha256": strings.Repeat("ab", 32)}}, URL: url + ".deb", Kind: "package"},
			{TargetInfo: trust.TargetInfo{Name: "apt/release/bad"}, URL: url, Kind: "release", Problem: "unreadable custom metadata"},
		},
	}
	store := &memContent{blobs: map[content.Hash][]byte{}}
	seeds := &seeded{}
	fetches := 0
	peerHas := false
	d := New(Config{
		TrustState: func() (trust.State, error) { return state, nil },
		Content:    store,
		Apt:        seeds,
		FromSite: func(ctx context.Context, got content.Hash, size int64) error {
			fetches++
			if !peerHas {
				return errors.New("no peer holds it yet")
			}
			return store.Put(ctx, got, size, bytes.NewReader(release))
		},
	})
	ctx := context.Background()

	n, err := d.followPinned(ctx)
	if err == nil || !strings.Contains(err.Error(), url) || n != 0 || len(seeds.urls) != 0 {
		t.Fatalf("no peer holds it: n=%d err=%v seeded %v", n, err, seeds.urls)
	}
	peerHas = true
	if n, err = d.followPinned(ctx); err != nil || n != 1 || len(seeds.urls) != 1 || seeds.urls[0] != url || !store.Has(h) {
		t.Fatalf("from the site: n=%d err=%v seeded %v", n, err, seeds.urls)
	}
	if n, err = d.followPinned(ctx); err != nil || n != 1 || fetches != 2 {
		t.Fatalf("held: n=%d err=%v fetches %d, want no new fetch", n, err, fetches)
	}
	seeds.err = errors.New("older than the release last verified")
	if _, err = d.followPinned(ctx); err == nil || !strings.Contains(err.Error(), "older") {
		t.Fatalf("the proxy's refusal was not returned: %v", err)
	}
	seeds.err = nil
	past := time.Now().Add(-time.Minute)
	state.Expires = trust.Expiries{Root: past, Timestamp: past, Snapshot: past, Targets: past}
	before := len(seeds.urls)
	if n, err = d.followPinned(ctx); err != nil || n != 0 || len(seeds.urls) != before {
		t.Fatalf("expired metadata: n=%d err=%v seeded %v", n, err, seeds.urls)
	}
}

// Run follows at start and when told the metadata changed, and ends with
// its context.
func TestFollowRunsOnChange(t *testing.T) {
	release := []byte("InRelease")
	h := content.Hash(sha256.Sum256(release))
	expires := time.Now().Add(time.Hour)
	var mu sync.Mutex
	state := trust.State{Expires: trust.Expiries{Root: expires, Timestamp: expires, Snapshot: expires, Targets: expires}}
	seeds := &seeded{}
	store := &memContent{blobs: map[content.Hash][]byte{h: release}}
	d := New(Config{
		TrustState: func() (trust.State, error) { mu.Lock(); defer mu.Unlock(); return state, nil },
		Content:    store, Apt: seeds,
		FromSite: func(context.Context, content.Hash, int64) error { return errors.New("unused") },
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	mu.Lock()
	state.Apt = []trust.AptEntry{{TargetInfo: trust.TargetInfo{Name: "apt/release/" + h.String(), Length: int64(len(release)),
		Hashes: map[string]string{"sha256": h.String()}}, URL: "http://a/dists/s/InRelease", Kind: "release"}}
	mu.Unlock()
	d.MetadataChanged()
	testutil.WaitFor(t, 10*time.Second, "Run followed the pinned release", func() error {
		seeds.mu.Lock()
		defer seeds.mu.Unlock()
		if len(seeds.urls) == 0 {
			return errors.New("nothing seeded yet")
		}
		return nil
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}
