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
		if len(back.Entries) != len(db.Entries) {
			t.Fatalf("%d entries decoded, %d built", len(back.Entries), len(db.Entries))
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
			if _, _, err := db.Encode(); err != nil {
				t.Fatal(err)
			}
		}
		if d, err := DecodeDelta(data); err == nil {
			_, _, _ = d.Apply(old, "")
		}
	})
}
