package apt_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/patchring/patchring/platform/apt"
	"github.com/patchring/patchring/platform/apt/apttest"
)

// vendorApp is a package no repository carries (a catalog payload) that
// depends on libacme, which the repository does carry.
func vendorApp(version string) apttest.Package {
	return apttest.Package{
		Name: "vendor-app", Version: version, Depends: []string{"libacme (>= 1.0)"},
		Files: []apttest.File{
			{Path: "/usr/share/vendor-app/VERSION", Body: []byte(version + "\n")},
			{Path: "/etc/vendor-app/app.conf", Body: []byte("# shipped with " + version + "\n"), Conffile: true},
		},
	}
}

func TestDebPackage(t *testing.T) {
	e := newEnv(t, apttest.RepoConfig{})
	for _, tc := range []struct {
		name string
		pkg  apttest.Package
		want apt.PkgVersion
	}{
		{"plain", apttest.Package{Name: "vendor-app", Version: "2.0"}, apt.PkgVersion{Name: "vendor-app", Version: "2.0", Arch: "amd64"}},
		{"epoch and revision, arch all", apttest.Package{Name: "vendor-data", Version: "1:2.0+dfsg-3~bpo1", Arch: "all"},
			apt.PkgVersion{Name: "vendor-data", Version: "1:2.0+dfsg-3~bpo1", Arch: "all"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			deb := apttest.MustBuildDeb(t, t.TempDir(), tc.pkg)
			got, err := e.b.DebPackage(context.Background(), deb)
			if err != nil || got != tc.want {
				t.Errorf("DebPackage = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
	garbage := filepath.Join(t.TempDir(), "garbage.deb")
	if err := os.WriteFile(garbage, []byte("not an ar archive"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := e.b.DebPackage(context.Background(), garbage); err == nil {
		t.Error("DebPackage of garbage succeeded")
	}
}

// TestInstallFilesCycle installs a package from a file (its dependency
// from the repository), upgrades it from a file, refuses a downgrade
// unless asked, then downgrades; configuration files stay as the admin
// changed them.
func TestInstallFilesCycle(t *testing.T) {
	lib := apttest.Package{Name: "libacme", Version: "1.0", Files: []apttest.File{{Path: "/usr/lib/libacme.so.1", Body: []byte("lib")}}}
	e := newEnv(t, apttest.RepoConfig{}, lib)
	e.refresh(t)
	ctx := context.Background()
	dir := t.TempDir()
	v20 := apttest.MustBuildDeb(t, dir, vendorApp("2.0"))
	v21 := apttest.MustBuildDeb(t, dir, vendorApp("2.1"))

	if err := e.b.InstallFiles(ctx, []string{v20}, apt.InstallOptions{}); err != nil {
		t.Fatalf("install 2.0 from a file: %v", err)
	}
	e.wantVersion(t, "vendor-app", "2.0")
	e.wantVersion(t, "libacme", "1.0") // resolved from the repository
	conf := e.sb.Path("etc/vendor-app/app.conf")
	if err := os.WriteFile(conf, []byte("# changed by the admin\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	if err := e.b.InstallFiles(ctx, []string{v21}, apt.InstallOptions{}); err != nil {
		t.Fatalf("upgrade to 2.1 from a file: %v", err)
	}
	e.wantVersion(t, "vendor-app", "2.1")
	if b, _ := os.ReadFile(e.sb.Path("usr/share/vendor-app/VERSION")); string(b) != "2.1\n" {
		t.Errorf("VERSION file after the upgrade = %q", b)
	}

	err := e.b.InstallFiles(ctx, []string{v20}, apt.InstallOptions{})
	var ie *apt.InstallError
	if !errors.As(err, &ie) || !slices.ContainsFunc(ie.Packages, func(p apt.PkgVersion) bool { return p.Name == "vendor-app" && p.Version == "2.0" }) {
		t.Fatalf("downgrade without AllowDowngrades: err = %v, want an *InstallError naming vendor-app=2.0", err)
	}
	e.wantVersion(t, "vendor-app", "2.1")

	if err := e.b.InstallFiles(ctx, []string{v20}, apt.InstallOptions{AllowDowngrades: true}); err != nil {
		t.Fatalf("downgrade to 2.0 from a file: %v", err)
	}
	e.wantVersion(t, "vendor-app", "2.0")
	if b, _ := os.ReadFile(conf); string(b) != "# changed by the admin\n" {
		t.Errorf("the admin's configuration file was replaced: %q", b)
	}
	if out, err := e.sb.Run(ctx, "dpkg", append(e.sb.DpkgArgs(), "--audit")...); err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("dpkg --audit: %v %s", err, out)
	}
}

func TestInstallFilesRefuses(t *testing.T) {
	e := newEnv(t, apttest.RepoConfig{})
	e.refresh(t)
	dir := t.TempDir()
	good := apttest.MustBuildDeb(t, dir, apttest.Package{Name: "vendor-app", Version: "2.0"})
	garbage := filepath.Join(dir, "garbage.deb")
	if err := os.WriteFile(garbage, []byte("not an ar archive"), 0o644); err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(mustGetwd(t), good)
	if err != nil {
		t.Fatal(err)
	}
	failing := apttest.MustBuildDeb(t, t.TempDir(), apttest.Package{Name: "vendor-broken", Version: "1.0",
		Postinst: "#!/bin/sh\necho 'vendor-broken: cannot start' >&2\nexit 1\n"})
	missingDep := apttest.MustBuildDeb(t, t.TempDir(), apttest.Package{Name: "vendor-needy", Version: "1.0", Depends: []string{"libnowhere"}})

	for _, tc := range []struct {
		name  string
		paths []string
		opts  apt.InstallOptions
		want  string // in the error
	}{
		{"relative path", []string{rel}, apt.InstallOptions{}, "not an absolute path"},
		{"not a .deb name", []string{strings.TrimSuffix(good, ".deb")}, apt.InstallOptions{}, "not an absolute path of a .deb"},
		{"missing file", []string{filepath.Join(dir, "missing.deb")}, apt.InstallOptions{}, "no such file"},
		{"directory", []string{filepath.Join(dir, "sub.deb")}, apt.InstallOptions{}, "not a regular file"},
		{"not a package", []string{garbage}, apt.InstallOptions{}, "dpkg-deb"},
		{"no download", []string{good}, apt.InstallOptions{NoDownload: true}, "NoDownload"},
		{"unsatisfiable dependency", []string{missingDep}, apt.InstallOptions{}, "vendor-needy=1.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "directory" {
				if err := os.Mkdir(tc.paths[0], 0o755); err != nil {
					t.Fatal(err)
				}
			}
			err := e.b.InstallFiles(context.Background(), tc.paths, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
			for _, pkg := range []string{"vendor-app", "vendor-needy"} {
				e.wantVersion(t, pkg, "")
			}
		})
	}

	t.Run("postinst fails", func(t *testing.T) {
		err := e.b.InstallFiles(context.Background(), []string{failing}, apt.InstallOptions{})
		var ie *apt.InstallError
		if !errors.As(err, &ie) || !slices.Contains(ie.Failed, "vendor-broken") || !strings.Contains(ie.Output, "cannot start") {
			t.Fatalf("err = %#v, want an *InstallError with dpkg failing on vendor-broken", err)
		}
		if _, err := e.b.InstalledVersion(context.Background(), "vendor-broken"); !errors.Is(err, apt.ErrNotConfigured) {
			t.Errorf("InstalledVersion after the failed postinst: %v, want ErrNotConfigured", err)
		}
	})
}

func mustGetwd(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return wd
}
