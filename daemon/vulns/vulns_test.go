package vulns

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	pinv "github.com/patchring/patchring/platform/inventory"
	"github.com/patchring/patchring/policy/advisory"
	"github.com/patchring/patchring/policy/trust"
	"github.com/patchring/patchring/policy/tufrepo"
)

type clock struct{ t time.Time }

func (c *clock) Now() time.Time { return c.t }

// fixture is a real TUF repository the admin publishes advisories to and an
// agent's verified client of it.
type fixture struct {
	t      *testing.T
	repo   *tufrepo.Repo
	dir    string
	client *trust.Client
	clock  *clock
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	base := t.TempDir()
	f := &fixture{t: t, dir: filepath.Join(base, "repo"), clock: &clock{t: time.Now()}}
	repo, err := tufrepo.Init(f.dir, filepath.Join(base, "keys"), tufrepo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f.repo = repo
	if _, err := repo.PublishPolicy([]byte(`{"version":1}`)); err != nil {
		t.Fatal(err)
	}
	root, err := repo.RootJSON()
	if err != nil {
		t.Fatal(err)
	}
	f.client, err = trust.New(trust.Config{TrustedRoot: root, StateDir: filepath.Join(base, "tuf"),
		Sources: []trust.Source{&trust.DirSource{Dir: f.dir}}, Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.client.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) publish(version int64, recs []*advisory.OSV) tufrepo.PublishAdvisoriesResult {
	f.t.Helper()
	kev := &advisory.KEVCatalog{CatalogVersion: "1", Vulnerabilities: []advisory.KEVEntry{{CveID: "CVE-2026-0001"}}}
	db, _, err := advisory.Build(recs, advisory.BuildOptions{Version: version, KEV: kev, Now: f.clock.t})
	if err != nil {
		f.t.Fatal(err)
	}
	res, err := f.repo.PublishAdvisories(db)
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.client.Refresh(context.Background()); err != nil {
		f.t.Fatal(err)
	}
	return res
}

func rec(id, cve, pkg, fixed string) *advisory.OSV {
	ev := []advisory.OSVEvent{{Introduced: "0"}}
	if fixed != "" {
		ev = append(ev, advisory.OSVEvent{Fixed: fixed})
	}
	return &advisory.OSV{ID: id, Modified: "2026-01-01T00:00:00Z", Upstream: []string{cve},
		Severity: []advisory.OSVSeverity{{Type: "CVSS_V3", Score: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}},
		Affected: []advisory.OSVAffected{{Package: advisory.OSVPackage{Ecosystem: "Debian:12", Name: pkg},
			Ranges: []advisory.OSVRange{{Type: "ECOSYSTEM", Events: ev}}}}}
}

func snapshot(pkgs ...pinv.Package) *pinv.Snapshot {
	return &pinv.Snapshot{OS: &pinv.OSInfo{ID: "debian", VersionID: "12"}, Packages: &pinv.Packages{Items: pkgs},
		Security: &pinv.Security{Vulnerabilities: []pinv.Vulnerability{{Name: "spectre_v2", Status: pinv.VulnMitigated}, {Name: "mds", Status: pinv.VulnVulnerable}}}}
}

func TestRefreshFullDeltaTamperStale(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	state := t.TempDir()
	snap := snapshot(pinv.Package{Manager: "dpkg", Name: "libfoo1", Source: "libfoo", Version: "1.1-1", Status: "installed"},
		pinv.Package{Manager: "dpkg", Name: "bar", Version: "2.0-1", Status: "installed"})
	changes := 0
	cfg := Config{Targets: f.client, StateDir: state, Inventory: func() *pinv.Snapshot { return snap }, OnChange: func() { changes++ },
		Candidates: func(context.Context) map[string]Candidate {
			return map[string]Candidate{"libfoo1": {Version: "1.2-1", State: FixApproved}}
		}}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Nothing published yet: not an error, the state says so.
	if _, err := s.Refresh(ctx); err != nil || s.State().Error == "" {
		t.Fatalf("refresh without advisories: %v %+v", err, s.State())
	}

	base := []*advisory.OSV{rec("DEBIAN-CVE-2026-0001", "CVE-2026-0001", "libfoo", "1.2-1"), rec("DEBIAN-CVE-2026-0002", "CVE-2026-0002", "bar", "")}
	for i := range 300 { // bulk, so a delta is visibly smaller than the database
		base = append(base, rec(fmt.Sprintf("DEBIAN-CVE-2025-%05d", i*7919%100000), fmt.Sprintf("CVE-2025-%05d", i*7919%100000), fmt.Sprintf("pkg%d", i*31%97), fmt.Sprintf("%d.%d-%d", i%13, i%7, i%3+1)))
	}
	f.publish(1, base)
	res, err := s.Refresh(ctx)
	if err != nil || res.Via != "full" || res.Version != 1 {
		t.Fatalf("first refresh %+v %v", res, err)
	}
	v, _ := s.APIVulns(ctx)
	if v.Summary.Critical != 2 || v.Summary.KEV != 1 || v.Summary.NoFix != 1 || v.Summary.CPU != 1 || len(v.CPU) != 2 {
		t.Fatalf("exposure %+v", v)
	}
	for _, fd := range v.Findings {
		switch fd.ID {
		case "CVE-2026-0001":
			if fd.Fix != "approved" || fd.Update != "1.2-1" || !fd.KEV || fd.Package != "libfoo1" {
				t.Errorf("libfoo finding %+v", fd)
			}
		case "CVE-2026-0002":
			if fd.Fix != "none" {
				t.Errorf("bar finding %+v: want exposed without a fix", fd)
			}
		}
	}

	// The next version comes as a delta.
	pub := f.publish(2, append(base, rec("DEBIAN-CVE-2026-0003", "CVE-2026-0003", "bar", "2.1-1")))
	res, err = s.Refresh(ctx)
	if err != nil || res.Via != "delta" || res.Version != 2 {
		t.Fatalf("second refresh %+v %v", res, err)
	}
	if res.Bytes*5 > int64(pub.Bytes) {
		t.Errorf("delta %d bytes for a database of %d", res.Bytes, pub.Bytes)
	}
	if v, _ := s.APIVulns(ctx); v.Summary.Critical != 3 || v.Advisories.Version != 2 {
		t.Errorf("after the delta %+v", v.Summary)
	}
	// The agent restarts with what it verified.
	s2, err := New(cfg)
	if err != nil || s2.State().Version != 2 {
		t.Fatalf("reload: %v %+v", err, s2.State())
	}

	// Tampered: the repository's bytes no longer match what it signed.
	f.publish(3, base)
	for _, name := range []string{tufrepo.AdvisoryDBTarget, tufrepo.AdvisoryDeltaTarget(2)} {
		info, err := f.client.TargetInfo(name)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(f.dir, "targets", "advisories", info.Hashes["sha256"]+"."+filepath.Base(name))
		if err := os.WriteFile(p, []byte("evil advisory data"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Refresh(ctx); !errors.Is(err, trust.ErrHashMismatch) {
		t.Fatalf("tampered database: %v", err)
	}
	if st := s.State(); !st.Stale || st.Version != 2 {
		t.Errorf("after tampering: %+v, want version 2 kept and stale", st)
	}

	// Stale: the signed metadata expired (a freeze): refused.
	f.clock.t = f.clock.t.Add(400 * 24 * time.Hour)
	if _, err := s.Refresh(ctx); !errors.Is(err, trust.ErrExpired) {
		t.Fatalf("expired metadata: %v", err)
	}
	if st := s.State(); !st.Stale || st.Version != 2 {
		t.Errorf("after expiry: %+v", st)
	}
	if changes != 2 {
		t.Errorf("OnChange called %d times, want 2", changes)
	}
}

func TestFixes(t *testing.T) {
	db := buildTestdata(t, 1)
	s, err := New(Config{StateDir: t.TempDir(), Inventory: func() *pinv.Snapshot {
		return snapshot(pinv.Package{Manager: "dpkg", Name: "libc6", Source: "glibc", Version: "2.36-9+deb12u1", Status: "installed"},
			pinv.Package{Manager: "dpkg", Name: "bind9", Version: "1:9.18.16-1~deb12u1", Status: "installed"})
	}})
	if err != nil {
		t.Fatal(err)
	}
	s.adopt(db, "", "")
	for _, c := range []struct {
		pkg, version, sev string
		kev               bool
	}{
		{"libc6", "2.36-9+deb12u3", "high", true},
		{"libc6", "2.36-9+deb12u2", "", false},      // still vulnerable
		{"bind9", "1:9.18.19-1~deb12u1", "", false}, // fixes two CVEs of unknown severity
		{"hello", "1.0", "", false},
	} {
		if sev, kev := s.Fixes(c.pkg, c.version); sev != c.sev || kev != c.kev {
			t.Errorf("Fixes(%s, %s) = %q %v, want %q %v", c.pkg, c.version, sev, kev, c.sev, c.kev)
		}
	}
}
