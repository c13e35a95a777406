package vulns

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/patchring/patchring/policy/advisory"
)

// testdata is policy/advisory's: real OSV and KEV records.
var testdata = filepath.Join("..", "..", "policy", "advisory", "testdata")

func buildTestdata(t testing.TB, version int64) *advisory.DB {
	t.Helper()
	recs, err := advisory.ReadOSVPaths(filepath.Join(testdata, "osv"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(testdata, "kev.json"))
	if err != nil {
		t.Fatal(err)
	}
	kev, err := advisory.ParseKEV(raw, "kev.json")
	if err != nil {
		t.Fatal(err)
	}
	db, _, err := advisory.Build(recs, advisory.BuildOptions{KEV: kev, Version: version, Now: time.Date(2024, 9, 3, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	return db
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
	if len(f) != 1 || !slices.Equal(f[0].Advisories, []string{"DEBIAN-CVE-2023-4911", "DSA-5514-1"}) || !f[0].KEV || f[0].Severity != advisory.SeverityHigh || f[0].Score != 7.8 {
		t.Errorf("merged finding %+v", f)
	}
	s := Summarize(ix.Match([]Installed{{Name: "libc6", Version: "2.36-9", Source: "glibc"}, {Name: "php-league-commonmark", Version: "2.3.9-1"}}, nil))
	if s.Total != 2 || s.KEV != 1 || s.NoFix != 2 || s.BySeverity[advisory.SeverityHigh] != 1 || s.BySeverity[advisory.SeverityUnknown] != 1 {
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
	lim := &advisory.DB{Format: advisory.Format, Version: 1, Entries: []advisory.Entry{{ID: "X-1", Severity: advisory.SeverityLow, Affected: []advisory.Affect{{Ecosystem: "Debian:12", Package: "a",
		Ranges: [][]advisory.Event{{{Kind: advisory.Introduced, Version: "0"}, {Kind: advisory.Limit, Version: "2.0"}}}}}}}}
	lx := NewIndex(lim, []string{"Debian:12"})
	if len(lx.Match([]Installed{{Name: "a", Version: "1.5"}}, nil)) != 1 || len(lx.Match([]Installed{{Name: "a", Version: "2.0"}}, nil)) != 0 {
		t.Error("limit not honoured")
	}
}

// A version the package manager refuses leaves that package out of the
// index, named, instead of being judged wrongly.
func TestIndexSkipsUnparsableVersions(t *testing.T) {
	r, err := advisory.ParseOSV([]byte(`{"id":"X-2","modified":"m","affected":[{"package":{"ecosystem":"Debian:12","name":"a"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"1 2"}]}]}]}`), "y.json")
	if err != nil {
		t.Fatal(err)
	}
	db, _, err := advisory.Build([]*advisory.OSV{r}, advisory.BuildOptions{Version: 1})
	if err != nil {
		t.Fatal(err)
	}
	ix := NewIndex(db, []string{"Debian:12"})
	if len(ix.Skipped) != 1 || ix.Skipped[0].ID != "X-2" || len(ix.Match([]Installed{{Name: "a", Version: "1.0"}}, nil)) != 0 {
		t.Fatalf("skipped %+v", ix.Skipped)
	}
}

// FuzzMatch builds databases from fuzzed OSV records and matches every
// version they name: the matcher must not panic on any database the
// builder accepts.
func FuzzMatch(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(testdata, "osv", "*.json"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, err := advisory.ParseOSVFile(data, "fuzz.json")
		if err != nil {
			return
		}
		db, _, err := advisory.Build(recs, advisory.BuildOptions{Version: 1})
		if err != nil {
			t.Fatal(err)
		}
		for _, eco := range db.Ecosystems {
			ix := NewIndex(db, []string{eco})
			for _, e := range db.Entries {
				for _, a := range e.Affected {
					for _, rg := range a.Ranges {
						for _, ev := range rg {
							ix.Match([]Installed{{Name: a.Package, Version: ev.Version}}, map[string]Candidate{a.Package: {Version: ev.Version}})
						}
					}
				}
			}
		}
	})
}
