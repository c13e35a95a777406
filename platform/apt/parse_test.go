package apt

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/patchring/patchring/platform/vercmp"
)

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// recordedCandidates runs the Upgradable pipeline's pure part on the apt
// output recorded from a Debian 12 host (testdata/record.sh).
func recordedCandidates(t *testing.T) []Candidate {
	t.Helper()
	files, err := parsePolicy(readFixture(t, "bookworm/policy-files.txt"))
	if err != nil {
		t.Fatal(err)
	}
	pkgs, err := parsePolicy(readFixture(t, "bookworm/policy-packages.txt"))
	if err != nil {
		t.Fatal(err)
	}
	files.Packages = pkgs.Packages
	ups, err := upgradable(files, vercmp.Deb)
	if err != nil {
		t.Fatal(err)
	}
	uris, err := parsePrintURIs(readFixture(t, "bookworm/print-uris.txt"))
	if err != nil {
		t.Fatal(err)
	}
	cands, err := assembleCandidates(files, ups, uris, "amd64")
	if err != nil {
		t.Fatal(err)
	}
	return cands
}

// TestRecordedUpgradableMatchesAptList checks the candidates against
// `apt list --upgradable` recorded at the same time: same packages, same
// versions, same installed versions.
func TestRecordedUpgradableMatchesAptList(t *testing.T) {
	cands := recordedCandidates(t)
	// appstream/oldstable 0.16.1-2+b1 amd64 [upgradable from: 0.16.1-2]
	re := regexp.MustCompile(`^([^/]+)/\S+ (\S+) (\S+) \[upgradable from: ([^\]]+)\]$`)
	var want []string
	for _, line := range strings.Split(string(readFixture(t, "bookworm/apt-list-upgradable.txt")), "\n") {
		if m := re.FindStringSubmatch(line); m != nil {
			want = append(want, m[1]+" "+m[4]+" -> "+m[2]+" "+m[3])
		}
	}
	var got []string
	for _, c := range cands {
		got = append(got, c.Package+" "+c.Installed+" -> "+c.Version+" "+c.Arch)
	}
	slices.Sort(want)
	slices.Sort(got)
	if len(want) < 100 {
		t.Fatalf("fixture has only %d upgradable packages", len(want))
	}
	if !slices.Equal(got, want) {
		t.Errorf("candidates differ from apt list --upgradable:\ngot  %v\nwant %v", got, want)
	}
}

// TestRecordedSecurityClassification checks the classification against an
// independent oracle: the release list apt-get -s dist-upgrade prints for
// each package ("Debian-Security:12/oldstable-security").
func TestRecordedSecurityClassification(t *testing.T) {
	cands := recordedCandidates(t)
	// Inst apt [2.6.1] (2.6.2 Debian-Security:12/oldstable-security [amd64])
	re := regexp.MustCompile(`^Inst (\S+) \[[^\]]*\] \((\S+) ([^\[]*)\[`)
	wantSec := map[string]bool{}
	seen := 0
	for _, line := range strings.Split(string(readFixture(t, "bookworm/simulate-dist-upgrade.txt")), "\n") {
		m := re.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		seen++
		wantSec[m[1]+" "+m[2]] = strings.Contains(m[3], "-security")
	}
	if seen != len(cands) {
		t.Fatalf("simulation upgrades %d packages, candidates %d", seen, len(cands))
	}
	nsec := 0
	for _, c := range cands {
		want, ok := wantSec[c.Package+" "+c.Version]
		if !ok {
			t.Errorf("%s %s not in the simulation", c.Package, c.Version)
			continue
		}
		if c.Security != want {
			t.Errorf("%s %s: Security = %v, apt's simulation says %v (sources %+v)", c.Package, c.Version, c.Security, want, c.Sources)
		}
		if c.Security {
			nsec++
		}
	}
	if nsec == 0 || nsec == len(cands) {
		t.Errorf("%d of %d candidates are security updates: the fixture should have both kinds", nsec, len(cands))
	}
}

