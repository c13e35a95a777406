package apt_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/patchring/patchring/platform/apt"
	"github.com/patchring/patchring/platform/apt/apttest"
)

// chrootEnv is a Debian root with a repository and a Backend driving the
// root's own apt and dpkg.
type chrootEnv struct {
	c    *apttest.Chroot
	repo *apttest.Repo
	b    *apt.Backend
}

func newChrootEnv(t *testing.T) *chrootEnv {
	t.Helper()
	if testing.Short() {
		t.Skip("slow: runs apt and dpkg in a Debian root (run without -short, as make test does)")
	}
	apttest.GuardHostDB(t)
	apttest.GuardHostFiles(t, apttest.ServiceHostPaths...)
	e := &chrootEnv{}
	e.repo = apttest.MustStartRepo(t, apttest.RepoConfig{})
	e.c = apttest.MustChroot(t, apttest.ChrootOptions{})
	e.c.MustAddRepo(t, "test", e.repo)
	e.c.RouteTools(t)
	b, err := apt.New(context.Background(), apt.Options{AptConfig: e.c.AptConfig})
	if err != nil {
		t.Fatal(err)
	}
	e.b = b
	return e
}

// inside runs a shell command in the root and returns its trimmed output.
func (e *chrootEnv) inside(t *testing.T, script string) string {
	t.Helper()
	out, err := e.c.Run(context.Background(), "sh", "-c", script)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

// scripts returns the maintainer script runs noted since the last call.
func (e *chrootEnv) scripts(t *testing.T) []string {
	t.Helper()
	p := e.c.Path(apttest.ServiceScriptLog)
	data, err := os.ReadFile(p)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var runs []string
	for _, l := range strings.Split(string(data), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			runs = append(runs, l)
		}
	}
	return runs
}

func (e *chrootEnv) wantVersion(t *testing.T, want string) {
	t.Helper()
	got, err := e.b.InstalledVersion(context.Background(), "acme")
	if err != nil || got != want {
		t.Fatalf("InstalledVersion(acme) = %q, %v; want %q", got, err, want)
	}
	if out := e.inside(t, "acme"); out != "acme "+want {
		t.Fatalf("/usr/bin/acme inside the root prints %q, want acme %s", out, want)
	}
}

// fetchAndPlace is the engine's path for one version: the payload's URI
// and SHA256 from the verified indices, a download checked against the
// hash, then Place into the root's archives.
func (e *chrootEnv) fetchAndPlace(t *testing.T, c apt.Candidate) {
	t.Helper()
	resp, err := http.Get(c.URI)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("fetch %s: %s, %v", c.URI, resp.Status, err)
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != c.SHA256 || int64(len(data)) != c.Size {
		t.Fatalf("payload %s does not match the index (size %d, want %d)", c.URI, len(data), c.Size)
	}
	staged := filepath.Join(t.TempDir(), "payload.deb") // on the host, outside the root
	if err := os.WriteFile(staged, data, 0o644); err != nil {
		t.Fatal(err)
	}
	placed, err := e.b.Place(context.Background(), staged, c.Package, c.Version, c.Arch)
	if err != nil {
		t.Fatal(err)
	}
	if placed != e.c.Path("var/cache/apt/archives/"+c.Filename) {
		t.Fatalf("placed at %s, want in the root's archives", placed)
	}
}

// step runs a named step of a scenario and stops the scenario when it
// fails.
func step(t *testing.T, name string, f func(t *testing.T)) {
	t.Helper()
	if !t.Run(name, f) {
		t.FailNow()
	}
}

