package dnf

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func addFixtures(f *testing.F, names ...string) {
	f.Helper()
	for _, n := range names {
		data, err := os.ReadFile(filepath.Join("testdata", n))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
}

func FuzzParseCheckUpdate(f *testing.F) {
	addFixtures(f, "rhel9-check-update.txt")
	f.Add([]byte("averylongname.noarch\n        1.0-1.el9   baseos\nObsoleting Packages\nb.x86_64 1-1 r\n    c.x86_64 0-1 @System\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ups, err := ParseCheckUpdate(data)
		if err != nil {
			return
		}
		for _, u := range ups {
			if u.Name == "" || u.Arch == "" || u.Repo == "" || u.EVR.Version == "" {
				t.Fatalf("incomplete update %+v", u)
			}
			if strings.ContainsAny(u.Name+u.Arch+u.Repo, " \t\n") {
				t.Fatalf("whitespace in %+v", u)
			}
		}
	})
}

func FuzzParseUpdateinfoList(f *testing.F) {
	addFixtures(f, "rhel9-updateinfo-list-security.txt", "rhel9-updateinfo-list-all-verbose.txt", "fedora40-dnf5-advisory-list-security.txt")
	f.Fuzz(func(t *testing.T, data []byte) {
		advs, err := ParseUpdateinfoList(data)
		if err != nil {
			return
		}
		for _, a := range advs {
			if a.ID == "" || !advTypes[a.Type] || a.Package.Name == "" || a.Package.EVR.Release == "" {
				t.Fatalf("bad entry %+v", a)
			}
			if a.Severity != "" && severityRank[a.Severity] == 0 && a.Type == "security" && !strings.Contains(string(data), a.Severity) {
				t.Fatalf("invented severity %q", a.Severity)
			}
			if back, err := ParseNEVRA(a.Package.String()); err != nil || back != a.Package {
				t.Fatalf("NEVRA %v does not round-trip: %+v %v", a.Package, back, err)
			}
		}
	})
}

func FuzzParseUpdateinfoInfo(f *testing.F) {
	addFixtures(f, "rhel9-updateinfo-info.txt", "rhel8-updateinfo-info.txt")
	f.Fuzz(func(t *testing.T, data []byte) {
		advs, err := ParseUpdateinfoInfo(data)
		if err != nil {
			return
		}
		for _, a := range advs {
			if a.ID == "" {
				t.Fatalf("advisory without ID %+v", a)
			}
		}
	})
}

func FuzzParseNEVRA(f *testing.F) {
	f.Add("bind-libs-32:9.16.23-18.el9_4.6.x86_64")
	f.Add("a-b-c-1-2.noarch")
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseNEVRA(s)
		if err != nil {
			return
		}
		if back, err := ParseNEVRA(n.String()); err != nil || back != n {
			t.Fatalf("%q -> %+v -> %q does not round-trip (%v)", s, n, n.String(), err)
		}
	})
}