func TestRecordedCandidateDetails(t *testing.T) {
	cands := recordedCandidates(t)
	byName := map[string]Candidate{}
	for _, c := range cands {
		byName[c.Package] = c
	}
	cases := []struct {
		name string
		want Candidate
		nsrc int
	}{
		{"security only", Candidate{
			Package: "apt", Arch: "amd64", Installed: "2.6.1", Version: "2.6.2", Security: true,
			Origin: "Debian", Label: "Debian-Security", Archive: "oldstable-security", Codename: "bookworm-security",
			Component: "main", Site: "deb.debian.org",
			URI:      "http://deb.debian.org/debian-security/pool/updates/main/a/apt/apt_2.6.2_amd64.deb",
			Filename: "apt_2.6.2_amd64.deb", Size: 1373116,
			SHA256: "796fc7fe18866f5b1fb27a115d7339e549d71b7ddbc15b8d6fc4226c243e96d1",
			Hash:   "SHA256:796fc7fe18866f5b1fb27a115d7339e549d71b7ddbc15b8d6fc4226c243e96d1",
		}, 1},
		{"point release with epoch", Candidate{
			Package: "libcap2", Arch: "amd64", Installed: "1:2.66-4+deb12u2+b2", Version: "1:2.66-4+deb12u3+b1",
			Origin: "Debian", Label: "Debian", Archive: "oldstable", Codename: "bookworm", Component: "main", Site: "deb.debian.org",
			URI:      "http://deb.debian.org/debian/pool/main/libc/libcap2/libcap2_2.66-4%2bdeb12u3%2bb1_amd64.deb",
			Filename: "libcap2_1%3a2.66-4+deb12u3+b1_amd64.deb", Size: 27708,
			SHA256: "8d684c673e7483802a5c447834b0df6fce006eb3a7109e1be412f5ad425bb24f",
			Hash:   "SHA256:8d684c673e7483802a5c447834b0df6fce006eb3a7109e1be412f5ad425bb24f",
		}, 1},
		{"in both archives, arch all", Candidate{
			Package: "krb5-locales", Arch: "all", Installed: "1.20.1-2+deb12u3", Version: "1.20.1-2+deb12u5", Security: true,
			Origin: "Debian", Label: "Debian-Security", Archive: "oldstable-security", Codename: "bookworm-security",
			Component: "main", Site: "deb.debian.org",
			URI:      "http://deb.debian.org/debian/pool/main/k/krb5/krb5-locales_1.20.1-2%2bdeb12u5_all.deb",
			Filename: "krb5-locales_1.20.1-2+deb12u5_all.deb", Size: 63520,
			SHA256: "7a904247cda4006e25a6a1bdcf10bc3f0fa10f5c7df69dd199c1e2fdf99327fa",
			Hash:   "SHA256:7a904247cda4006e25a6a1bdcf10bc3f0fa10f5c7df69dd199c1e2fdf99327fa",
		}, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := byName[tc.want.Package]
			if !ok {
				t.Fatalf("%s not upgradable", tc.want.Package)
			}
			if len(got.Sources) != tc.nsrc {
				t.Errorf("%d sources, want %d: %+v", len(got.Sources), tc.nsrc, got.Sources)
			}
			got.Sources = nil
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
			if ArchiveFilename(got.Package, got.Version, got.Arch) != got.Filename {
				t.Errorf("ArchiveFilename = %s, apt says %s", ArchiveFilename(got.Package, got.Version, got.Arch), got.Filename)
			}
		})
	}
	// The hashes agree with apt-cache show's records.
	st, err := parseStanzas(readFixture(t, "bookworm/apt-cache-show.txt"))
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, s := range st {
		if c, ok := byName[s["Package"]]; ok && c.Version == s["Version"] {
			if c.SHA256 != s["SHA256"] {
				t.Errorf("%s: SHA256 %s, apt-cache show %s", c.Package, c.SHA256, s["SHA256"])
			}
			checked++
		}
	}
	if checked != 3 {
		t.Errorf("checked %d records against apt-cache show, want 3", checked)
	}
}

// TestRecordedNotUpgradable: libc6 has an older version in the security
// archive than the installed point release; it must not be listed.
func TestRecordedNotUpgradable(t *testing.T) {
	for _, c := range recordedCandidates(t) {
		if c.Package == "libc6" || c.Package == "coreutils" {
			t.Errorf("%s listed as upgradable: %+v", c.Package, c)
		}
	}
}

