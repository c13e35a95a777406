package dnf

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/patchring/patchring/platform/vercmp"
)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func evr(t testing.TB, s string) vercmp.RPMVersion {
	t.Helper()
	v, err := vercmp.ParseRPM(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestParseNEVRA(t *testing.T) {
	cases := []struct {
		in   string
		want NEVRA
		ok   bool
	}{
		{"bind-libs-32:9.16.23-18.el9_4.6.x86_64", NEVRA{"bind-libs", vercmp.RPMVersion{Epoch: "32", Version: "9.16.23", Release: "18.el9_4.6"}, "x86_64"}, true},
		{"tzdata-2024b-2.el9.noarch", NEVRA{"tzdata", vercmp.RPMVersion{Version: "2024b", Release: "2.el9"}, "noarch"}, true},
		{"python3-3.12.7-1.fc40.x86_64", NEVRA{"python3", vercmp.RPMVersion{Version: "3.12.7", Release: "1.fc40"}, "x86_64"}, true},
		{"noarch", NEVRA{}, false},
		{"a-1.x86_64", NEVRA{}, false},
		{"-1-2.x86_64", NEVRA{}, false},
		{"a-1-2.", NEVRA{}, false},
		{"a-x:1-2.x86_64", NEVRA{}, false},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseNEVRA(tc.in)
			if (err == nil) != tc.ok || got != tc.want {
				t.Fatalf("ParseNEVRA = %+v, %v", got, err)
			}
			if tc.ok && got.String() != tc.in {
				t.Errorf("String() = %s", got.String())
			}
		})
	}
}

