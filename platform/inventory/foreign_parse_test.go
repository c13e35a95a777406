package inventory

import (
	"encoding/binary"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf16"
)

func TestParseRegQueryUninstall(t *testing.T) {
	t.Parallel()
	keys, err := parseRegQuery(readFixture(t, "reg-query-uninstall.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 6 {
		t.Fatalf("got %d keys, want 6", len(keys))
	}
	if v := keys[0].Values; v["EstimatedSize"] != "5703" || v["InstallLocation"] != `C:\Program Files\7-Zip\` || v["UninstallString"] != `"C:\Program Files\7-Zip\Uninstall.exe"` {
		t.Fatalf("7-Zip values = %q", v)
	}
	if v := keys[5].Values; v["Inno Setup: App Path"] != `C:\Program Files\Git` {
		t.Fatalf("value names with spaces: %q", v)
	}
	pkgs := uninstallPackages(keys, "x64")
	var got []string
	for _, p := range pkgs {
		got = append(got, p.Name+"|"+p.Version+"|"+p.Publisher+"|"+p.InstalledAt.Format("2006-01-02"))
	}
	want := []string{
		"7-Zip 23.01 (x64)|23.01|Igor Pavlov|0001-01-01",
		"Microsoft Visual C++ 2022 X64 Minimum Runtime - 14.38.33130|14.38.33130|Microsoft Corporation|2023-12-12",
		"Git|2.43.0|The Git Development Community|2023-12-01",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("packages:\n got %q\nwant %q", got, want)
	}
	for _, bad := range []string{"junk line\r\n", "    Orphan    REG_SZ    x\r\n", "HKEY_X\r\n    NoType    x\r\n", "HKEY_X\r\n    D    REG_DWORD    0xZZ\r\n"} {
		if _, err := parseRegQuery([]byte(bad)); err == nil || !strings.Contains(err.Error(), "line") {
			t.Errorf("parseRegQuery(%q) = %v, want an error naming the line", bad, err)
		}
	}
}

func utf16LE(s string) []byte {
	out := []byte{0xFF, 0xFE}
	for _, u := range utf16.Encode([]rune(s)) {
		out = binary.LittleEndian.AppendUint16(out, u)
	}
	return out
}

func TestParseHotfixJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		data  []byte
		ids   []string
		first time.Time
	}{
		{"windows powershell array", readFixture(t, "hotfix.json"), []string{"KB5032007", "KB5032189", "KB5031539"}, time.Date(2023, 11, 14, 0, 0, 0, 0, time.UTC)},
		{"powershell 7 single object", readFixture(t, "hotfix-single-ps7.json"), []string{"KB5034441"}, time.Date(2024, 1, 10, 0, 0, 0, 0, time.UTC)},
		{"utf-16 with BOM", utf16LE(string(readFixture(t, "hotfix-single-ps7.json"))), []string{"KB5034441"}, time.Date(2024, 1, 10, 0, 0, 0, 0, time.UTC)},
		{"no hotfixes", []byte("  \r\n"), nil, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pkgs, err := parseHotfixJSON(tt.data)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, p := range pkgs {
				ids = append(ids, p.Name)
				if p.Manager != "windows-hotfix" || p.Status != "installed" {
					t.Fatalf("package %+v", p)
				}
			}
			if !slices.Equal(ids, tt.ids) {
				t.Fatalf("ids = %q, want %q", ids, tt.ids)
			}
			if len(pkgs) > 0 && !pkgs[0].InstalledAt.Equal(tt.first) {
				t.Fatalf("installed at %v, want %v", pkgs[0].InstalledAt, tt.first)
			}
		})
	}
	if pkgs, _ := parseHotfixJSON(readFixture(t, "hotfix.json")); !pkgs[2].InstalledAt.IsZero() {
		t.Fatal("null date parsed")
	}
	for _, bad := range []string{"[", `[{"Description":"x"}]`, `"str"`} {
		if _, err := parseHotfixJSON([]byte(bad)); err == nil {
			t.Errorf("parseHotfixJSON(%q) accepted", bad)
		}
	}
}

func TestSystemProfilerAppleSilicon(t *testing.T) {
	t.Parallel()
	r, err := parseSystemProfiler(readFixture(t, "system_profiler-arm.json"))
	if err != nil {
		t.Fatal(err)
	}
	o := r.osInfo()
	if o.Name != "macOS" || o.VersionID != "14.1.1" || o.Build != "23B81" || o.KernelRelease != "23.1.0" || o.UptimeSeconds != 2*86400+3*3600+45*60+10 {
		t.Fatalf("os = %+v", o)
	}
	h := r.hardware()
	if h.CPU.Model != "Apple M2 Pro" || h.CPU.Cores != 10 || h.Memory.TotalBytes != 16<<30 || h.DMI.ProductSerial != "C02XK1ABCDEF" || h.DMI.ProductName != "Mac14,9" {
		t.Fatalf("hardware = %+v", h)
	}
}

func TestSystemProfilerIntelAndApps(t *testing.T) {
	t.Parallel()
	r, err := parseSystemProfiler(readFixture(t, "system_profiler-intel.json"))
	if err != nil {
		t.Fatal(err)
	}
	h := r.hardware()
	if h.CPU.Model != "Quad-Core Intel Core i7 2.3 GHz" || h.CPU.Sockets != 1 || h.Memory.TotalBytes != 32<<30 || h.CPU.Vendor != "GenuineIntel" {
		t.Fatalf("hardware = %+v", h)
	}
	if o := r.osInfo(); len(o.Unavailable) != 1 {
		t.Fatalf("missing software data not marked unavailable: %+v", o)
	}
	r, err = parseSystemProfiler(readFixture(t, "system_profiler-apps.json"))
	if err != nil {
		t.Fatal(err)
	}
	apps := r.applications()
	if len(apps) != 3 || apps[1].Name != "Firefox" || apps[1].Version != "120.0.1" || apps[1].Architecture != "universal" || apps[2].Architecture != "x86_64" || apps[2].Version != "" {
		t.Fatalf("apps = %+v", apps)
	}
	if _, err := parseSystemProfiler([]byte("{")); err == nil {
		t.Fatal("bad JSON accepted")
	}
}

func TestPkgutil(t *testing.T) {
	t.Parallel()
	ids := parsePkgutilPkgs(readFixture(t, "pkgutil-pkgs.txt"))
	if !slices.Equal(ids, []string{"com.apple.pkg.Core", "com.apple.pkg.MobileAssets", "org.python.Python.PythonFramework-3.12"}) {
		t.Fatalf("ids = %q", ids)
	}
	p, err := parsePkgInfo(readFixture(t, "pkgutil-pkg-info.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "org.python.Python.PythonFramework-3.12" || p.Version != "3.12.1" || p.InstalledAt.Unix() != 1702400000 || p.Manager != "pkgutil" {
		t.Fatalf("pkg = %+v", p)
	}
	if _, err := parsePkgInfo([]byte("No receipt for 'x' found at '/'.\n")); err == nil {
		t.Fatal("missing receipt accepted")
	}
}

func FuzzForeignFormats(f *testing.F) {
	for _, name := range []string{"reg-query-uninstall.txt", "hotfix.json", "hotfix-single-ps7.json", "system_profiler-arm.json", "system_profiler-apps.json", "pkgutil-pkg-info.txt"} {
		f.Add(readFixture(f, name))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if keys, err := parseRegQuery(data); err == nil {
			for _, p := range uninstallPackages(keys, "x64") {
				if p.Name == "" {
					t.Fatal("package without a name")
				}
			}
		}
		if pkgs, err := parseHotfixJSON(data); err == nil {
			for _, p := range pkgs {
				if p.Name == "" {
					t.Fatal("hotfix without an id")
				}
			}
		}
		if r, err := parseSystemProfiler(data); err == nil {
			_, _, _ = r.osInfo(), r.hardware(), r.applications()
		}
		if p, err := parsePkgInfo(data); err == nil && p.Name == "" {
			t.Fatal("pkg-info without an id")
		}
	})
}
