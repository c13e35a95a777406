package trust_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/patchring/patchring/policy/trust"
	"github.com/patchring/patchring/policy/tufrepo"
)

func TestRefreshPolicyAndCatalog(t *testing.T) {
	f := newFixture(t, tufrepo.Options{})
	c := f.client()
	if _, err := c.LastGood(); !errors.Is(err, trust.ErrNoState) {
		t.Fatalf("LastGood before any refresh: err = %v, want ErrNoState", err)
	}
	res, err := c.Refresh(context.Background())
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if !res.Changed {
		t.Error("first refresh: Changed = false")
	}
	want := f.repo.Versions()
	if got := res.Versions; got.Root != want.Root || got.Targets != want.Targets || got.Snapshot != want.Snapshot || got.Timestamp != want.Timestamp {
		t.Errorf("versions = %+v, want %+v", got, want)
	}
	if !bytes.Equal(res.Policy, policyV1) {
		t.Errorf("policy = %q, want %q", res.Policy, policyV1)
	}
	if res.Source != f.origin().Name() {
		t.Errorf("source = %q, want %q", res.Source, f.origin().Name())
	}
	if len(res.Catalog) != 2 {
		t.Fatalf("catalog has %d entries, want 2: %+v", len(res.Catalog), res.Catalog)
	}
	var tool trust.CatalogEntry
	for _, e := range res.Catalog {
		if e.Name == f.catalog {
			tool = e
		}
	}
	if tool.Package != "tool" || tool.Version != "1.0" || !tool.Reboot || tool.Severity != "high" || tool.Classification != "security" ||
		len(tool.CVEs) != 1 || tool.CVEs[0] != "CVE-2024-1234" || len(tool.AppliesTo) != 1 || tool.AppliesTo[0] != "debian-12" || tool.Problem != "" {
		t.Errorf("catalog entry = %+v", tool)
	}
	if tool.Length != int64(len(f.payload)) || len(tool.Hashes["sha256"]) != 64 {
		t.Errorf("catalog entry target info = %+v", tool.TargetInfo)
	}
	if err := c.CheckExpiry(); err != nil {
		t.Errorf("CheckExpiry: %v", err)
	}

	// Nothing new: the refresh verifies and reports no change.
	res2, err := c.Refresh(context.Background())
	if err != nil {
		t.Fatalf("second refresh: %v", err)
	}
	if res2.Changed {
		t.Error("second refresh with nothing published: Changed = true")
	}

	// A new policy is picked up.
	if _, err := f.reopen().PublishPolicy(policyV2); err != nil {
		t.Fatal(err)
	}
	res3, err := c.Refresh(context.Background())
	if err != nil {
		t.Fatalf("refresh after publish: %v", err)
	}
	if !res3.Changed || !bytes.Equal(res3.Policy, policyV2) {
		t.Errorf("after publish: changed=%v policy=%q, want the new policy", res3.Changed, res3.Policy)
	}

	// A restarted agent reads its verified state without the network.
	restarted, err := trust.New(trust.Config{TrustedRoot: f.rootV1, StateDir: c.StateDir(), Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	st, err := restarted.LastGood()
	if err != nil {
		t.Fatalf("LastGood after restart: %v", err)
	}
	if st.Versions != res3.Versions || !bytes.Equal(st.Policy, policyV2) {
		t.Errorf("after restart: versions %+v policy %q, want %+v %q", st.Versions, st.Policy, res3.Versions, policyV2)
	}
}

func TestDownloadTarget(t *testing.T) {
	f := newFixture(t, tufrepo.Options{})
	c, _ := f.refreshed()
	dst := t.TempDir()
	p, err := c.DownloadTarget(context.Background(), f.catalog, dst)
	if err != nil {
		t.Fatalf("download: %v", err)
	}
	if want := filepath.Join(dst, filepath.FromSlash(f.catalog)); p != want {
		t.Errorf("path = %s, want %s", p, want)
	}
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, f.payload) {
		t.Error("downloaded bytes differ from the published payload")
	}
	// A second call finds the verified file and does not fetch again.
	hits := f.srv.hitCount(f.payloadURLPath(f.catalog))
	if _, err := c.DownloadTarget(context.Background(), f.catalog, dst); err != nil {
		t.Fatalf("second download: %v", err)
	}
	if n := f.srv.hitCount(f.payloadURLPath(f.catalog)); n != hits {
		t.Errorf("second download fetched again (%d -> %d requests)", hits, n)
	}
	info, err := c.TargetInfo(f.catalog)
	if err != nil || info.Length != int64(len(f.payload)) {
		t.Errorf("TargetInfo = %+v, %v", info, err)
	}
}

func TestSourceFailover(t *testing.T) {
	f := newFixture(t, tufrepo.Options{})
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "boom", http.StatusInternalServerError)
	}))
	t.Cleanup(broken.Close)
	bad := &trust.HTTPSource{BaseURL: broken.URL, Label: "broken mirror"}
	c := f.client(func(cfg *trust.Config) { cfg.Sources = []trust.Source{bad, f.origin()} })
	res, err := c.Refresh(context.Background())
	if err != nil {
		t.Fatalf("refresh with a broken first source: %v", err)
	}
	if res.Source != f.origin().Name() {
		t.Errorf("refresh went through %q, want the origin", res.Source)
	}
	if _, err := c.DownloadTarget(context.Background(), f.catalog, t.TempDir()); err != nil {
		t.Errorf("download with a broken first source: %v", err)
	}
	// With only the broken source, the reason is reported.
	c2 := f.client(func(cfg *trust.Config) { cfg.Sources = []trust.Source{bad} })
	_, err = c2.Refresh(context.Background())
	assertReason(t, err, trust.ErrUnavailable)
	c2.SetSources(nil)
	_, err = c2.Refresh(context.Background())
	assertReason(t, err, trust.ErrNoSources)
}