func TestParseCheckUpdate(t *testing.T) {
	ups, err := ParseCheckUpdate(fixture(t, "rhel9-check-update.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, u := range ups {
		got = append(got, u.Name+"."+u.Arch+" "+u.EVR.String()+" "+u.Repo)
	}
	want := []string{
		"NetworkManager.x86_64 1:1.46.0-19.el9_4 baseos",
		"NetworkManager-libnm.x86_64 1:1.46.0-19.el9_4 baseos",
		"bind-libs.x86_64 32:9.16.23-18.el9_4.6 appstream",
		"bind-license.noarch 32:9.16.23-18.el9_4.6 appstream",
		"google-noto-sans-cjk-ttc-fonts-extra-long-name-for-wrapping.noarch 20230817-2.el9 appstream",
		"kernel.x86_64 5.14.0-427.42.1.el9_4 baseos",
		"kernel-core.x86_64 5.14.0-427.42.1.el9_4 baseos",
		"kernel-modules-core.x86_64 5.14.0-427.42.1.el9_4 baseos",
		"python3-perf.x86_64 5.14.0-427.42.1.el9_4 baseos",
		"tzdata.noarch 2024b-2.el9 baseos",
		"vim-minimal.x86_64 2:8.2.2637-21.el9_4.1 baseos",
		"grub2-tools-efi.x86_64 1:2.06-82.el9_4 baseos",
	}
	if !slices.Equal(got, want) {
		t.Errorf("updates:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	last := ups[len(ups)-1]
	wantObs := []Installed{{Name: "grub2-tools-efi-legacy", Arch: "x86_64", EVR: evr(t, "1:2.06-77.el9"), Repo: "@anaconda"}}
	if !reflect.DeepEqual(last.Obsoletes, wantObs) {
		t.Errorf("obsoletes = %+v", last.Obsoletes)
	}
}

func TestParseCheckUpdateCases(t *testing.T) {
	cases := []struct {
		name    string
		in      string
		want    int
		wantErr string
	}{
		{"empty", "", 0, ""},
		{"messages only", "Updating and loading repositories:\nRepositories loaded.\n", 0, ""},
		{"version column overflows", "a-very-long-package-name-here.x86_64  1:2.3.4-5.el9_4.verylongreleasetag.x\n                                                                          appstream\n", 1, ""},
		{"name wrapped", "averylongname.noarch\n        1.0-1.el9   baseos\n", 1, ""},
		{"incomplete at end", "averylongname.noarch\n", 0, "incomplete"},
		{"incomplete before next", "averylongname.noarch\nnext.x86_64 1-1 baseos\n", 0, "incomplete"},
		{"too many wrapped columns", "averylongname.noarch\n   1-1 baseos extra\n", 0, "columns"},
		{"bad version", "a.x86_64 1:-1 baseos\n", 0, "rpm version"},
		{"indented outside obsoletes", "    a.x86_64 1-1 @System\n", 0, "unexpected indented"},
		{"obsoleted without obsoleting", "Obsoleting Packages\n    a.x86_64 1-1 @System\n", 0, "without an obsoleting"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ups, err := ParseCheckUpdate([]byte(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || len(ups) != tc.want {
				t.Fatalf("got %+v, %v; want %d updates", ups, err, tc.want)
			}
		})
	}
}

func TestParseUpdateinfoListDnf4(t *testing.T) {
	advs, err := ParseUpdateinfoList(fixture(t, "rhel9-updateinfo-list-security.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(advs) != 7 {
		t.Fatalf("%d entries: %+v", len(advs), advs)
	}
	want0 := AdvisoryPackage{ID: "RHSA-2024:9185", Type: "security", Severity: "Important",
		Package: NEVRA{"bind-libs", evr(t, "32:9.16.23-18.el9_4.6"), "x86_64"}}
	if advs[0] != want0 {
		t.Errorf("first = %+v", advs[0])
	}
	if last := advs[6]; last.ID != "RHSA-2024:9474" || last.Severity != "" || last.Type != "security" {
		t.Errorf("Unknown/Sec. entry = %+v", last)
	}
	for _, a := range advs {
		if a.Type != "security" || a.Installed || a.Updated != "" {
			t.Errorf("entry %+v", a)
		}
	}
}

func TestParseUpdateinfoListAllVerbose(t *testing.T) {
	advs, err := ParseUpdateinfoList(fixture(t, "rhel9-updateinfo-list-all-verbose.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(advs) != 10 {
		t.Fatalf("%d entries", len(advs))
	}
	types := map[string]int{}
	for _, a := range advs {
		types[a.Type]++
		if a.Updated == "" || len(a.Updated) != len("2024-11-04 00:00:00") {
			t.Errorf("%s: Updated %q", a.ID, a.Updated)
		}
		if a.Installed != (a.Package.Name == "kernel-core") {
			t.Errorf("%s %s: Installed = %v", a.ID, a.Package, a.Installed)
		}
	}
	if !reflect.DeepEqual(types, map[string]int{"bugfix": 2, "security": 7, "enhancement": 1}) {
		t.Errorf("types = %v", types)
	}
}

func TestParseAdvisoryListDnf5(t *testing.T) {
	advs, err := ParseUpdateinfoList(fixture(t, "fedora40-dnf5-advisory-list-security.txt"))
	if err != nil {
		t.Fatal(err)
	}
	want := []AdvisoryPackage{
		{ID: "FEDORA-2024-3a2b9c1d7e", Type: "security", Severity: "Important", Package: NEVRA{"curl", evr(t, "8.6.0-10.fc40"), "x86_64"}, Updated: "2024-11-08 01:12:41"},
		{ID: "FEDORA-2024-3a2b9c1d7e", Type: "security", Severity: "Important", Package: NEVRA{"libcurl", evr(t, "8.6.0-10.fc40"), "x86_64"}, Updated: "2024-11-08 01:12:41"},
		{ID: "FEDORA-2024-9f0e1d2c3b", Type: "security", Severity: "Moderate", Package: NEVRA{"python3", evr(t, "3.12.7-1.fc40"), "x86_64"}, Updated: "2024-10-29 02:04:10"},
		{ID: "FEDORA-2024-b71c0a4e55", Type: "security", Package: NEVRA{"expat", evr(t, "2.6.4-1.fc40"), "x86_64"}, Updated: "2024-11-12 01:51:03"},
	}
	if !slices.Equal(advs, want) {
		t.Errorf("got  %+v\nwant %+v", advs, want)
	}
}

func TestParseUpdateinfoListRejectsBadNEVRA(t *testing.T) {
	if _, err := ParseUpdateinfoList([]byte("RHSA-1 Important/Sec. kernel.x86_64\n")); err == nil {
		t.Error("accepted a package without version")
	}
}

func TestParseUpdateinfoInfo(t *testing.T) {
	for _, name := range []string{"rhel9-updateinfo-info.txt", "rhel8-updateinfo-info.txt"} {
		t.Run(name, func(t *testing.T) {
			advs, err := ParseUpdateinfoInfo(fixture(t, name))
			if err != nil {
				t.Fatal(err)
			}
			var bind *Advisory
			for i := range advs {
				if advs[i].ID == "RHSA-2024:9185" {
					bind = &advs[i]
				}
			}
			if bind == nil {
				t.Fatalf("RHSA-2024:9185 missing: %+v", advs)
			}
			want := Advisory{
				ID: "RHSA-2024:9185", Title: "Important: bind security update", Type: "security",
				Updated: "2024-11-12 00:00:00", Severity: "Important",
				Bugs: []string{
					"2298893 - CVE-2024-1737 bind: BIND's database will be slow if a very large number of RRs exist at the same name",
					"2298901 - CVE-2024-1975 bind: SIG(0) can be used to exhaust CPU resources",
				},
				CVEs:        []string{"CVE-2024-1737", "CVE-2024-1975"},
				Description: "The Berkeley Internet Name Domain (BIND) is an implementation of the Domain Name System\n(DNS) protocols.\n\nSecurity Fix(es):\n\n* bind: BIND's database will be slow if a very large number of RRs exist at the same name (CVE-2024-1737)",
			}
			if !reflect.DeepEqual(*bind, want) {
				t.Errorf("got  %+v\nwant %+v", *bind, want)
			}
		})
	}
	advs, err := ParseUpdateinfoInfo(fixture(t, "rhel9-updateinfo-info.txt"))
	if err != nil || len(advs) != 3 {
		t.Fatalf("rhel9: %d advisories, %v", len(advs), err)
	}
	for _, a := range advs {
		if a.ID == "RHSA-2024:9474" && (a.Severity != "" || !slices.Equal(a.CVEs, []string{"CVE-2021-3903"})) {
			t.Errorf("advisory without severity: %+v", a)
		}
	}
}

func TestParseUpdateinfoInfoErrors(t *testing.T) {
	rule := strings.Repeat("=", 79)
	cases := map[string]string{
		"unclosed title":      rule + "\n  Title\n",
		"no update id":        rule + "\n  Title\n" + rule + "\n  Type: security\n",
		"no label":            rule + "\n  Title\n" + rule + "\n  Update ID: X\nplain text\n",
		"orphan continuation": rule + "\n  Title\n" + rule + "\n   : more\n",
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseUpdateinfoInfo([]byte(in)); err == nil {
				t.Error("accepted")
			}
		})
	}
}

// TestClassify joins the check-update fixture with the security advisory
// list of the same system.
func TestClassify(t *testing.T) {
	ups, err := ParseCheckUpdate(fixture(t, "rhel9-check-update.txt"))
	if err != nil {
		t.Fatal(err)
	}
	advs, err := ParseUpdateinfoList(fixture(t, "rhel9-updateinfo-list-all-verbose.txt"))
	if err != nil {
		t.Fatal(err)
	}
	// An advisory fixed only by a later build does not apply.
	advs = append(advs, AdvisoryPackage{ID: "RHSA-2099:1", Type: "security", Severity: "Critical",
		Package: NEVRA{"tzdata", evr(t, "2099a-1.el9"), "noarch"}})
	got := map[string]Update{}
	for _, u := range Classify(ups, advs) {
		got[u.Name] = u
	}
	cases := []struct {
		name     string
		security bool
		severity string
		advs     []string
	}{
		{"bind-libs", true, "Important", []string{"RHSA-2024:9185"}},
		{"kernel-core", true, "Moderate", []string{"RHSA-2024:8856"}},
		{"vim-minimal", true, "", []string{"RHSA-2024:9474"}},
		{"NetworkManager", false, "", []string{"RHBA-2024:8810"}},
		{"tzdata", false, "", []string{"RHEA-2024:8790"}},
		{"grub2-tools-efi", false, "", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u := got[tc.name]
			if u.Security != tc.security || u.Severity != tc.severity || !slices.Equal(u.Advisories, tc.advs) {
				t.Errorf("%s: security %v severity %q advisories %v", tc.name, u.Security, u.Severity, u.Advisories)
			}
		})
	}
}
