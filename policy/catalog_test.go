package policy

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseCatalogEntry(t *testing.T) {
	t.Parallel()
	good := `{"package":"zoom","version":"6.1.0.198","applies_to":{"os_id":["debian","ubuntu"],"os_version":["12","22.*"],"arch":["amd64"],"requires_package":["libxcb1"]},"reboot":true,"severity":"high","classification":"security","cves":["CVE-2024-6387"]}`
	e, err := ParseCatalogEntry([]byte(good))
	if err != nil {
		t.Fatalf("ParseCatalogEntry: %v", err)
	}
	if e.Package != "zoom" || !e.Reboot || len(e.Scope.OSID) != 2 || e.CVEs[0] != "CVE-2024-6387" {
		t.Fatalf("entry = %+v", e)
	}
	u := e.Update("6.0", mustTime(t, "2026-06-01T00:00:00Z"))
	if u.Source != SourceCatalog || u.Version != "6.1.0.198" || u.InstalledVersion != "6.0" || !u.Reboot || u.Severity != SeverityHigh {
		t.Fatalf("Update = %+v", u)
	}
	tests := []struct {
		name, src string
		want      []string
	}{
		{"unknown field", `{"package":"a","version":"1","color":"red"}`, []string{`unknown field "color"`}},
		{"every problem at once", `{"package":"bad name","version":"","severity":"severe","classification":"urgent","cves":["CVE-24-1"],"applies_to":{"os_id":["[x"],"arch":["AMD 64"],"requires_package":["a b"]}}`,
			[]string{
				`package: "bad name" is not a package name`,
				`version: is required`,
				`severity: 'severe' is not a severity`,
				`classification: 'urgent' is not a classification`,
				`cves[0]: "CVE-24-1" is not a CVE ID`,
				`applies_to.os_id[0]: '[x' is not a valid pattern`,
				`applies_to.arch[0]: "AMD 64" is not an architecture`,
				`applies_to.requires_package[0]: "a b" is not a package name`,
			}},
		{"not json", `package: a`, []string{"JSON syntax"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseCatalogEntry([]byte(tc.src))
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error = %v, want *ValidationError", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error:\n%v\nlacks %q", err, w)
				}
			}
			if len(ve.Problems) != len(tc.want) {
				t.Errorf("%d problems, want %d:\n%v", len(ve.Problems), len(tc.want), err)
			}
		})
	}
}

func TestCatalogAppliesTo(t *testing.T) {
	t.Parallel()
	e := CatalogEntry{Package: "zoom", Version: "6.1", Scope: AppliesTo{
		OSID: []string{"debian", "ubuntu"}, OSVersion: []string{"12", "22.*"}, Arch: []string{"amd64"}, RequiresPackage: []string{"libxcb1"},
	}}
	node := NodeFacts{OSID: "debian", OSVersion: "12", Arch: "amd64", Installed: map[string]string{"libxcb1": "1.15-1"}}
	tests := []struct {
		name   string
		change func(*NodeFacts)
		ok     bool
		why    string
	}{
		{"matches", func(*NodeFacts) {}, true, "applies"},
		{"version glob", func(f *NodeFacts) { f.OSID, f.OSVersion = "ubuntu", "22.04" }, true, "applies"},
		{"other os", func(f *NodeFacts) { f.OSID = "fedora" }, false, `OS "fedora" is not one of debian, ubuntu`},
		{"other version", func(f *NodeFacts) { f.OSVersion = "11" }, false, `OS version "11" is not one of 12, 22.*`},
		{"other arch", func(f *NodeFacts) { f.Arch = "arm64" }, false, `architecture "arm64" is not one of amd64`},
		{"rpm arch name", func(f *NodeFacts) { f.Arch = "x86_64" }, true, "applies"},
		{"other rpm arch", func(f *NodeFacts) { f.Arch = "aarch64" }, false, `architecture "aarch64" is not one of amd64`},
		{"missing package", func(f *NodeFacts) { f.Installed = nil }, false, "requires package libxcb1, which is not installed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := node
			tc.change(&f)
			ok, why := e.AppliesTo(f)
			if ok != tc.ok || why != tc.why {
				t.Errorf("AppliesTo = %v %q, want %v %q", ok, why, tc.ok, tc.why)
			}
		})
	}
	if ok, _ := (CatalogEntry{Package: "a", Version: "1"}).AppliesTo(NodeFacts{}); !ok {
		t.Error("an entry without applies_to applies everywhere")
	}
}

func FuzzParseCatalogEntry(f *testing.F) {
	f.Add([]byte(`{"package":"zoom","version":"6.1","applies_to":{"os_id":["debian"]},"reboot":true,"severity":"high","cves":["CVE-2024-6387"]}`))
	f.Add([]byte(`{"package":"a","version":"1"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := ParseCatalogEntry(data)
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || len(ve.Problems) == 0 {
				t.Fatalf("error %v is not a *ValidationError with problems", err)
			}
			return
		}
		if e.Package == "" || e.Version == "" {
			t.Fatalf("accepted an entry without package or version: %+v", e)
		}
		e.AppliesTo(NodeFacts{OSID: "debian", OSVersion: "12", Arch: "amd64"})
		_ = e.Update("", time.Time{})
	})
}

func TestSameArch(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		a, b string
		same bool
	}{{"x86_64", "amd64", true}, {"amd64", "x86_64", true}, {"aarch64", "arm64", true}, {"x86_64", "x86_64", true},
		{"noarch", "all", true}, {"ppc64le", "ppc64el", true}, {"x86_64", "arm64", false}, {"i686", "amd64", false}} {
		if got := SameArch(c.a, c.b); got != c.same {
			t.Errorf("SameArch(%s, %s) = %v", c.a, c.b, got)
		}
	}
}
