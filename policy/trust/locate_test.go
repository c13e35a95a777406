package trust_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchring/patchring/policy/trust"
	"github.com/patchring/patchring/policy/tufrepo"
)

// addressless is a source without addresses (as a peer would be).
type addressless struct{}

func (addressless) Name() string { return "peer without address" }
func (addressless) Fetch(ctx context.Context, path string, maxLength int64) (io.ReadCloser, error) {
	return nil, errors.New("not used")
}

// TestLocateTarget: the location of a signed target is the file the
// origin serves, and its bytes match the signed length and sha256.
func TestLocateTarget(t *testing.T) {
	f := newFixture(t, tufrepo.Options{})
	// A version with characters that need care in paths and URLs.
	src := filepath.Join(t.TempDir(), "tool_1.0+b1~rc1_amd64.deb")
	body := []byte(strings.Repeat("tool 1.0+b1~rc1\n", 300))
	if err := os.WriteFile(src, body, 0o644); err != nil {
		t.Fatal(err)
	}
	odd, err := f.repo.AddCatalogFile(src, tufrepo.CatalogMeta{Package: "tool", Version: "1:1.0+b1~rc1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.repo.Publish(); err != nil {
		t.Fatal(err)
	}
	c, _ := f.refreshed(func(cfg *trust.Config) {
		cfg.Sources = append(cfg.Sources, addressless{})
	})

	for _, tc := range []struct {
		name, target string
		want         []byte
	}{
		{"catalog payload", f.catalog, f.payload},
		{"epoch, plus and tilde", odd, body},
	} {
		t.Run(tc.name, func(t *testing.T) {
			loc, err := c.LocateTarget(tc.target)
			if err != nil {
				t.Fatalf("locate: %v", err)
			}
			if want := strings.TrimPrefix(f.payloadURLPath(tc.target), "/"); loc.Path != want {
				t.Errorf("path = %q, want %q", loc.Path, want)
			}
			sum := sha256.Sum256(tc.want)
			if loc.Name != tc.target || loc.Length != int64(len(tc.want)) || loc.Hashes["sha256"] != hex.EncodeToString(sum[:]) {
				t.Errorf("target info = %+v, want length %d sha256 %x", loc.TargetInfo, len(tc.want), sum)
			}
			if len(loc.URLs) != 1 {
				t.Fatalf("URLs = %q, want only the origin's (the peer has no address)", loc.URLs)
			}
			resp, err := f.srv.Client().Get(loc.URLs[0])
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s: %s %v", loc.URLs[0], resp.Status, err)
			}
			if string(got) != string(tc.want) {
				t.Errorf("GET %s served %d other bytes", loc.URLs[0], len(got))
			}
		})
	}
}

func TestLocateTargetRefuses(t *testing.T) {
	f := newFixture(t, tufrepo.Options{})
	fresh := f.client()
	if _, err := fresh.LocateTarget(f.catalog); !errors.Is(err, trust.ErrNoState) {
		t.Errorf("before any refresh: err = %v, want ErrNoState", err)
	}
	c, _ := f.refreshed()
	for _, tc := range []struct {
		name, target string
		reason       error
	}{
		{"unsigned name", "catalog/tool/6.6/evil.deb", trust.ErrUnknownTarget},
		{"escaping name", "catalog/../../etc/passwd", trust.ErrBadTargetName},
		{"absolute name", "/etc/passwd", trust.ErrBadTargetName},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.LocateTarget(tc.target)
			assertReason(t, err, tc.reason)
		})
	}
	t.Run("expired state", func(t *testing.T) {
		f.clock.Set(time.Now().Add(48 * time.Hour))
		_, err := c.LocateTarget(f.catalog)
		assertReason(t, err, trust.ErrExpired)
	})
}
