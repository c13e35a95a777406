package vulns

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/patchring/patchring/p2p/content"
	"github.com/patchring/patchring/policy/trust"
)

// fakeChain is the repository's source chain: it serves the target when
// up, and counts downloads.
type fakeChain struct {
	name      string
	data      []byte
	up        bool
	downloads int
}

func (f *fakeChain) TargetInfo(name string) (trust.TargetInfo, error) {
	if name != f.name {
		return trust.TargetInfo{}, trust.ErrUnknownTarget
	}
	return trust.TargetInfo{Name: name, Length: int64(len(f.data)), Hashes: map[string]string{"sha256": content.Sum(f.data).String()}}, nil
}

func (f *fakeChain) DownloadTarget(_ context.Context, name, dst string) (string, error) {
	f.downloads++
	if !f.up {
		return "", errors.New("origin unreachable")
	}
	p := filepath.Join(dst, filepath.FromSlash(name))
	os.MkdirAll(filepath.Dir(p), 0o755)
	return p, os.WriteFile(p, f.data, 0o600)
}

// TestSiteTargets: a target in the content store is used without the
// chain; one from the chain is kept in the store for the site's peers;
// with the chain down, the site's peers provide it; a peer's wrong bytes
// never reach the caller.
func TestSiteTargets(t *testing.T) {
	const name = "advisories/db.json.gz"
	data := []byte("the signed advisory database")
	newStore := func(t *testing.T) *content.Store {
		st, err := content.Open(t.TempDir(), content.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	read := func(t *testing.T, p string) []byte {
		t.Helper()
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	h := content.Sum(data)
	ctx := t.Context()

	t.Run("from the store", func(t *testing.T) {
		st, chain := newStore(t), &fakeChain{name: name, data: data}
		if err := st.Put(ctx, h, int64(len(data)), bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		s := SiteTargets{Chain: chain, Store: func() Store { return st }}
		p, err := s.DownloadTarget(ctx, name, t.TempDir())
		if err != nil || !bytes.Equal(read(t, p), data) || chain.downloads != 0 {
			t.Fatalf("path %s err %v, chain asked %d times", p, err, chain.downloads)
		}
	})
	t.Run("from the origin, kept for the peers", func(t *testing.T) {
		st, chain := newStore(t), &fakeChain{name: name, data: data, up: true}
		s := SiteTargets{Chain: chain, Store: func() Store { return st }}
		p, err := s.DownloadTarget(ctx, name, t.TempDir())
		if err != nil || !bytes.Equal(read(t, p), data) || !st.Has(h) {
			t.Fatalf("path %s err %v, in store %v", p, err, st.Has(h))
		}
	})
	t.Run("from the site's peers", func(t *testing.T) {
		st, chain := newStore(t), &fakeChain{name: name, data: data}
		var asked content.Hash
		s := SiteTargets{Chain: chain, Store: func() Store { return st }, FromSite: func(ctx context.Context, want content.Hash, size int64) error {
			asked = want
			return st.Put(ctx, want, size, bytes.NewReader(data))
		}}
		p, err := s.DownloadTarget(ctx, name, t.TempDir())
		if err != nil || !bytes.Equal(read(t, p), data) || asked != h {
			t.Fatalf("path %s err %v, asked the site for %s", p, err, asked)
		}
	})
	t.Run("a peer's wrong bytes", func(t *testing.T) {
		st, chain := newStore(t), &fakeChain{name: name, data: data}
		s := SiteTargets{Chain: chain, Store: func() Store { return st }, FromSite: func(ctx context.Context, want content.Hash, size int64) error {
			return st.Put(ctx, want, size, bytes.NewReader([]byte("the signed advisory databasX")))
		}}
		if p, err := s.DownloadTarget(ctx, name, t.TempDir()); err == nil {
			t.Fatalf("a tampered copy was handed out: %s %q", p, read(t, p))
		}
		if st.Has(h) {
			t.Fatal("the store took bytes that do not match the signed hash")
		}
	})
}
