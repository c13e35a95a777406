package dpkgstatus

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const dpkgQueryFormat = "${Package} ${Architecture} ${Version}\n"

func needDpkgQuery(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("dpkg-query"); err != nil {
		t.Fatalf("dpkg-query not found: install the Debian package \"dpkg\"")
	}
}

// listing formats packages like dpkg-query -W -f '${Package} ${Architecture} ${Version}\n'.
func listing(pkgs []Package) string {
	var b strings.Builder
	for i := range pkgs {
		if pkgs[i].Listed() {
			fmt.Fprintf(&b, "%s %s %s\n", pkgs[i].Name, pkgs[i].Architecture, pkgs[i].Version)
		}
	}
	return b.String()
}

func dpkgQuery(t testing.TB, format string, args ...string) string {
	t.Helper()
	needDpkgQuery(t)
	cmd := exec.Command("dpkg-query", append(args, "-W", "-f", format)...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("dpkg-query %v: %v", args, err)
	}
	return string(out)
}

// TestReadDBMatchesDpkgQuery is issue 3's acceptance test: on the machine
// running the tests, the package list equals dpkg-query's exactly.
func TestReadDBMatchesDpkgQuery(t *testing.T) {
	pkgs, err := ReadDB("/var/lib/dpkg/status")
	if err != nil {
		t.Fatal(err)
	}
	want := dpkgQuery(t, dpkgQueryFormat)
	got := listing(pkgs)
	if got != want {
		t.Fatalf("package list differs from dpkg-query -W:\n%s", lineDiff(want, got))
	}
	if n := strings.Count(got, "\n"); n < 50 {
		t.Fatalf("only %d packages listed; expected a real system", n)
	}
}

// lineDiff names the lines only one side has.
func lineDiff(want, got string) string {
	w := map[string]bool{}
	for _, l := range strings.Split(want, "\n") {
		w[l] = true
	}
	g := map[string]bool{}
	var b strings.Builder
	for _, l := range strings.Split(got, "\n") {
		g[l] = true
		if !w[l] {
			fmt.Fprintf(&b, "+ %s\n", l)
		}
	}
	for _, l := range strings.Split(want, "\n") {
		if !g[l] {
			fmt.Fprintf(&b, "- %s\n", l)
		}
	}
	if b.Len() == 0 {
		return "(same lines, different order)"
	}
	return b.String()
}

// fakeAdmindir lays out a dpkg admin directory dpkg-query --admindir can
// read.
func fakeAdmindir(t testing.TB, status []byte, journal map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{"updates", "info"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string][]byte{"status": status, "available": nil}
	for name, body := range journal {
		files[filepath.Join("updates", name)] = []byte(body)
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestOddFixtureMatchesDpkgQuery(t *testing.T) {
	data, err := os.ReadFile("testdata/status-odd")
	if err != nil {
		t.Fatal(err)
	}
	journal := map[string]string{
		"0001": "Package: zlib1g\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1:1.3-1\nMaintainer: x\nDescription: y\n\n" +
			"Package: newpkg\nStatus: install ok unpacked\nArchitecture: all\nVersion: 1\nMaintainer: x\nDescription: y\n",
		"0002": "Package: newpkg\nStatus: install ok installed\nArchitecture: all\nVersion: 2\nMaintainer: x\nDescription: y\n",
	}
	dir := fakeAdmindir(t, data, journal)
	pkgs, err := ReadDB(filepath.Join(dir, "status"))
	if err != nil {
		t.Fatal(err)
	}
	format := "${Package} ${Architecture} ${Version} ${source:Package} ${source:Version} ${db:Status-Want} ${db:Status-Eflag} ${db:Status-Status}\n"
	want := dpkgQuery(t, format, "--admindir="+dir)
	var b strings.Builder
	for _, p := range pkgs {
		if p.Listed() {
			fmt.Fprintf(&b, "%s %s %s %s %s %s %s %s\n", p.Name, p.Architecture, p.Version, p.Source, p.SourceVersion, p.Want, p.Flag, p.State)
		}
	}
	if b.String() != want {
		t.Fatalf("fixture listing differs from dpkg-query:\n%s", lineDiff(want, b.String()))
	}
	for _, must := range []string{"zlib1g amd64 1:1.3-1 ", "newpkg all 2 ", "broken-pkg all 0.1-1 broken-pkg 0.1-1 install reinstreq half-installed", "removed-but-configured amd64 3.2.1-4 removed-but-configured 3.2.1-4 deinstall ok config-files"} {
		if !strings.Contains(b.String(), must) {
			t.Errorf("listing lacks %q", must)
		}
	}
}

func TestParseFields(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("testdata/status-odd")
	if err != nil {
		t.Fatal(err)
	}
	pkgs, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) != 11 {
		t.Fatalf("got %d packages, want 11 (a description line looking like a field must not start a package)", len(pkgs))
	}
	want := Package{Name: "libc6", Version: "2.36-9+deb12u10", Architecture: "amd64", Source: "glibc", SourceVersion: "2.36-9+deb12u10",
		Want: WantInstall, Flag: "ok", State: StateInstalled, MultiArch: "same", InstalledSize: 12985}
	if pkgs[0] != want {
		t.Fatalf("first package = %+v\nwant %+v", pkgs[0], want)
	}
	stub := pkgs[5]
	if stub.Name != "purged-stub" || stub.Listed() || stub.Installed() || stub.Version != "" {
		t.Fatalf("purged stub = %+v", stub)
	}
	if !pkgs[6].Installed() || pkgs[8].Installed() {
		t.Fatalf("Installed(): triggers-awaited must count, unpacked must not")
	}
	// Interned: both libc6 records share one "amd64"/"i386"-free "same" string.
	if pkgs[0].MultiArch != pkgs[1].MultiArch {
		t.Fatal("multi-arch differs")
	}
}

func TestParseMissingStatusIsNotInstalled(t *testing.T) {
	t.Parallel()
	pkgs, err := Parse([]byte("Package: x\nVersion: 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) != 1 || pkgs[0].State != StateNotInstalled || pkgs[0].Want != WantUnknown || pkgs[0].Source != "x" {
		t.Fatalf("got %+v", pkgs)
	}
}

func TestParseCRLFAndBlankRuns(t *testing.T) {
	t.Parallel()
	in := "\n\n \nPackage: a\r\nStatus: install ok installed\r\nVersion: 1.0\r\n\r\n\n\nPackage: b\nStatus: install ok installed\nVersion: 2"
	pkgs, err := Parse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) != 2 || pkgs[0].Version != "1.0" || pkgs[1].Version != "2" {
		t.Fatalf("got %+v", pkgs)
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		line     int
		msg      string
	}{
		{"no package field", "Version: 1\nStatus: install ok installed\n", 1, "no Package field"},
		{"empty package", "Package:\n", 1, "empty Package field"},
		{"not a field", "Package: a\nthis is junk\n", 2, "is not a field"},
		{"leading colon", "Package: a\n: x\n", 2, "is not a field"},
		{"short status", "Package: a\nStatus: install ok\n", 2, "want three words"},
		{"bad want", "Package: a\nStatus: maybe ok installed\n", 2, "unknown want"},
		{"bad flag", "Package: a\nStatus: install hmm installed\n", 2, "unknown flag"},
		{"bad state", "Package: a\nStatus: install ok happy\n", 2, "unknown state"},
		{"bad size", "Package: a\nInstalled-Size: 12k\n", 2, "not a size"},
		{"continuation first", " orphan\nPackage: a\n", 1, "continuation line outside a stanza"},
		{"second stanza", "Package: a\n\nVersion: 1\n", 3, "no Package field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.in))
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error = %v, want *ParseError", err)
			}
			if pe.Line != tt.line || !strings.Contains(pe.Msg, tt.msg) {
				t.Fatalf("error = %v, want line %d containing %q", err, tt.line, tt.msg)
			}
		})
	}
}