func TestSourceIsSecurity(t *testing.T) {
	cases := []struct {
		name string
		s    Source
		want bool
	}{
		{"debian security", Source{Origin: "Debian", Label: "Debian-Security", Archive: "oldstable-security", Codename: "bookworm-security"}, true},
		{"debian security by label only", Source{Origin: "Debian", Label: "Debian-Security", Archive: "stable"}, true},
		{"ubuntu security", Source{Origin: "Ubuntu", Label: "Ubuntu", Archive: "jammy-security", Codename: "jammy"}, true},
		{"ubuntu esm", Source{Origin: "UbuntuESMApps", Label: "Ubuntu", Archive: "jammy-apps-security", Codename: "jammy"}, true},
		{"debian point release", Source{Origin: "Debian", Label: "Debian", Archive: "oldstable", Codename: "bookworm"}, false},
		{"debian updates", Source{Origin: "Debian", Label: "Debian", Archive: "oldstable-updates", Codename: "bookworm-updates"}, false},
		{"vendor", Source{Origin: "Google LLC", Label: "Google", Archive: "stable", Codename: "stable"}, false},
		{"security in the middle", Source{Archive: "security-tools"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.s.IsSecurity(); got != tc.want {
				t.Errorf("IsSecurity(%+v) = %v", tc.s, got)
			}
		})
	}
}

func TestParsePolicyFiles(t *testing.T) {
	pol, err := parsePolicy(readFixture(t, "bookworm/policy-files.txt"))
	if err != nil {
		t.Fatal(err)
	}
	want := Source{
		Index:    "http://deb.debian.org/debian-security bookworm-security/main amd64 Packages",
		Priority: 500, Origin: "Debian", Label: "Debian-Security", Archive: "oldstable-security",
		Codename: "bookworm-security", Version: "12", Component: "main", Arch: "amd64", Site: "deb.debian.org",
	}
	if got := pol.Files[want.Index]; got != want {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	if len(pol.Files) != 4 {
		t.Errorf("%d package files, want 4", len(pol.Files))
	}
	if s := pol.Files["/var/lib/dpkg/status"]; s.Archive != "now" {
		t.Errorf("status file: %+v", s)
	}
}

func TestParsePolicyCases(t *testing.T) {
	cases := []struct {
		name    string
		in      string
		wantErr bool
		check   func(t *testing.T, p policy)
	}{
		{"pinned and sandbox paths", `Package files:
 100 /tmp/sb/root/var/lib/dpkg/status
     release a=now
 990 http://127.0.0.1:4000 bookworm-security/main amd64 Packages
     release v=12,o=Acme, Inc.,a=stable,n=bookworm-security,l=Acme, Inc. Security,c=main,b=amd64
     origin 127.0.0.1
Pinned packages:
     acme-tool -> 1.0 with priority 1001
`, false, func(t *testing.T, p policy) {
			s := p.Files["http://127.0.0.1:4000 bookworm-security/main amd64 Packages"]
			if s.Origin != "Acme, Inc." || s.Label != "Acme, Inc. Security" || s.Priority != 990 || s.Site != "127.0.0.1" {
				t.Errorf("%+v", s)
			}
		}},
		{"package with pin and foreign arch", `acme-tool:i386:
  Installed: (none)
  Candidate: 1:1.1-2
  Package pin: 1:1.1-2
  Version table:
     1:1.1-2 1001
        500 file:/srv/repo bookworm/main i386 Packages
`, false, func(t *testing.T, p policy) {
			if len(p.Packages) != 1 {
				t.Fatalf("%+v", p.Packages)
			}
			pk := p.Packages[0]
			if pk.Name != "acme-tool:i386" || pk.Installed != "" || pk.Candidate != "1:1.1-2" || len(pk.Versions) != 1 ||
				pk.Versions[0].Priority != 1001 || pk.Versions[0].Indexes[0].Index != "file:/srv/repo bookworm/main i386 Packages" {
				t.Errorf("%+v", pk)
			}
		}},
		{"garbage line", "hello world\n", true, nil},
		{"source before version", "x:\n  Version table:\n        500 http://a b/c d Packages\n", true, nil},
		{"bad priority", "x:\n  Version table:\n     1.0 high\n", true, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := parsePolicy([]byte(tc.in))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if tc.check != nil {
				tc.check(t, p)
			}
		})
	}
}

