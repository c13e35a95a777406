//go:build linux

package apttest_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchring/patchring/platform/apt/apttest"
)

// fakeTB records what a guard reports at cleanup.
type fakeTB struct {
	cleanups []func()
	fatal    []string
}

func (f *fakeTB) Helper()           {}
func (f *fakeTB) Cleanup(fn func()) { f.cleanups = append(f.cleanups, fn) }
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.fatal = append(f.fatal, fmt.Sprintf(format, args...))
}
func (f *fakeTB) finish() {
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
}

func TestGuardHostFiles(t *testing.T) {
	cases := []struct {
		name    string
		change  func(dir string) error
		changed string // "" when nothing should be reported
	}{
		{"untouched", func(string) error { return nil }, ""},
		{"file rewritten", func(d string) error { return os.WriteFile(filepath.Join(d, "passwd"), []byte("root\nacme\n"), 0o644) }, "passwd"},
		{"file created", func(d string) error { return os.WriteFile(filepath.Join(d, "absent"), nil, 0o644) }, "absent"},
		{"entry added to a directory", func(d string) error { return os.WriteFile(filepath.Join(d, "dir", "new"), nil, 0o644) }, "dir"},
		{"link retargeted", func(d string) error {
			os.Remove(filepath.Join(d, "link"))
			return os.Symlink("/usr/lib/acme/acme-1.1", filepath.Join(d, "link"))
		}, "link"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := t.TempDir()
			if err := os.WriteFile(filepath.Join(d, "passwd"), []byte("root\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(filepath.Join(d, "dir"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("/usr/lib/acme/acme-1.0", filepath.Join(d, "link")); err != nil {
				t.Fatal(err)
			}
			var paths []string
			for _, n := range []string{"passwd", "absent", "dir", "link"} {
				paths = append(paths, filepath.Join(d, n))
			}
			f := &fakeTB{}
			apttest.GuardHostFiles(f, paths...)
			if len(f.fatal) > 0 {
				t.Fatalf("snapshot failed: %v", f.fatal)
			}
			if err := tc.change(d); err != nil {
				t.Fatal(err)
			}
			f.finish()
			switch {
			case tc.changed == "" && len(f.fatal) > 0:
				t.Errorf("reported a change that did not happen: %v", f.fatal)
			case tc.changed != "" && (len(f.fatal) != 1 || !strings.Contains(f.fatal[0], filepath.Join(d, tc.changed)+" changed")):
				t.Errorf("reported %v, want a change of %s", f.fatal, tc.changed)
			}
		})
	}
}

// TestChrootGuardRefusesOnTheHost: a script starting with ChrootGuard
// stops before doing anything on a system that is not a test root.
func TestChrootGuardRefusesOnTheHost(t *testing.T) {
	if _, err := os.Stat("/etc/patchring-chroot"); err == nil {
		t.Fatal("the host has /etc/patchring-chroot: it would pass for a test root")
	}
	out, err := exec.Command("sh", "-c", apttest.ChrootGuard+"echo ran\n").CombinedOutput()
	if err == nil || strings.Contains(string(out), "ran") || !strings.Contains(string(out), "refusing to run outside a patchring test root") {
		t.Errorf("guard on the host: %v, %q", err, out)
	}
}

// TestServicePackageScripts: every maintainer script of ServicePackage
// starts with the guard, and the package builds and reads back.
func TestServicePackageScripts(t *testing.T) {
	apttest.RequireTools(t)
	deb := apttest.MustBuildDeb(t, t.TempDir(), apttest.ServicePackage("1.1"))
	for _, script := range []string{"preinst", "postinst", "prerm", "postrm"} {
		out, err := exec.Command("dpkg-deb", "--info", deb, script).Output()
		if err != nil {
			t.Fatalf("dpkg-deb --info %s: %v", script, err)
		}
		body := string(out)
		if !strings.HasPrefix(body, "#!/bin/sh\nset -e\n"+apttest.ChrootGuard) {
			t.Errorf("%s does not start with the guard:\n%s", script, body)
		}
		if !strings.Contains(body, "/etc/acme/fail-"+script+"-1.1") || strings.Contains(body, "DPKG_ROOT\"") {
			t.Errorf("%s:\n%s", script, body)
		}
		if err := exec.Command("sh", "-n", "-c", body).Run(); err != nil {
			t.Errorf("%s is not valid sh: %v", script, err)
		}
	}
}
