package targetname

import (
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	for _, ok := range []string{"policy.json", "catalog/a/1.0/a_1.0_amd64.deb", "x+y~z", "_a", strings.Repeat("a", MaxLen)} {
		if err := Check(ok); err != nil {
			t.Errorf("Check(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "/abs", "a//b", "a/", "../x", "a/../b", "./a", ".hidden", "-x", "a/b.", `a\b`, "a:b", "C:/x", "a b", "é", strings.Repeat("a", MaxLen+1)} {
		err := Check(bad)
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("Check(%q) = %v, want ErrInvalid", bad, err)
			continue
		}
		if len(bad) <= MaxLen && !strings.Contains(err.Error(), strconv.Quote(bad)) {
			t.Errorf("Check(%q): error %q does not name the target", bad, err)
		}
	}
}

// FuzzCheck checks that every accepted name stays inside the directory it
// is joined to, and joins to itself (no cleaning changes it).
func FuzzCheck(f *testing.F) {
	for _, s := range []string{"policy.json", "catalog/a/1/a.deb", "../x", "a/../../b", "/etc/passwd", `a\..\b`, "a/./b", "C:/x", "a//b", "a/b."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if Check(name) != nil {
			return
		}
		base := filepath.FromSlash("/dst")
		p := filepath.Join(base, filepath.FromSlash(name))
		if !strings.HasPrefix(p, base+string(filepath.Separator)) {
			t.Fatalf("accepted %q, which lands at %s outside %s", name, p, base)
		}
		if filepath.ToSlash(p[len(base)+1:]) != name {
			t.Fatalf("accepted %q, which joins as %s", name, p)
		}
	})
}
