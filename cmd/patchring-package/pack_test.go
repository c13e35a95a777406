package main

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patchring/patchring/daemon/config"
	"github.com/patchring/patchring/internal/testutil"
	"github.com/patchring/patchring/platform/apt/apttest"
)

const testDescribe = "v1.2.0-rc1-3-gabc1234"

var (
	ldflags   = "-X " + module + "/internal/version.Version=" + testDescribe
	daemonBin = &testutil.Binary{Pkg: module + "/cmd/patchringd", BuildFlags: []string{"-trimpath", "-ldflags", ldflags}}
	cliBin    = &testutil.Binary{Pkg: module + "/cmd/patchring", BuildFlags: []string{"-trimpath", "-ldflags", ldflags}}
)

func TestMain(m *testing.M) {
	code := m.Run()
	daemonBin.Remove()
	cliBin.Remove()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// built holds the real packages, packed once per test process: packing
// 60 MB of binaries is most of this package's time under the race
// detector, and the tests that install them only read them.
var built struct {
	once  sync.Once
	dir   string
	files []string
	err   error
}

// realPackages returns the .deb and the .rpm of this machine's binaries,
// packed on first use.
func realPackages(t *testing.T) []string {
	t.Helper()
	p := testPayload(t)
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "patchring-package-test-*")
		if built.err == nil {
			built.files, built.err = pack(p, built.dir)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.files
}

// testPayload builds this machine's binaries (once per test process) and
// the service files and completions from them, as `make package` does.
func testPayload(t *testing.T) *payload {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("packaging tests need root for private mount namespaces (make test runs as root)")
	}
	daemon, cli := daemonBin.Path(t), cliBin.Path(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	unit, sysv, err := serviceFiles(ctx, daemon)
	if err != nil {
		t.Fatal(err)
	}
	comp, err := completions(ctx, cli)
	if err != nil {
		t.Fatal(err)
	}
	v, err := versionFromDescribe(testDescribe)
	if err != nil {
		t.Fatal(err)
	}
	return &payload{Version: v, Arch: runtime.GOARCH, Daemon: daemon, CLI: cli, Unit: unit, SysV: sysv,
		Completions: comp, MTime: time.Unix(1764806400, 0).UTC(),
		// Fast compression: the race detector makes gzip of 60 MB slow.
		Compression: "gzip:1"}
}

func hostRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestServiceFilesAreKardianos: the packaged unit is the one patchringd
// install writes, pinned by cmd/patchringd's golden file, and the SysV
// script is kardianos/service's with the packaged paths.
func TestServiceFilesAreKardianos(t *testing.T) {
	p := testPayload(t)
	golden, err := os.ReadFile(filepath.Join("..", "patchringd", "testdata", "patchringd.service.golden"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p.Unit, golden) {
		t.Errorf("packaged unit differs from cmd/patchringd's golden file:\n%s", p.Unit)
	}
	for _, want := range []string{"### BEGIN INIT INFO", `cmd="/usr/sbin/patchringd "run" "--config=/etc/patchring/patchringd.yaml"`, "pid_file="} {
		if !bytes.Contains(p.SysV, []byte(want)) {
			t.Errorf("SysV script lacks %q:\n%s", want, p.SysV)
		}
	}
	for sh, c := range p.Completions {
		if !bytes.Contains(c, []byte("patchring")) {
			t.Errorf("%s completion does not mention patchring:\n%.300s", sh, c)
		}
	}
	// The shipped configuration is all comments: it parses to the defaults.
	data, err := embedded.ReadFile("files/patchringd.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	if err := config.Parse(pathConfig, data, &cfg); err != nil {
		t.Errorf("shipped config: %v", err)
	}
}

// TestPackReproducible builds the packages twice from the same inputs and
// compares the bytes; a different source date gives different packages.
func TestPackReproducible(t *testing.T) {
	p := testPayload(t)
	// Reproducibility is pack's property, not the binaries': small
	// stand-ins keep three builds quick under the race detector.
	p.Daemon, p.CLI = standIn(t, "patchringd"), standIn(t, "patchring")
	a, b := t.TempDir(), t.TempDir()
	fa, err := pack(p, a)
	if err != nil {
		t.Fatal(err)
	}
	fb, err := pack(p, b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range fa {
		da, _ := os.ReadFile(fa[i])
		db, _ := os.ReadFile(fb[i])
		if len(da) == 0 || !bytes.Equal(da, db) {
			t.Errorf("%s: two builds differ (%d and %d bytes)", filepath.Base(fa[i]), len(da), len(db))
		}
	}
	if got := filepath.Base(fa[0]); got != "patchring_1.2.0~rc1+git3.gabc1234-1_"+runtime.GOARCH+".deb" {
		t.Errorf("deb file name %s", got)
	}
	p.MTime = p.MTime.Add(time.Hour)
	c := t.TempDir()
	fc, err := pack(p, c)
	if err != nil {
		t.Fatal(err)
	}
	da, _ := os.ReadFile(fa[0])
	dc, _ := os.ReadFile(fc[0])
	if bytes.Equal(da, dc) {
		t.Error("packages with another source date are identical: the date is not used")
	}
}

var wantFiles = []string{pathDaemon, pathCLI, pathUnit, pathSysV, pathConfig, pathDesktop,
	"/usr/share/bash-completion/completions/patchring", "/usr/share/fish/vendor_completions.d/patchring.fish", pathAptSnippet}

// TestRPM checks the .rpm with Debian's rpm: its file list, version and
// scripts, and an install into and erase from a scratch root.
func TestRPM(t *testing.T) {
	if _, err := exec.LookPath("rpm"); err != nil {
		t.Fatal("rpm not found: install the Debian package rpm")
	}
	files := realPackages(t)
	rpmFile := files[1]
	list := hostRun(t, "rpm", "-qpl", rpmFile)
	for _, f := range append(wantFiles, "/usr/share/zsh/site-functions/_patchring") {
		if !strings.Contains(list, f+"\n") {
			t.Errorf("rpm -qpl lacks %s:\n%s", f, list)
		}
	}
	if got := hostRun(t, "rpm", "-qp", "--queryformat", "%{NAME} %{VERSION} %{RELEASE} %{ARCH}", rpmFile); got != "patchring 1.2.0~rc1 1.git3.gabc1234 "+rpmArch[runtime.GOARCH] {
		t.Errorf("rpm header: %q", got)
	}
	if cfg := hostRun(t, "rpm", "-qpc", rpmFile); strings.TrimSpace(cfg) != pathConfig {
		t.Errorf("rpm config files: %q, want %s", cfg, pathConfig)
	}
	scripts := hostRun(t, "rpm", "-qp", "--scripts", rpmFile)
	for _, want := range []string{"postinstall scriptlet", "preuninstall scriptlet", "postuninstall scriptlet",
		"install -d -m 0700 /var/lib/patchring", "systemctl enable patchringd.service", "chkconfig --del patchringd"} {
		if !strings.Contains(scripts, want) {
			t.Errorf("rpm --scripts lacks %q:\n%s", want, scripts)
		}
	}
	// A scratch root has no shell to run scriptlets in: those run in
	// TestDebInstallInChroot's Debian root with the same logic.
	root := t.TempDir()
	hostRun(t, "rpm", "--root", root, "--dbpath", "/var/lib/rpm", "--initdb")
	hostRun(t, "rpm", "--root", root, "--dbpath", "/var/lib/rpm", "-i", "--nodeps", "--noscripts", rpmFile)
	for _, f := range wantFiles {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Errorf("after rpm -i: %v", err)
		}
	}
	if fi, err := os.Stat(filepath.Join(root, pathDaemon)); err == nil && fi.Mode().Perm() != 0o755 {
		t.Errorf("%s mode %v", pathDaemon, fi.Mode())
	}
	if q := hostRun(t, "rpm", "--root", root, "--dbpath", "/var/lib/rpm", "-q", "patchring"); !strings.HasPrefix(q, "patchring-1.2.0~rc1-1.git3.gabc1234") {
		t.Errorf("rpm -q: %q", q)
	}
	hostRun(t, "rpm", "--root", root, "--dbpath", "/var/lib/rpm", "-e", "--nodeps", "--noscripts", "patchring")
	for _, f := range wantFiles {
		if _, err := os.Stat(filepath.Join(root, f)); err == nil {
			t.Errorf("after rpm -e, %s is still there", f)
		}
	}
}

// TestDebInstallInChroot installs the .deb into a fresh Debian 12 root with
// dpkg -i (in the root's private mount namespace): files, maintainer
// scripts, patchringd --version, the SysV service's start and stop (the
// root's policy-rc.d keeps the postinst from starting it), systemd-analyze
// verify of the unit, then remove and purge leave nothing behind.
func TestDebInstallInChroot(t *testing.T) {
	files := realPackages(t)
	c := apttest.MustChroot(t, apttest.ChrootOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	in := func(name string, args ...string) string {
		t.Helper()
		out, err := c.Run(ctx, name, args...)
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	// A daemon the test started is stopped by the PID its init script
	// recorded, also when the test fails halfway.
	pidFile := c.Path("var/run/patchringd.pid")
	t.Cleanup(func() {
		b, err := os.ReadFile(pidFile)
		if err != nil {
			return
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 1 {
			return
		}
		if exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe"); err == nil && strings.HasSuffix(exe, pathDaemon) {
			if proc, err := os.FindProcess(pid); err == nil {
				proc.Kill()
			}
		}
	})
	before := snapshotRoot(t, c.Root)

	if err := c.DpkgInstall(ctx, files[0]); err != nil {
		t.Fatal(err)
	}
	if st := in("dpkg-query", "-W", "-f", "${Status} ${Version}", "patchring"); st != "install ok installed 1.2.0~rc1+git3.gabc1234-1" {
		t.Errorf("dpkg status: %q", st)
	}
	for _, f := range append(wantFiles, "/usr/share/zsh/vendor-completions/_patchring") {
		if _, err := os.Stat(c.Path(f)); err != nil {
			t.Errorf("after dpkg -i: %v", err)
		}
	}
	if fi, err := os.Stat(c.Path("var/lib/patchring")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("state dir after postinst: %v %v", fi, err)
	}
	if conf := in("cat", "/var/lib/dpkg/info/patchring.conffiles"); strings.TrimSpace(conf) != pathConfig {
		t.Errorf("conffiles: %q", conf)
	}
	if links, _ := filepath.Glob(c.Path("etc/rc2.d/S*patchringd")); len(links) != 1 {
		t.Errorf("postinst did not enable the SysV service: rc2.d links %v", links)
	}
	if _, err := os.Stat(pidFile); err == nil {
		t.Error("postinst started the service although policy-rc.d forbids it")
	}
	if v := in("patchringd", "--version"); v != "patchringd version "+testDescribe+"\n" {
		t.Errorf("patchringd --version: %q", v)
	}

	// systemd-analyze verify accepts the installed unit. The root has no
	// systemd, so it runs on the host, in a private mount namespace where
	// the root's binary stands at the unit's path (tmpfs over /usr/sbin).
	if _, err := exec.LookPath("systemd-analyze"); err == nil {
		script := `set -e; mount -t tmpfs patchring-test /usr/sbin; cp "$1` + pathDaemon + `" ` + pathDaemon + `; exec systemd-analyze verify "$1` + pathUnit + `"`
		out, err := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", c.Root).CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
	} else {
		t.Error("systemd-analyze not found: install the Debian package systemd")
	}

	// The SysV service starts and stops, running the packaged agent.
	in("/etc/init.d/patchringd", "start")
	sock := c.Path("run/patchring/patchringd.sock")
	if err := testutil.Poll(90*time.Second, func() error { _, err := os.Stat(sock); return err }); err != nil {
		log, _ := os.ReadFile(c.Path("var/log/patchringd.err"))
		t.Fatalf("the agent started by the init script made no socket in 90s: %v\n%s", err, log)
	}
	if st := in("/etc/init.d/patchringd", "status"); !strings.Contains(st, "Running") {
		t.Errorf("init script status: %q", st)
	}
	if st := in("patchring", "status"); !strings.Contains(st, "No signed policy configured") {
		t.Errorf("patchring status of an unconfigured agent does not say what to do:\n%s", st)
	}
	if log, _ := os.ReadFile(c.Path("var/log/patchringd.err")); !bytes.Contains(log, []byte("no signed policy configured")) {
		t.Errorf("the agent's log does not say what to do:\n%s", log)
	}

	// The admin's second step: the token dropped beside the config. The
	// running agent enrolls with it, removes it and follows the fleet.
	tok, err := os.ReadFile(enrollToken(t, cliBin.Path(t)))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.Path("etc/patchring/enroll.token"), tok, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := testutil.Poll(90*time.Second, func() error {
		if _, err := os.Stat(c.Path("var/lib/patchring/node.credential")); err != nil {
			return err
		}
		if _, err := os.Stat(c.Path("etc/patchring/enroll.token")); err == nil {
			return errors.New("the token file is still there")
		}
		out, err := c.Run(ctx, "patchring", "status")
		if err != nil {
			return err
		}
		if strings.Contains(string(out), "No signed policy configured") {
			return errors.New("patchring status: still no policy")
		}
		return nil
	}); err != nil {
		log, _ := os.ReadFile(c.Path("var/log/patchringd.err"))
		t.Fatalf("the installed agent did not enroll with the dropped token in 90s: %v\n%s", err, log)
	}
	in("/etc/init.d/patchringd", "stop")
	if _, err := os.Stat(pidFile); err == nil {
		t.Error("pid file left after stop")
	}

	// Remove: no unit, no init script, no autostart, no socket; the
	// configuration and the state stay. Purge: nothing left.
	in("dpkg", "--remove", "patchring")
	for _, f := range []string{pathDaemon, pathCLI, pathUnit, pathSysV, pathDesktop, "/run/patchring"} {
		if _, err := os.Stat(c.Path(f)); err == nil {
			t.Errorf("after dpkg --remove, %s is still there", f)
		}
	}
	if links, _ := filepath.Glob(c.Path("etc/rc?.d/*patchringd")); len(links) != 0 {
		t.Errorf("after dpkg --remove, rc links remain: %v", links)
	}
	for _, f := range []string{pathConfig, "/var/lib/patchring/state.db"} {
		if _, err := os.Stat(c.Path(f)); err != nil {
			t.Errorf("dpkg --remove removed %s: %v", f, err)
		}
	}
	in("dpkg", "--purge", "patchring")
	after := snapshotRoot(t, c.Root)
	for p := range after {
		if !before[p] {
			t.Errorf("after purge, %s is new in the root", p)
		}
	}
}

// snapshotRoot lists the paths in root that a package could leave behind
// (dpkg's own database and logs, and /tmp, excluded).
func snapshotRoot(t *testing.T, root string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(p, root)
		switch rel {
		case "/proc", "/dev", "/tmp", "/var/lib/dpkg", "/var/cache", "/root":
			return filepath.SkipDir
		case "/var/log/dpkg.log", "/var/log/alternatives.log":
			return nil
		}
		out[rel] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// standIn writes a 256 KiB executable file of fixed pseudo-random bytes
// named name, in place of a real binary.
func standIn(t *testing.T, name string) string {
	t.Helper()
	b := make([]byte, 256<<10)
	rand.NewChaCha8([32]byte{byte(len(name))}).Read(b)
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}