func TestArchiveFilename(t *testing.T) {
	cases := []struct{ name, version, arch, want string }{
		{"acme-tool", "1.1", "amd64", "acme-tool_1.1_amd64.deb"},
		{"libcap2", "1:2.66-4+deb12u3+b1", "amd64", "libcap2_1%3a2.66-4+deb12u3+b1_amd64.deb"},
		{"krb5-locales", "1.20.1-2+deb12u5", "all", "krb5-locales_1.20.1-2+deb12u5_all.deb"},
		{"odd", "1.0~rc1%", "x.y", "odd_1.0~rc1%25_x%2ey.deb"},
	}
	for _, tc := range cases {
		t.Run(tc.want, func(t *testing.T) {
			got := ArchiveFilename(tc.name, tc.version, tc.arch)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("ArchiveFilename = %s, want %s", got, tc.want)
			}
			n, v, a, err := ParseArchiveFilename(got)
			if err != nil || n != tc.name || v != tc.version || a != tc.arch {
				t.Errorf("ParseArchiveFilename = %q %q %q %v", n, v, a, err)
			}
		})
	}
	for _, bad := range []string{"x.deb", "a_b.deb", "a_b_c_d.deb", "a_b_c.rpm", "a_%zz_c.deb", "a_b_%4.deb", "__.deb"} {
		if _, _, _, err := ParseArchiveFilename(bad); err == nil {
			t.Errorf("ParseArchiveFilename(%q) succeeded", bad)
		}
	}
}

func TestParsePrintURIs(t *testing.T) {
	cases := []struct {
		name    string
		in      string
		want    []printURI
		wantErr bool
	}{
		{"install output with messages", "Reading package lists...\n'http://h/pool/a_1.0_amd64.deb' a_1.0_amd64.deb 908 SHA256:" + strings.Repeat("ab", 32) + "\n",
			[]printURI{{URI: "http://h/pool/a_1.0_amd64.deb", Filename: "a_1.0_amd64.deb", Name: "a", Version: "1.0", Arch: "amd64", Size: 908, Hash: "SHA256:" + strings.Repeat("ab", 32)}}, false},
		{"sha512 and no hash", "'file:/r/b_2_all.deb' b_2_all.deb 1 SHA512:00\n'http://h/c_3_amd64.deb' c_3_amd64.deb 2\n",
			[]printURI{
				{URI: "file:/r/b_2_all.deb", Filename: "b_2_all.deb", Name: "b", Version: "2", Arch: "all", Size: 1, Hash: "SHA512:00"},
				{URI: "http://h/c_3_amd64.deb", Filename: "c_3_amd64.deb", Name: "c", Version: "3", Arch: "amd64", Size: 2},
			}, false},
		{"unterminated", "'http://h/x\n", nil, true},
		{"negative size", "'u' a_1_all.deb -1 SHA256:00\n", nil, true},
		{"bad file name", "'u' a.deb 1 SHA256:00\n", nil, true},
		{"bad hash", "'u' a_1_all.deb 1 SHA256\n", nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parsePrintURIs([]byte(tc.in))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v", err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseAudit(t *testing.T) {
	// Recorded from dpkg 1.21.22 --audit in a sandbox after a postinst failed.
	out := `The following packages are only half configured, probably due to problems
configuring them the first time.  The configuration should be retried using
dpkg --configure <package> or the configure menu option in dselect:
 acme-tool            patchring test package acme-tool

The following packages have been unpacked but not yet configured.
They must be configured using dpkg --configure or the configure
menu option in dselect for them to work:
 libacme1:amd64       Acme library
 acme-tool            patchring test package acme-tool

`
	if got := parseAudit([]byte(out)); !slices.Equal(got, []string{"acme-tool", "libacme1"}) {
		t.Errorf("parseAudit = %v", got)
	}
	if got := parseAudit(nil); len(got) != 0 {
		t.Errorf("parseAudit(empty) = %v", got)
	}
}

func TestParseLockError(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want *LockedError
	}{
		{"apt with holder", "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (dpkg)\nE: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another process using it?",
			&LockedError{Path: "/var/lib/dpkg/lock-frontend", PID: 4242, Command: "dpkg"}},
		{"apt lists lock", "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 77 (apt-get)",
			&LockedError{Path: "/var/lib/apt/lists/lock", PID: 77, Command: "apt-get"}},
		{"apt without holder", "E: Could not get lock /x/lock-frontend - open (11: Resource temporarily unavailable)",
			&LockedError{Path: "/x/lock-frontend"}},
		{"dpkg frontend", "dpkg: error: dpkg frontend lock was locked by another process with pid 99\nNote: removing the lock file is always wrong",
			&LockedError{Path: "/adm/lock-frontend", PID: 99}},
		{"dpkg status database", "dpkg: error: dpkg status database is locked by another process",
			&LockedError{Path: "/adm/lock"}},
		{"other error", "E: Unable to locate package nothing", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseLockError(tc.in, "/adm")
			if ok != (tc.want != nil) || (ok && *got != *tc.want) {
				t.Errorf("got %+v %v, want %+v", got, ok, tc.want)
			}
		})
	}
}

