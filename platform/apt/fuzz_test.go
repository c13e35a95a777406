package apt

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// addFixtures seeds f with the recorded outputs in testdata.
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

func FuzzParsePolicy(f *testing.F) {
	addFixtures(f, "bookworm/policy-files.txt", "bookworm/policy-packages.txt")
	f.Add([]byte("x:\n  Installed: (none)\n  Candidate: 1\n  Version table:\n *** 1 100\n        100 /var/lib/dpkg/status\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pol, err := parsePolicy(data)
		if err != nil {
			return
		}
		for idx, s := range pol.Files {
			if idx == "" || s.Index != idx {
				t.Fatalf("file index %q has Source.Index %q", idx, s.Index)
			}
		}
		for _, p := range pol.Packages {
			if p.Name == "" {
				t.Fatal("package without a name")
			}
			for _, v := range p.Versions {
				if v.Version == "" {
					t.Fatalf("%s: empty version", p.Name)
				}
				for _, ix := range v.Indexes {
					if ix.Index == "" {
						t.Fatalf("%s %s: empty index", p.Name, v.Version)
					}
				}
			}
		}
	})
}

func FuzzParsePrintURIs(f *testing.F) {
	addFixtures(f, "bookworm/print-uris.txt")
	f.Add([]byte("'u' a_1%3a2_all.deb 0 SHA512:ab\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		uris, err := parsePrintURIs(data)
		if err != nil {
			return
		}
		for _, u := range uris {
			if u.Size < 0 || u.Name == "" || u.Version == "" || u.Arch == "" {
				t.Fatalf("bad entry %+v", u)
			}
			if h, ok := hashSHA256(u.Hash); ok && len(h) != 64 {
				t.Fatalf("sha256 %q", h)
			}
		}
	})
}

// FuzzArchiveFilename checks that apt's file naming round-trips for any
// name, version and architecture.
func FuzzArchiveFilename(f *testing.F) {
	f.Add("libcap2", "1:2.66-4+deb12u3+b1", "amd64")
	f.Add("a", "1_2%3a", "x.y")
	f.Add("n\x00", "\xff", "é")
	f.Fuzz(func(t *testing.T, name, version, arch string) {
		if name == "" || version == "" || arch == "" {
			return
		}
		fn := ArchiveFilename(name, version, arch)
		n, v, a, err := ParseArchiveFilename(fn)
		if err != nil || n != name || v != version || a != arch {
			t.Fatalf("%q -> %q %q %q %v", fn, n, v, a, err)
		}
		valid := PkgVersion{Name: name, Version: version, Arch: arch}.Validate() == nil
		if valid && strings.ContainsAny(fn, " /:\x00") {
			t.Fatalf("valid %q %q %q gives file name %q with a separator", name, version, arch, fn)
		}
	})
}

// FuzzParseDpkgOutput feeds the parsers of apt-get's and dpkg's messages.
func FuzzParseDpkgOutput(f *testing.F) {
	f.Add([]byte(" acme-tool            patchring test package acme-tool\n"))
	f.Add([]byte("dpkg: error processing package acme-tool (--configure):\nErrors were encountered while processing:\n acme-tool\n"))
	f.Add([]byte("E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (dpkg)\n"))
	f.Add([]byte("The following packages have unmet dependencies:\n footool : Depends: libmissing but it is not installable\n           Depends: libb (>= 2) but 1 is to be installed\nE: Unable to correct problems, you have held broken packages.\n"))
	f.Add([]byte("dpkg: error: dpkg frontend lock was locked by another process with pid 99999999999999999999\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, p := range parseAudit(data) {
			if !validPackageName(p) || strings.Contains(p, ":") {
				t.Fatalf("audit returned %q", p)
			}
		}
		for _, p := range parseFailedPackages(string(data)) {
			if p == "" {
				t.Fatal("empty failed package")
			}
		}
		for _, l := range parseUnmet(string(data)) {
			if l == "" || strings.Contains(l, "\n") {
				t.Fatalf("unmet dependency line %q", l)
			}
		}
		if le, ok := parseLockError(string(data), "/adm"); ok && (le.Path == "" || le.PID < 0) {
			t.Fatalf("lock error %+v", le)
		}
	})
}

// FuzzParseShellVars checks that values quoted the way apt-config shell
// quotes them come back unchanged, and that arbitrary input does not panic.
func FuzzParseShellVars(f *testing.F) {
	f.Add("/tmp/a b/", []byte("ROOT='/'\n"))
	f.Add("it's", []byte("Q='it'\\''s'\nD=\"x\"\n"))
	f.Fuzz(func(t *testing.T, value string, raw []byte) {
		_, _ = parseShellVars(raw)
		if strings.Contains(value, "\n") {
			return
		}
		quoted := "'" + strings.ReplaceAll(value, "'", `'\''`) + "'"
		vars, err := parseShellVars([]byte("V=" + quoted + "\n"))
		if err != nil || vars["V"] != value {
			t.Fatalf("%q -> %q, %v", quoted, vars["V"], err)
		}
	})
}

func FuzzParseStanzas(f *testing.F) {
	addFixtures(f, "bookworm/apt-cache-show.txt")
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := parseStanzas(data)
		if err != nil {
			return
		}
		for _, s := range st {
			if len(s) == 0 {
				t.Fatal("empty stanza")
			}
			for k := range s {
				if k == "" || strings.ContainsAny(k, " \t\n") {
					t.Fatalf("bad field name %q", k)
				}
			}
		}
	})
}
