package tufrepo

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchring/patchring/policy/advisory"
)

func advisoryDB(t *testing.T, version int64, n int) *advisory.DB {
	t.Helper()
	var recs []*advisory.OSV
	for i := range n {
		recs = append(recs, &advisory.OSV{ID: "DEBIAN-CVE-2026-" + strings.Repeat("1", i+1), Modified: "m",
			Affected: []advisory.OSVAffected{{Package: advisory.OSVPackage{Ecosystem: "Debian:12", Name: "p"},
				Ranges: []advisory.OSVRange{{Type: "ECOSYSTEM", Events: []advisory.OSVEvent{{Introduced: "0"}}}}}}})
	}
	db, _, err := advisory.Build(recs, advisory.BuildOptions{Version: version})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func TestPublishAdvisories(t *testing.T) {
	base := t.TempDir()
	r, err := Init(filepath.Join(base, "repo"), filepath.Join(base, "keys"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.AdvisoryDB(); !errors.Is(err, ErrNoAdvisories) {
		t.Fatalf("empty repo: %v", err)
	}
	for v := int64(1); v <= 10; v++ {
		res, err := r.PublishAdvisories(advisoryDB(t, v, int(v)))
		if err != nil {
			t.Fatal(err)
		}
		want := min(int(v-1), AdvisoryKeepDeltas)
		if len(res.Deltas) != want {
			t.Errorf("version %d: %d deltas, want %d", v, len(res.Deltas), want)
		}
	}
	got, err := r.AdvisoryDB()
	if err != nil || got.Version != 10 || len(got.Entries) != 10 {
		t.Fatalf("published %+v %v", got, err)
	}
	deltas := 0
	for _, tg := range r.ListTargets() {
		if strings.HasPrefix(tg.Name, AdvisoryDeltaPrefix) {
			deltas++
			if tg.Name == AdvisoryDeltaTarget(2) {
				t.Error("a delta from a version past the kept window is still signed")
			}
		}
	}
	if deltas != AdvisoryKeepDeltas {
		t.Errorf("%d delta targets signed", deltas)
	}
	if _, err := r.PublishAdvisories(advisoryDB(t, 10, 1)); err == nil || !strings.Contains(err.Error(), "not newer") {
		t.Errorf("same version published again: %v", err)
	}
}