// TestParseUnmet: apt-get install -s's explanation, as apt 2.6 prints it
// for a package whose dependencies no source satisfies.
func TestParseUnmet(t *testing.T) {
	out := `Reading package lists...
Building dependency tree...
Some packages could not be installed. This may mean that you have
requested an impossible situation or if you are using the unstable
distribution that some required packages have not yet been created
or been moved out of Incoming.
The following information may help to resolve the situation:

The following packages have unmet dependencies:
 footool : Depends: libmissing but it is not installable
           Depends: libb (>= 2) but 1 is to be installed
 bartool : Breaks: footool (< 2)
E: Unable to correct problems, you have held broken packages.
`
	want := []string{
		"footool : Depends: libmissing but it is not installable",
		"footool : Depends: libb (>= 2) but 1 is to be installed",
		"bartool : Breaks: footool (< 2)",
	}
	if got := parseUnmet(out); !slices.Equal(got, want) {
		t.Errorf("parseUnmet = %q, want %q", got, want)
	}
	if got := parseUnmet("E: Unable to locate package x\n"); got != nil {
		t.Errorf("parseUnmet without the section = %q", got)
	}
}

func TestParseFailedPackages(t *testing.T) {
	// Recorded from apt-get install in a sandbox with a failing postinst.
	out := `Setting up acme-tool (1:1.1-2) ...
postinst: failing on demand: /tmp/sb/root/etc/acme-tool/fail-postinst exists
dpkg: error processing package acme-tool (--configure):
 installed acme-tool package post-installation script subprocess returned error exit status 1
dpkg: error processing archive /var/cache/apt/archives/libacme1_1.1_amd64.deb (--unpack):
 trying to overwrite '/usr/lib/x', which is also in package other 1.0
Errors were encountered while processing:
 acme-tool
 /var/cache/apt/archives/libacme1_1.1_amd64.deb
 extra-pkg
E: Sub-process /usr/bin/dpkg returned an error code (1)
`
	want := []string{"acme-tool", "/var/cache/apt/archives/libacme1_1.1_amd64.deb", "extra-pkg"}
	if got := parseFailedPackages(out); !slices.Equal(got, want) {
		t.Errorf("parseFailedPackages = %q, want %q", got, want)
	}
}