// TestChrootMaintainerScripts drives the Backend against a minimal Debian
// 12 root whose own apt-get and dpkg run the maintainer scripts of a
// package written for real systems (apttest.ServicePackage): install, upgrade through the engine's
// path (Place, Install of the exact version without downloading),
// rollback with AllowDowngrades, a postinst failure recovered with dpkg
// --configure -a, removal; dpkg --audit is clean at the end and the
// host's package database, users and files are untouched.
func TestChrootMaintainerScripts(t *testing.T) {
	e := newChrootEnv(t)
	ctx := context.Background()
	dir := t.TempDir()
	debs := map[string]string{}
	for _, v := range []string{"1.0", "1.1"} {
		debs[v] = apttest.MustBuildDeb(t, dir, apttest.ServicePackage(v))
	}
	e.repo.MustAdd(t, debs["1.0"])

	step(t, "paths are the root's", func(t *testing.T) {
		want := apt.Paths{Root: e.c.Root, AdminDir: e.c.AdminDir, Status: filepath.Join(e.c.AdminDir, "status"),
			Archives: e.c.Path("var/cache/apt/archives"), Arch: "amd64"}
		if got := e.b.Paths(); got != want {
			t.Errorf("Paths = %+v\nwant %+v", got, want)
		}
	})

	var uid string
	step(t, "install 1.0: adduser, config, alternatives", func(t *testing.T) {
		if err := e.b.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		if err := e.b.Install(ctx, []apt.PkgVersion{{Name: "acme", Version: "1.0"}}, apt.InstallOptions{}); err != nil {
			t.Fatal(err)
		}
		e.wantVersion(t, "1.0")
		if got, want := e.scripts(t), []string{"1.0 preinst install", "1.0 postinst configure"}; !slices.Equal(got, want) {
			t.Errorf("scripts ran: %q, want %q", got, want)
		}
		pw := e.inside(t, "getent passwd acme")
		f := strings.Split(pw, ":")
		if len(f) != 7 || f[5] != "/var/lib/acme" || f[6] != "/usr/sbin/nologin" {
			t.Fatalf("acme's passwd entry in the root: %q", pw)
		}
		uid = f[2]
		if got := e.inside(t, "stat -c '%U:%G %a' /var/lib/acme"); got != "acme:acme 750" {
			t.Errorf("/var/lib/acme is %q, want acme:acme 750", got)
		}
		// dpkg chrooted into the root for the scripts, as on a real system.
		if got := e.inside(t, "cat /var/lib/acme/dpkg-env"); got != "DPKG_ROOT=[] DPKG_ADMINDIR=[/var/lib/dpkg]" {
			t.Errorf("the postinst's dpkg environment: %q", got)
		}
		conf, err := os.ReadFile(e.c.Path("etc/acme/acme.conf"))
		if err != nil || !bytes.Contains(conf, []byte("binary = /usr/lib/acme/acme-1.0\n")) {
			t.Errorf("acme.conf in the root: %q, %v", conf, err)
		}
	})

	e.repo.MustAdd(t, debs["1.1"])
	step(t, "upgrade to 1.1 from the placed payload", func(t *testing.T) {
		if err := e.b.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		ups, err := e.b.Upgradable(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(ups) != 1 || ups[0].Package != "acme" || ups[0].Version != "1.1" || ups[0].Installed != "1.0" || ups[0].SHA256 == "" {
			t.Fatalf("Upgradable = %+v, want acme 1.0 -> 1.1 with its payload", ups)
		}
		e.fetchAndPlace(t, ups[0])
		before := len(e.repo.Requests())
		if err := e.b.Install(ctx, []apt.PkgVersion{ups[0].PkgVersion()}, apt.InstallOptions{NoDownload: true}); err != nil {
			t.Fatal(err)
		}
		if got := e.repo.Requests()[before:]; len(got) != 0 {
			t.Errorf("apt downloaded %v although the payload was placed", got)
		}
		e.wantVersion(t, "1.1")
		want := []string{"1.0 prerm upgrade 1.1", "1.1 preinst upgrade 1.0 1.1", "1.0 postrm upgrade 1.1", "1.1 postinst configure 1.0"}
		if got := e.scripts(t); !slices.Equal(got, want) {
			t.Errorf("scripts ran: %q, want %q", got, want)
		}
		if got := e.inside(t, "cat /var/lib/acme/migrations; id -u acme"); got != "migrated from 1.0 to 1.1\n"+uid {
			t.Errorf("after the upgrade: %q, want the migration noted and acme still uid %s", got, uid)
		}
		if got := e.inside(t, "readlink /etc/alternatives/acme"); got != "/usr/lib/acme/acme-1.1" {
			t.Errorf("alternative acme -> %q", got)
		}
	})

	step(t, "roll back to 1.0 only with AllowDowngrades", func(t *testing.T) {
		c, err := e.b.Candidate(ctx, "acme", "1.0")
		if err != nil {
			t.Fatal(err)
		}
		e.fetchAndPlace(t, c)
		pv := []apt.PkgVersion{c.PkgVersion()}
		if err := e.b.Install(ctx, pv, apt.InstallOptions{NoDownload: true}); err == nil {
			t.Fatal("a downgrade without AllowDowngrades succeeded")
		}
		e.wantVersion(t, "1.1")
		e.scripts(t)
		if err := e.b.Install(ctx, pv, apt.InstallOptions{NoDownload: true, AllowDowngrades: true}); err != nil {
			t.Fatal(err)
		}
		e.wantVersion(t, "1.0")
		want := []string{"1.1 prerm upgrade 1.0", "1.0 preinst upgrade 1.1 1.0", "1.1 postrm upgrade 1.0", "1.0 postinst configure 1.1"}
		if got := e.scripts(t); !slices.Equal(got, want) {
			t.Errorf("scripts ran: %q, want %q", got, want)
		}
		if got := e.inside(t, "cat /var/lib/acme/downgrades; readlink /etc/alternatives/acme"); got != "downgrade from 1.1 to 1.0\n/usr/lib/acme/acme-1.0" {
			t.Errorf("after the rollback: %q", got)
		}
	})

	step(t, "failing postinst, then dpkg --configure -a", func(t *testing.T) {
		flag := e.c.Path("etc/acme/fail-postinst-1.1")
		if err := os.WriteFile(flag, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		err := e.b.Install(ctx, []apt.PkgVersion{{Name: "acme", Version: "1.1"}}, apt.InstallOptions{})
		var ie *apt.InstallError
		if !errors.As(err, &ie) || !slices.Contains(ie.Failed, "acme") || !strings.Contains(ie.Output, "failing on demand") {
			t.Fatalf("install with a failing postinst: %v (want an InstallError naming acme with the script's message)", err)
		}
		if v, err := e.b.InstalledVersion(ctx, "acme"); v != "1.1" || !errors.Is(err, apt.ErrNotConfigured) {
			t.Fatalf("after the failure InstalledVersion = %q, %v; want 1.1 not configured", v, err)
		}
		if bad, err := e.b.Audit(ctx); err != nil || !slices.Contains(bad, "acme") {
			t.Fatalf("Audit = %v, %v; want acme", bad, err)
		}
		if err := os.Remove(flag); err != nil {
			t.Fatal(err)
		}
		e.scripts(t)
		if err := e.b.ConfigurePending(ctx); err != nil {
			t.Fatal(err)
		}
		e.wantVersion(t, "1.1")
		if got := e.scripts(t); !slices.Equal(got, []string{"1.1 postinst configure 1.0"}) {
			t.Errorf("dpkg --configure -a ran %q", got)
		}
		if bad, err := e.b.Audit(ctx); err != nil || len(bad) != 0 {
			t.Fatalf("Audit after recovery = %v, %v", bad, err)
		}
	})

	step(t, "remove", func(t *testing.T) {
		if err := e.b.Remove(ctx, "acme"); err != nil {
			t.Fatal(err)
		}
		if v, err := e.b.InstalledVersion(ctx, "acme"); v != "" || err != nil {
			t.Fatalf("after Remove InstalledVersion = %q, %v", v, err)
		}
		if got := e.scripts(t); !slices.Equal(got, []string{"1.1 prerm remove", "1.1 postrm remove"}) {
			t.Errorf("scripts ran: %q", got)
		}
		if got := e.inside(t, "test -e /usr/bin/acme || echo gone; getent passwd acme >/dev/null && echo user kept"); got != "gone\nuser kept" {
			t.Errorf("after remove: %q", got)
		}
	})

	if report, err := e.c.Audit(ctx); err != nil || report != "" {
		t.Fatalf("the root's dpkg --audit: %q, %v", report, err)
	}
}