func TestConcurrentRefreshAndDownload(t *testing.T) {
	f := newFixture(t, tufrepo.Options{})
	c, _ := f.refreshed()
	dst := t.TempDir()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%2 == 0 {
				_, err := c.Refresh(context.Background())
				errs <- err
				return
			}
			_, err := c.DownloadTarget(context.Background(), f.catalog, filepath.Join(dst, string(rune('a'+i))))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	f := newFixture(t, tufrepo.Options{})
	tests := []struct {
		name string
		cfg  trust.Config
	}{
		{"no root", trust.Config{StateDir: t.TempDir()}},
		{"garbage root", trust.Config{TrustedRoot: []byte("{}"), StateDir: t.TempDir()}},
		{"no state dir", trust.Config{TrustedRoot: f.rootV1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := trust.New(tc.cfg); err == nil {
				t.Error("New accepted a bad config")
			}
		})
	}
}

func TestStateSurvivesCrashLeftovers(t *testing.T) {
	f := newFixture(t, tufrepo.Options{})
	c, good := f.refreshed()
	dir := c.StateDir()
	old := filepath.Join(dir, "refresh-killed")
	fresh := filepath.Join(dir, "refresh-running")
	for _, d := range []string{old, fresh} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	past := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(old, past, past); err != nil {
		t.Fatal(err)
	}
	c2, err := trust.New(trust.Config{TrustedRoot: f.rootV1, StateDir: dir, Sources: []trust.Source{f.origin()}, Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale scratch dir left: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("a recent scratch dir (maybe in use) was removed: %v", err)
	}
	assertKeptGood(t, c2, good)

	// A state file that no longer verifies is reported, and the next
	// refresh starts again from the installed root.
	state := filepath.Join(dir, "trusted.json")
	data, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(state, data[:len(data)/2], 0o600); err != nil { // torn by a disk that lied about fsync
		t.Fatal(err)
	}
	c3, err := trust.New(trust.Config{TrustedRoot: f.rootV1, StateDir: dir, Sources: []trust.Source{f.origin()}, Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c3.LastGood()
	assertReason(t, err, trust.ErrMalformed)
	res, err := c3.Refresh(context.Background())
	if err != nil {
		t.Fatalf("refresh over a broken state: %v", err)
	}
	if res.Versions != good.Versions || !bytes.Equal(res.Policy, good.Policy) {
		t.Errorf("recovered state %+v, want %+v", res.Versions, good.Versions)
	}
}
