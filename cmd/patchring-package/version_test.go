package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchring/patchring/platform/vercmp"
)

// releaseOrder is git describe outputs in release order: pre-releases,
// builds past a tag and dirty trees included.
var releaseOrder = []string{
	"abc1234",
	"v0.9.0-12-g0011223",
	"v1.1.0",
	"v1.2.0-alpha",
	"v1.2.0-alpha-2-gaaaa111",
	"v1.2.0-beta.2",
	"v1.2.0-rc1",
	"v1.2.0-rc1-3-gabc1234",
	"v1.2.0-rc1-10-gdef5678",
	"v1.2.0-rc2",
	"v1.2.0",
	"v1.2.0-3-gabc1234",
	"v1.2.0-3-gabc1234-dirty",
	"v1.2.0-10-g0123456",
	"v1.2.1-rc1",
	"v1.2.1",
	"v1.10.0",
}

// TestVersionOrder checks that git describe outputs in release order map to
// strictly increasing versions under dpkg's and rpm's rules (vercmp is
// checked against the real dpkg and rpm by its own tests, and
// TestVersionOrderRealTools asks the tools themselves).
func TestVersionOrder(t *testing.T) {
	order := releaseOrder
	var prev pkgVersion
	for i, s := range order {
		v, err := versionFromDescribe(s)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			prev = v
			continue
		}
		if c, err := vercmp.Deb(prev.Deb, v.Deb); err != nil || c >= 0 {
			t.Errorf("deb: %s (%s) does not sort before %s (%s): cmp %d, err %v", order[i-1], prev.Deb, s, v.Deb, c, err)
		}
		a, b := prev.RPMVersion+"-"+prev.RPMRelease, v.RPMVersion+"-"+v.RPMRelease
		if c, err := vercmp.RPM(a, b); err != nil || c >= 0 {
			t.Errorf("rpm: %s (%s) does not sort before %s (%s): cmp %d, err %v", order[i-1], a, s, b, c, err)
		}
		prev = v
	}
	for s, want := range map[string]pkgVersion{
		"v1.2.0-rc1-3-gabc1234": {"1.2.0~rc1+git3.gabc1234-1", "1.2.0~rc1", "1.git3.gabc1234"},
		"1.2.0":                 {"1.2.0-1", "1.2.0", "1"},
		"v2.0.0-dirty":          {"2.0.0+dirty-1", "2.0.0", "1.dirty"},
	} {
		if got, err := versionFromDescribe(s); err != nil || got != want {
			t.Errorf("versionFromDescribe(%q) = %+v, %v; want %+v", s, got, err, want)
		}
	}
	for _, bad := range []string{"", "dev", "v1.2.0-rc 1", "v1.2.0_rc1", "v1..2", "-v1.2.0", "v1.2.0-rc1-3-gxyz"} {
		if v, err := versionFromDescribe(bad); err == nil {
			t.Errorf("versionFromDescribe(%q) = %+v, want an error", bad, v)
		}
	}
}

func FuzzVersionFromDescribe(f *testing.F) {
	for _, s := range []string{"v1.2.0-rc1-3-gabc1234-dirty", "abc1234", "v0.1", "1.2.3-beta.2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := versionFromDescribe(s)
		if err != nil {
			return
		}
		if _, err := vercmp.ParseDeb(v.Deb); err != nil {
			t.Errorf("%q: deb version %q does not parse: %v", s, v.Deb, err)
		}
		if _, err := vercmp.ParseRPM(v.RPMVersion + "-" + v.RPMRelease); err != nil {
			t.Errorf("%q: rpm version %q-%q does not parse: %v", s, v.RPMVersion, v.RPMRelease, err)
		}
	})
}

// TestVersionOrderRealTools asks the real dpkg (--compare-versions) and
// rpm (its Lua rpm.vercmp, rpm 4.18) whether every version of a release
// sorts before the next one's.
func TestVersionOrderRealTools(t *testing.T) {
	for _, tool := range []string{"dpkg", "rpm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: install the Debian package %s", tool, tool)
		}
	}
	var debs, rpms []string
	for _, s := range releaseOrder {
		v, err := versionFromDescribe(s)
		if err != nil {
			t.Fatal(err)
		}
		debs = append(debs, v.Deb)
		rpms = append(rpms, v.RPMVersion+"-"+v.RPMRelease)
	}
	for i := 1; i < len(debs); i++ {
		if out, err := exec.Command("dpkg", "--compare-versions", "--", debs[i-1], "lt", debs[i]).CombinedOutput(); err != nil {
			t.Errorf("dpkg: %s (%s) does not sort before %s (%s): %v %s", releaseOrder[i-1], debs[i-1], releaseOrder[i], debs[i], err, out)
		}
	}
	var pairs strings.Builder
	for i := 1; i < len(rpms); i++ {
		fmt.Fprintf(&pairs, "%s %s\n", rpms[i-1], rpms[i])
	}
	file := filepath.Join(t.TempDir(), "pairs")
	if err := os.WriteFile(file, []byte(pairs.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf(`%%{lua: for line in io.lines(%q) do local a, b = line:match("^(%%S+) (%%S+)$"); io.write(rpm.vercmp(a, b), "\n") end}`, file)
	out, err := exec.Command("rpm", "--eval", script).Output()
	if err != nil {
		t.Fatalf("rpm --eval: %v", err)
	}
	got := strings.Fields(string(out))
	if len(got) != len(rpms)-1 {
		t.Fatalf("rpm gave %d results for %d pairs: %q", len(got), len(rpms)-1, out)
	}
	for i, c := range got {
		if c != "-1" {
			t.Errorf("rpm: %s (%s) does not sort before %s (%s): rpm.vercmp = %s", releaseOrder[i], rpms[i], releaseOrder[i+1], rpms[i+1], c)
		}
	}
}
