package advisory

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func loadTestdata(t testing.TB) ([]*OSV, *KEVCatalog) {
	t.Helper()
	recs, err := ReadOSVPaths("testdata/osv")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile("testdata/kev.json")
	if err != nil {
		t.Fatal(err)
	}
	kev, err := ParseKEV(raw, "testdata/kev.json")
	if err != nil {
		t.Fatal(err)
	}
	return recs, kev
}

func buildTestdata(t testing.TB, version int64) *DB {
	t.Helper()
	recs, kev := loadTestdata(t)
	db, _, err := Build(recs, BuildOptions{KEV: kev, Version: version, Now: time.Date(2024, 9, 3, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func entry(db *DB, id string) *Entry {
	for i := range db.Entries {
		if db.Entries[i].ID == id {
			return &db.Entries[i]
		}
	}
	return nil
}

func TestBuildFromRealRecords(t *testing.T) {
	recs, kev := loadTestdata(t)
	if len(recs) != 9 {
		t.Fatalf("read %d records, want 9", len(recs))
	}
	db, skipped, err := Build(recs, BuildOptions{KEV: kev, Version: 3, Now: time.Date(2024, 9, 3, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	if entry(db, "DSA-9000-1") != nil {
		t.Error("withdrawn DSA-9000-1 kept")
	}
	if !slices.ContainsFunc(skipped, func(s Skipped) bool { return s.ID == "DSA-9000-1" && strings.HasPrefix(s.Reason, "withdrawn") }) {
		t.Errorf("withdrawn record not reported as skipped: %+v", skipped)
	}
	if entry(db, "GHSA-jfh8-c2jp-5v3q") != nil {
		t.Error("a Maven record is kept: patchring cannot match it on a node")
	}
	dsa := entry(db, "DSA-5514-1")
	if dsa == nil || !slices.Equal(dsa.CVEs, []string{"CVE-2023-4911"}) || !dsa.KEV {
		t.Fatalf("DSA-5514-1 = %+v, want CVE-2023-4911 and KEV", dsa)
	}
	if !slices.Equal(dsa.Aliases, []string{"DEBIAN-CVE-2023-4911"}) {
		t.Errorf("DSA-5514-1 aliases %v", dsa.Aliases)
	}
	g := entry(db, "DEBIAN-CVE-2023-4911")
	if g == nil || g.Severity != SeverityHigh || g.Score != 7.8 || !g.KEV {
		t.Errorf("DEBIAN-CVE-2023-4911 = %+v, want high 7.8 KEV", g)
	}
	xz := entry(db, "DEBIAN-CVE-2024-3094")
	if xz == nil || xz.Severity != SeverityCritical || xz.Score != 10 || xz.KEV {
		t.Errorf("DEBIAN-CVE-2024-3094 = %+v, want critical 10, not KEV", xz)
	}
	bash := entry(db, "DEBIAN-CVE-2014-6271")
	if bash == nil || !bash.KEV || bash.Severity != SeverityCritical {
		t.Errorf("DEBIAN-CVE-2014-6271 = %+v, want critical KEV", bash)
	}
	if b := entry(db, "DSA-5504-1"); b == nil || b.Severity != SeverityUnknown || len(b.CVEs) != 2 {
		t.Errorf("DSA-5504-1 = %+v, want 2 CVEs and unknown severity", b)
	}
	foo := entry(db, "ALSA-2024:0001")
	if foo == nil {
		t.Fatal("ALSA-2024:0001 missing")
	}
	for _, a := range foo.Affected {
		for _, rg := range a.Ranges {
			if len(rg) == 2 && rg[1].Version == "deadbeef" {
				t.Error("a GIT range was kept")
			}
		}
	}
	if !slices.Equal(db.Ecosystems, []string{"AlmaLinux:9", "Debian:11", "Debian:12", "Debian:13", "Debian:7"}) {
		t.Errorf("ecosystems %v", db.Ecosystems)
	}

	only, _, err := Build(recs, BuildOptions{Ecosystems: []string{"Debian:12"}, Version: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(only.Ecosystems, []string{"Debian:12"}) || entry(only, "DEBIAN-CVE-2024-3094") != nil {
		t.Errorf("filter Debian:12 kept %v", only.Ecosystems)
	}
}

func TestParseOSVErrors(t *testing.T) {
	for name, doc := range map[string]string{
		"no id":            `{"modified":"2024-01-01T00:00:00Z"}`,
		"no modified":      `{"id":"X-1"}`,
		"two kinds":        `{"id":"X-1","modified":"m","affected":[{"package":{"ecosystem":"Debian:12","name":"a"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0","fixed":"1"}]}]}]}`,
		"no introduced":    `{"id":"X-1","modified":"m","affected":[{"package":{"ecosystem":"Debian:12","name":"a"},"ranges":[{"type":"ECOSYSTEM","events":[{"fixed":"1"}]}]}]}`,
		"bad range type":   `{"id":"X-1","modified":"m","affected":[{"package":{"ecosystem":"Debian:12","name":"a"},"ranges":[{"type":"DATE","events":[{"introduced":"0"}]}]}]}`,
		"trailing garbage": `{"id":"X-1","modified":"m"} {}`,
		"not json":         `DSA-1`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseOSV([]byte(doc), "x.json")
			var pe *ParseError
			if !errors.As(err, &pe) || !strings.Contains(err.Error(), "x.json") {
				t.Fatalf("err = %v, want a ParseError naming x.json", err)
			}
		})
	}
	// A version dpkg refuses skips that package, naming the record.
	r, err := ParseOSV([]byte(`{"id":"X-2","modified":"m","affected":[{"package":{"ecosystem":"Debian:12","name":"a"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"1 2"}]}]}]}`), "y.json")
	if err != nil {
		t.Fatal(err)
	}
	_, sk, err := Build([]*OSV{r}, BuildOptions{Version: 1})
	if err != nil || len(sk) != 1 || sk[0].ID != "X-2" || !strings.Contains(sk[0].Reason, "Debian:12/a") {
		t.Fatalf("skipped %+v, err %v", sk, err)
	}
}

func TestParseKEV(t *testing.T) {
	_, kev := loadTestdata(t)
	if kev.CatalogVersion != "2024.09.03" || len(kev.Set()) != 3 {
		t.Errorf("kev %s with %d", kev.CatalogVersion, len(kev.Set()))
	}
	for name, doc := range map[string]string{
		"count":   `{"count":2,"vulnerabilities":[{"cveID":"CVE-2021-44228"}]}`,
		"cve":     `{"vulnerabilities":[{"cveID":"log4shell"}]}`,
		"no list": `{"title":"x"}`,
	} {
		if _, err := ParseKEV([]byte(doc), "kev.json"); err == nil || !strings.Contains(err.Error(), "kev.json") {
			t.Errorf("%s: err %v", name, err)
		}
	}
}

func TestCVSS3(t *testing.T) {
	for vec, want := range map[string]float64{
		"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H": 9.8,
		"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H": 10,
		"CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H": 7.8,
		"CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:L/A:N": 4.2,
		"CVSS:3.0/AV:N/AC:L/PR:L/UI:N/S:C/C:L/I:L/A:N": 6.4,
		"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N": 0,
	} {
		got, err := CVSS3BaseScore(vec)
		if err != nil || got != want {
			t.Errorf("%s = %v, %v; want %v", vec, got, err, want)
		}
	}
	for _, bad := range []string{"", "CVSS:2.0/AV:N", "CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "CVSS:3.1/AV:N/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H"} {
		if _, err := CVSS3BaseScore(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func findings(fs []Finding, pkg string) map[string]Finding {
	m := map[string]Finding{}
	for _, f := range fs {
		if f.Package == pkg {
			m[f.ID] = f
		}
	}
	return m
}

func TestMatchDebian(t *testing.T) {
	db := buildTestdata(t, 1)
	ix := NewIndex(db, EcosystemsFor("debian", "12"))
	type want struct {
		ids   []string
		fix   FixState
		fixed string
	}
	cases := []struct {
		name string
		pkg  Installed
		cand *Candidate
		want want
	}{
		{"binary of glibc before the fix, update approved", Installed{Name: "libc6", Version: "2.36-9+deb12u2", Source: "glibc"},
			&Candidate{Version: "2.36-9+deb12u3", State: FixApproved}, want{[]string{"CVE-2023-4911"}, FixApproved, "2.36-9+deb12u3"}},
		{"exactly the fixed version", Installed{Name: "libc6", Version: "2.36-9+deb12u3", Source: "glibc"}, nil, want{}},
		{"binNMU: binary version differs, source version counts", Installed{Name: "libc6", Version: "2.36-9+deb12u2+b1", Source: "glibc", SourceVersion: "2.36-9+deb12u2"},
			nil, want{[]string{"CVE-2023-4911"}, FixNotAvailable, "2.36-9+deb12u3"}},
		{"candidate still vulnerable", Installed{Name: "libc-bin", Version: "2.36-9+deb12u1", Source: "glibc"},
			&Candidate{Version: "2.36-9+deb12u2", State: FixAvailable}, want{[]string{"CVE-2023-4911"}, FixNotAvailable, "2.36-9+deb12u3"}},
		{"epoch and tilde: below", Installed{Name: "bind9-libs", Version: "1:9.18.16-1~deb12u1", Source: "bind9"},
			&Candidate{Version: "1:9.18.19-1~deb12u1"}, want{[]string{"CVE-2023-3341", "CVE-2023-4236"}, FixAvailable, "1:9.18.19-1~deb12u1"}},
		{"tilde: exactly fixed", Installed{Name: "bind9", Version: "1:9.18.19-1~deb12u1"}, nil, want{}},
		{"tilde: above the fix", Installed{Name: "bind9", Version: "1:9.18.19-1"}, nil, want{}},
		{"epoch: 0 is below epoch 1 whatever the upstream", Installed{Name: "bind9", Version: "9.99-1"}, nil,
			want{[]string{"CVE-2023-3341", "CVE-2023-4236"}, FixNotAvailable, "1:9.18.19-1~deb12u1"}},
		{"no fix for the release, listed version", Installed{Name: "php-league-commonmark", Version: "2.3.9-1+deb12u1"}, nil,
			want{[]string{"CVE-2024-58382"}, FixNone, ""}},
		{"exactly last_affected", Installed{Name: "libfoo1", Version: "1:1.4-2", Source: "libfoo"}, nil, want{[]string{"CVE-2023-99001"}, FixNone, ""}},
		{"newer than last_affected", Installed{Name: "libfoo1", Version: "1:1.4-3", Source: "libfoo"}, nil, want{}},
		{"before introduced (tilde)", Installed{Name: "libfoo1", Version: "1:1.0~beta1-1", Source: "libfoo"}, nil, want{}},
		{"at introduced (tilde)", Installed{Name: "libfoo1", Version: "1:1.0~rc1-1", Source: "libfoo"}, nil, want{[]string{"CVE-2023-99001"}, FixNone, ""}},
		{"second range, fixed", Installed{Name: "libfoo1", Version: "1:2.0-5", Source: "libfoo"}, &Candidate{Version: "1:2.1~deb12u1", State: FixPending},
			want{[]string{"CVE-2023-99001"}, FixPending, "1:2.1~deb12u1"}},
		{"other release's record does not apply", Installed{Name: "xz-utils", Version: "5.6.0-0.2"}, nil, want{}},
		{"unknown package", Installed{Name: "hello", Version: "2.10-3"}, nil, want{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cands := map[string]Candidate{}
			if c.cand != nil {
				cands[c.pkg.Name] = *c.cand
			}
			got := findings(ix.Match([]Installed{c.pkg}, cands), c.pkg.Name)
			if len(got) != len(c.want.ids) {
				t.Fatalf("findings %+v, want %v", got, c.want.ids)
			}
			for _, id := range c.want.ids {
				f, ok := got[id]
				if !ok {
					t.Fatalf("no finding %s in %+v", id, got)
				}
				if f.Fix != c.want.fix || f.FixedIn != c.want.fixed {
					t.Errorf("%s: fix %s fixed_in %q, want %s %q", id, f.Fix, f.FixedIn, c.want.fix, c.want.fixed)
				}
			}
		})
	}
	// Records naming the same CVE merge: DSA-5514-1 and DEBIAN-CVE-2023-4911.
	f := ix.Match([]Installed{{Name: "libc6", Version: "2.36-9", Source: "glibc"}}, nil)
	if len(f) != 1 || !slices.Equal(f[0].Advisories, []string{"DEBIAN-CVE-2023-4911", "DSA-5514-1"}) || !f[0].KEV || f[0].Severity != SeverityHigh || f[0].Score != 7.8 {
		t.Errorf("merged finding %+v", f)
	}
	s := Summarize(ix.Match([]Installed{{Name: "libc6", Version: "2.36-9", Source: "glibc"}, {Name: "php-league-commonmark", Version: "2.3.9-1"}}, nil))
	if s.Total != 2 || s.KEV != 1 || s.NoFix != 2 || s.BySeverity[SeverityHigh] != 1 || s.BySeverity[SeverityUnknown] != 1 {
		t.Errorf("summary %+v", s)
	}
}

func TestMatchRPMAndLimit(t *testing.T) {
	db := buildTestdata(t, 1)
	ix := NewIndex(db, EcosystemsFor("almalinux", "9.3"))
	for v, exposed := range map[string]bool{"1.4-2.el9": true, "1.0-1.el9": true, "0.9-1.el9": false, "1.4-3.el9": false, "2.1-1.el9": false} {
		if got := len(ix.Match([]Installed{{Name: "libfoo", Version: v}}, nil)) == 1; got != exposed {
			t.Errorf("libfoo %s exposed=%v, want %v", v, got, exposed)
		}
	}
	// limit: introduced 0 with a limit and no fix.
	lim := &DB{Format: Format, Version: 1, Entries: []Entry{{ID: "X-1", Severity: SeverityLow, Affected: []Affect{{Ecosystem: "Debian:12", Package: "a",
		Ranges: [][]Event{{{Introduced, "0"}, {Limit, "2.0"}}}}}}}}
	lx := NewIndex(lim, []string{"Debian:12"})
	if len(lx.Match([]Installed{{Name: "a", Version: "1.5"}}, nil)) != 1 || len(lx.Match([]Installed{{Name: "a", Version: "2.0"}}, nil)) != 0 {
		t.Error("limit not honoured")
	}
}

func TestEncodeDecodeAndDelta(t *testing.T) {
	recs, kev := loadTestdata(t)
	v1, _, err := Build(recs[:5], BuildOptions{KEV: kev, Version: 1})
	if err != nil {
		t.Fatal(err)
	}
	v2, _, err := Build(recs[2:], BuildOptions{KEV: kev, Version: 2})
	if err != nil {
		t.Fatal(err)
	}
	gz1, sha1, err := v1.Encode()
	if err != nil {
		t.Fatal(err)
	}
	back, shaBack, err := Decode(gz1)
	if err != nil || shaBack != sha1 || len(back.Entries) != len(v1.Entries) {
		t.Fatalf("round trip: %v %s %s", err, shaBack, sha1)
	}
	_, sha2, _ := v2.Encode()
	d, err := Diff(v1, v2)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Remove) == 0 || len(d.Upsert) == 0 {
		t.Fatalf("delta %d upserts %d removals", len(d.Upsert), len(d.Remove))
	}
	dz, err := d.Encode()
	if err != nil {
		t.Fatal(err)
	}
	d2, err := DecodeDelta(dz)
	if err != nil {
		t.Fatal(err)
	}
	got, gotSHA, err := d2.Apply(back, shaBack)
	if err != nil || gotSHA != sha2 || got.Version != 2 {
		t.Fatalf("apply: %v %s want %s", err, gotSHA, sha2)
	}
	if _, _, err := d2.Apply(v2, sha2); !errors.Is(err, ErrDeltaBase) {
		t.Errorf("apply to the wrong base: %v", err)
	}
	d2.Upsert[0].Severity = SeverityLow
	if _, _, err := d2.Apply(back, shaBack); err == nil || !strings.Contains(err.Error(), "result hash") {
		t.Errorf("tampered delta applied: %v", err)
	}
	if _, _, err := Decode([]byte("not gzip")); err == nil {
		t.Error("garbage decoded")
	}
}

func fuzzSeeds(f *testing.F) {
	files, _ := filepath.Glob("testdata/osv/*.json")
	files = append(files, "testdata/kev.json")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

func FuzzParseOSV(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, err := ParseOSVFile(data, "fuzz.json")
		if err != nil {
			return
		}
		db, _, err := Build(recs, BuildOptions{Version: 1})
		if err != nil {
			t.Fatal(err)
		}
		gz, sha, err := db.Encode()
		if err != nil {
			t.Fatal(err)
		}
		back, sha2, err := Decode(gz)
		if err != nil || sha2 != sha {
			t.Fatalf("built database does not decode: %v", err)
		}
		ix := NewIndex(back, back.Ecosystems)
		for _, e := range back.Entries {
			for _, a := range e.Affected {
				for _, rg := range a.Ranges {
					for _, ev := range rg {
						ix.Match([]Installed{{Name: a.Package, Version: ev.Version}}, map[string]Candidate{a.Package: {Version: ev.Version}})
					}
				}
			}
		}
	})
}

func FuzzParseKEV(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseKEV(data, "fuzz.json")
		if err == nil && len(c.Set()) > len(c.Vulnerabilities) {
			t.Fatal("set larger than the list")
		}
	})
}

func FuzzDecode(f *testing.F) {
	recs, kev := loadTestdata(f)
	db, _, _ := Build(recs, BuildOptions{KEV: kev, Version: 2})
	gz, _, _ := db.Encode()
	f.Add(gz)
	old, _, _ := Build(recs[:3], BuildOptions{Version: 1})
	d, _ := Diff(old, db)
	dz, _ := d.Encode()
	f.Add(dz)
	f.Fuzz(func(t *testing.T, data []byte) {
		if db, _, err := Decode(data); err == nil {
			NewIndex(db, db.Ecosystems).Match([]Installed{{Name: "glibc", Version: "2.36-9"}}, nil)
		}
		if d, err := DecodeDelta(data); err == nil {
			_, _, _ = d.Apply(old, "")
		}
	})
}
