package dnf

import (
	"bytes"
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

func FuzzParseRepomd(f *testing.F) {
	addFixtures(f, "createrepo_c-repomd.xml")
	f.Add([]byte(`<repomd><data type="primary"><checksum type="sha256">ab</checksum><location href="p.xml.gz"/><size>1</size></data></repomd>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := ParseRepomd(data)
		if err != nil {
			return
		}
		for _, e := range entries {
			if e.Type == "" || e.Location == "" || !isHex(e.Checksum) {
				t.Fatalf("incomplete entry %+v", e)
			}
		}
	})
}

func FuzzParsePrimary(f *testing.F) {
	addFixtures(f, "createrepo_c-primary.xml.gz")
	f.Add([]byte(`<metadata><package type="rpm"><name>a</name><arch>noarch</arch><version epoch="1" ver="2" rel="3"/><checksum type="sha256">abcd</checksum><size package="5"/><location href="a.rpm"/></package></metadata>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		pkgs, err := ParsePrimary(bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, p := range pkgs {
			if !validName(p.Name) || !validName(p.Arch) || p.EVR.Version == "" || p.Location == "" || !isHex(p.Checksum) || p.Size < 0 {
				t.Fatalf("incomplete package %+v", p)
			}
		}
	})
}

func FuzzParseTransaction(f *testing.F) {
	addFixtures(f, "dnf4-assumeno-upgrade.txt", "dnf4-assumeno-remove.txt", "dnf4-assumeno-nothing.txt")
	f.Add([]byte(" Package Arch Version Repository Size\nUpgrading:\n averylongname\n   x86_64 1:1-1 r 1.5 k\n     replacing  b.x86_64 1-1\nTransaction Summary\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pkgs, _, err := ParseTransaction(data)
		if err != nil {
			return
		}
		for _, p := range pkgs {
			if !validName(p.Name) || !validName(p.Arch) || p.EVR.Version == "" || p.Action == "" {
				t.Fatalf("incomplete row %+v", p)
			}
		}
	})
}

func FuzzParseRPMQuery(f *testing.F) {
	f.Add([]byte("acme\t\t1.0\t1\tx86_64\t1700000000\nbind\t32\t9.16\t1.el9\tx86_64\t(none)\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pkgs, err := ParseRPMQuery(data)
		if err != nil {
			return
		}
		for _, p := range pkgs {
			if !validName(p.Name) || p.EVR.Version == "" {
				t.Fatalf("incomplete package %+v", p)
			}
		}
	})
}