func TestReadDBErrors(t *testing.T) {
	t.Parallel()
	if _, err := ReadDB(filepath.Join(t.TempDir(), "status")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	dir := fakeAdmindir(t, []byte("Package: a\nStatus: install ok installed\n"), map[string]string{"0001": "junk\n"})
	_, err := ReadDB(filepath.Join(dir, "status"))
	var pe *ParseError
	if !errors.As(err, &pe) || !strings.HasSuffix(pe.File, "updates/0001") {
		t.Fatalf("bad journal: %v", err)
	}
}

// format writes packages back as stanzas Parse reads.
func format(pkgs []Package) []byte {
	var b bytes.Buffer
	for _, p := range pkgs {
		fmt.Fprintf(&b, "Package: %s\nStatus: %s %s %s\n", p.Name, p.Want, p.Flag, p.State)
		if p.Version != "" {
			fmt.Fprintf(&b, "Version: %s\n", p.Version)
		}
		if p.Architecture != "" {
			fmt.Fprintf(&b, "Architecture: %s\n", p.Architecture)
		}
		if p.MultiArch != "" {
			fmt.Fprintf(&b, "Multi-Arch: %s\n", p.MultiArch)
		}
		if p.InstalledSize != 0 {
			fmt.Fprintf(&b, "Installed-Size: %d\n", p.InstalledSize)
		}
		fmt.Fprintf(&b, "Source: %s (%s)\nDescription: x\n more\n\n", p.Source, p.SourceVersion)
	}
	return b.Bytes()
}

func FuzzParse(f *testing.F) {
	if data, err := os.ReadFile("testdata/status-odd"); err == nil {
		f.Add(data)
	}
	f.Add([]byte("Package: a\nStatus: install ok installed\nVersion: 1\nSource: b (2)\n"))
	f.Add([]byte("Package: a\n\n\nPackage: b\n continuation\n"))
	f.Add([]byte("Package: a\nSource: (\nVersion: )\n"))
	f.Add([]byte("Package: a\r\nInstalled-Size: 999999999999999999\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pkgs, err := Parse(data)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Line < 1 {
				t.Fatalf("error %v is not a *ParseError with a line", err)
			}
			return
		}
		for _, p := range pkgs {
			if p.Name == "" || p.State == "" || p.Want == "" || p.Flag == "" {
				t.Fatalf("incomplete package %+v", p)
			}
		}
		// Whatever was kept survives a round trip when the values are
		// plain (no spaces, parentheses or newlines that the writer above
		// would mangle).
		for _, p := range pkgs {
			for _, s := range []string{p.Name, p.Version, p.Architecture, p.MultiArch, p.Source, p.SourceVersion} {
				if strings.ContainsAny(s, " \t\r\n()") {
					return
				}
			}
		}
		again, err := Parse(format(pkgs))
		if err != nil {
			t.Fatalf("reparse: %v", err)
		}
		if len(again) != len(pkgs) {
			t.Fatalf("reparse gave %d packages, want %d", len(again), len(pkgs))
		}
		for i := range pkgs {
			if again[i] != pkgs[i] {
				t.Fatalf("round trip changed %+v into %+v", pkgs[i], again[i])
			}
		}
	})
}