func TestParseShellVarsAndDump(t *testing.T) {
	vars, err := parseShellVars([]byte("ROOT='/tmp/a b/'\nQ='it'\\''s'\nD='x'\"'\"'y'\nE=''\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"ROOT": "/tmp/a b/", "Q": "it's", "D": "x'y", "E": ""}
	for k, v := range want {
		if vars[k] != v {
			t.Errorf("%s = %q, want %q", k, vars[k], v)
		}
	}
	for _, bad := range []string{"NOEQUALS\n", "A='open\n", "=x\n", "A=x\\"} {
		if _, err := parseShellVars([]byte(bad)); err == nil {
			t.Errorf("parseShellVars(%q) succeeded", bad)
		}
	}
	dump := "DPkg::Options=\nDPkg::Options::=--root=/tmp/r\ndpkg::options::=--force-not-root\nDPkg::Options::=--log=/a=b\nDPkg::Other=x\n"
	if got := parseDumpList([]byte(dump), "DPkg::Options"); !slices.Equal(got, []string{"--root=/tmp/r", "--force-not-root", "--log=/a=b"}) {
		t.Errorf("parseDumpList = %q", got)
	}
}

func TestAssembleReportsMissingURI(t *testing.T) {
	pol := policy{Files: map[string]Source{"http://h s/main amd64 Packages": {Index: "http://h s/main amd64 Packages", Archive: "s"}}}
	pol.Packages = []policyPackage{{Name: "a", Installed: "1", Candidate: "2", Versions: []policyVersion{
		{Version: "2", Indexes: []policyIndex{{500, "http://h s/main amd64 Packages"}}},
	}}}
	ups, err := upgradable(pol, vercmp.Deb)
	if err != nil || len(ups) != 1 {
		t.Fatalf("upgradable = %v, %v", ups, err)
	}
	if _, err := assembleCandidates(pol, ups, nil, "amd64"); err == nil || !strings.Contains(err.Error(), "no payload URI") {
		t.Errorf("err = %v", err)
	}
	if _, err := upgradable(policy{Packages: []policyPackage{{Name: "b", Installed: "1", Candidate: ":bad"}}}, vercmp.Deb); err == nil {
		t.Error("bad version accepted")
	}
}

func TestErrorMessages(t *testing.T) {
	ce := &CommandError{Command: "apt-get install", ExitCode: 100, Stderr: "E: Unable to locate package x\n", Err: errors.New("exit status 100")}
	if got := ce.Error(); got != "apt-get install: exit status 100: E: Unable to locate package x" {
		t.Errorf("CommandError = %q", got)
	}
	ie := &InstallError{Op: "install", Packages: []PkgVersion{{Name: "a", Version: "1:2"}}, Failed: []string{"a"}, Err: ce}
	if !strings.HasPrefix(ie.Error(), "install a=1:2: apt-get install: exit status 100") || !strings.HasSuffix(ie.Error(), "(dpkg failed on a)") {
		t.Errorf("InstallError = %q", ie.Error())
	}
	var got *CommandError
	if !errors.As(ie, &got) {
		t.Error("InstallError does not unwrap to CommandError")
	}
	le := &LockedError{Path: "/l", PID: 3, Command: "dpkg -i x"}
	if le.Error() != "dpkg lock /l held by process 3 (dpkg -i x)" {
		t.Errorf("LockedError = %q", le.Error())
	}
}

func TestPkgVersionValidate(t *testing.T) {
	cases := []struct {
		name string
		p    PkgVersion
		ok   bool
	}{
		{"plain", PkgVersion{Name: "acme-tool", Version: "1.1"}, true},
		{"epoch revision arch", PkgVersion{Name: "libcap2", Version: "1:2.66-4+deb12u3+b1", Arch: "amd64"}, true},
		{"tilde", PkgVersion{Name: "g++", Version: "1.0~rc1", Arch: "all"}, true},
		{"upstream not starting with digit (dpkg warns only)", PkgVersion{Name: "ab", Version: "a1.0"}, true},
		{"path traversal in version", PkgVersion{Name: "ab", Version: "../../etc/x"}, false},
		{"slash in arch", PkgVersion{Name: "ab", Version: "1", Arch: "amd64/../x"}, false},
		{"option as name", PkgVersion{Name: "--purge", Version: "1"}, false},
		{"qualified name", PkgVersion{Name: "ab:amd64", Version: "1"}, false},
		{"upper case name", PkgVersion{Name: "Ab", Version: "1"}, false},
		{"empty version", PkgVersion{Name: "ab"}, false},
		{"space in version", PkgVersion{Name: "ab", Version: "1 2"}, false},
		{"bad epoch", PkgVersion{Name: "ab", Version: "x:1"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.p.Validate(); (err == nil) != tc.ok {
				t.Errorf("Validate(%+v) = %v, want ok=%v", tc.p, err, tc.ok)
			}
		})
	}
}
