package apttest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// chrootTools are the tools RouteTools runs inside the system.
var chrootTools = []string{"apt-get", "apt-cache", "apt-config", "apt-mark", "dpkg", "dpkg-query"}

// RootImage returns the cached tarball of the system the options
// describe, building it with mmdebstrap when it is not there yet. Builds
// are serialised between processes with a lock file next to the tarball,
// so parallel test binaries build it once. mmdebstrap runs as root in
// mode root inside a private mount namespace of its own (its mounts never
// reach the host) with its temporary files in a directory RootImage
// removes.
func RootImage(ctx context.Context, opts ChrootOptions) (string, error) {
	opts = opts.withDefaults()
	mirror, from, err := chooseMirror(opts, "/etc/apt")
	if err != nil {
		return "", fmt.Errorf("debian root image: %w", err)
	}
	path := opts.cachePath(mirror)
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if err := os.MkdirAll(opts.CacheDir, 0o755); err != nil {
		return "", fmt.Errorf("debian root image: %w", err)
	}
	unlock, err := lockFile(ctx, path+".lock")
	if err != nil {
		return "", fmt.Errorf("debian root image: %w", err)
	}
	defer unlock()
	if _, err := os.Stat(path); err == nil { // built while we waited
		return path, nil
	}
	// The image's work directories exist only while their builder holds
	// the lock: any left is from a build that was killed.
	work := "patchring-mmdebstrap-work-" + opts.cacheKey(mirror) + "-"
	stale, _ := filepath.Glob(filepath.Join(opts.CacheDir, work+"*"))
	for _, d := range stale {
		removeUnmounted(d)
	}
	if err := buildImage(ctx, opts, mirror, path, work); err != nil {
		return "", fmt.Errorf("debian root image %s from %s (mirror from %s): %w", opts.Suite, mirror, from, err)
	}
	return path, nil
}

// lockFile takes an exclusive flock on p, polling so that ctx can end the
// wait.
func lockFile(ctx context.Context, p string) (func(), error) {
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", p, err)
		}
		t := time.NewTimer(250 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			f.Close()
			return nil, fmt.Errorf("wait for %s (another process is building the image): %w", p, ctx.Err())
		case <-t.C:
		}
	}
}

// hostAcquireOpts are the host apt's proxy and validity settings, as
// mmdebstrap --aptopt values: mmdebstrap's apt reads no host
// configuration, and the host's mirror may need them.
func hostAcquireOpts(ctx context.Context) (opts []string, proxy string) {
	// By absolute path: RouteTools may have put a root's apt-config first
	// in PATH.
	out, err := exec.CommandContext(ctx, "/usr/bin/apt-config", "dump", "--format", "%f\t%v%n",
		"Acquire::http::Proxy", "Acquire::https::Proxy", "Acquire::Check-Valid-Until", "Acquire::Check-Date").Output()
	if err != nil {
		return nil, ""
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "\t")
		if !ok || v == "" || strings.ContainsAny(k+v, "\"\n;{}") {
			continue
		}
		opts = append(opts, fmt.Sprintf("%s %q;", k, v))
		if k == "Acquire::http::Proxy" {
			proxy = v
		}
	}
	return opts, proxy
}

// checkMirror fetches the suite's InRelease so that an unreachable mirror
// is reported at once and clearly, not after mmdebstrap's retries.
func checkMirror(ctx context.Context, mirror, suite, proxy string) error {
	u, err := url.Parse(mirror)
	if err != nil {
		return fmt.Errorf("mirror URL: %w", err)
	}
	if u.Scheme == "file" {
		if _, err := os.Stat(filepath.Join(u.Path, "dists", suite)); err != nil {
			return fmt.Errorf("mirror unreachable: %w", err)
		}
		return nil
	}
	target := strings.TrimSuffix(mirror, "/") + "/dists/" + suite + "/InRelease"
	tr := &http.Transport{Proxy: http.ProxyFromEnvironment}
	if proxy != "" && proxy != "DIRECT" {
		if pu, err := url.Parse(proxy); err == nil {
			tr.Proxy = http.ProxyURL(pu)
		}
	}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return fmt.Errorf("mirror unreachable: GET %s: %w", target, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("mirror unusable: GET %s: %s", target, resp.Status)
	}
	return nil
}

// buildImage runs mmdebstrap in a new directory whose name starts with
// workPrefix and renames its tarball to path.
func buildImage(ctx context.Context, opts ChrootOptions, mirror, path, workPrefix string) error {
	if os.Geteuid() != 0 {
		return errors.New("mmdebstrap --mode=root needs root")
	}
	for _, t := range []struct{ tool, pkg string }{{"mmdebstrap", "mmdebstrap"}, {"unshare", "util-linux"}, {"tar", "tar"}} {
		if _, err := exec.LookPath(t.tool); err != nil {
			return fmt.Errorf("%s not found in PATH: install the Debian package %q", t.tool, t.pkg)
		}
	}
	aptOpts, proxy := hostAcquireOpts(ctx)
	if err := checkMirror(ctx, mirror, opts.Suite, proxy); err != nil {
		return fmt.Errorf("%w (set %s to a reachable Debian mirror)", err, MirrorEnv)
	}
	work, err := os.MkdirTemp(opts.CacheDir, workPrefix)
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	tmp := filepath.Join(work, "image.tar")
	args := []string{"--mount", "--propagation", "private", "--", "mmdebstrap",
		"--mode=root", "--format=tar", "--variant=" + opts.Variant, "--architectures=" + opts.Arch}
	if len(opts.Include) > 0 {
		args = append(args, "--include="+strings.Join(opts.Include, ","))
	}
	for _, o := range chrootDpkgOpts {
		args = append(args, "--dpkgopt="+o)
	}
	for _, o := range append(aptOpts, `Acquire::Retries "3";`) {
		args = append(args, "--aptopt="+o)
	}
	args = append(args, opts.Suite, tmp, mirror)
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "unshare", args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = append(withoutEnv(os.Environ(), "TMPDIR", "APT_CONFIG", "LANG", "LANGUAGE", "LC_ALL"), "TMPDIR="+work, "LC_ALL=C.UTF-8")
	cmd.Dir = work
	// mmdebstrap runs apt and dpkg: a cancelled build ends them all.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("mmdebstrap: %w\n%s", err, tail(out.String(), 4<<10))
	}
	f, err := os.Open(tmp)
	if err != nil {
		return err
	}
	serr := f.Sync()
	f.Close()
	if serr != nil {
		return serr
	}
	return os.Rename(tmp, path)
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

func withoutEnv(env []string, keys ...string) []string {
	var res []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		drop := false
		for _, d := range keys {
			drop = drop || k == d
		}
		if !drop {
			res = append(res, kv)
		}
	}
	return res
}

// NewChroot extracts the system the options describe (RootImage builds it
// the first time) into a new temporary directory and prepares it: empty
// apt sources, the apt configuration, policy-rc.d, the test-root marker
// and the runner. Close removes it.
func NewChroot(ctx context.Context, opts ChrootOptions) (*Chroot, error) {
	for _, t := range []struct{ tool, pkg string }{{"unshare", "util-linux"}, {"mount", "mount"}, {"chroot", "coreutils"}, {"tar", "tar"}} {
		if _, err := exec.LookPath(t.tool); err != nil {
			return nil, fmt.Errorf("new chroot: %s not found in PATH: install the Debian package %q", t.tool, t.pkg)
		}
	}
	opts = opts.withDefaults()
	image, err := RootImage(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("new chroot: %w", err)
	}
	if opts.TempDir == "" {
		opts.TempDir = defaultChrootTempDir()
	}
	sweepStaleChroots(opts.TempDir)
	dir, err := os.MkdirTemp(opts.TempDir, "patchring-chroot-")
	if err != nil {
		return nil, fmt.Errorf("new chroot: %w", err)
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, fmt.Errorf("new chroot: %w", err)
	}
	self, _ := processIdentity(os.Getpid())
	if err := os.WriteFile(filepath.Join(dir, chrootOwnerFile), []byte(self), 0o644); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("new chroot: %w", err)
	}
	c := &Chroot{
		Root:   filepath.Join(dir, "root"),
		Arch:   opts.Arch,
		BinDir: filepath.Join(dir, "bin"),
		Image:  image,
		dir:    dir,
	}
	c.AdminDir = filepath.Join(c.Root, "var/lib/dpkg")
	c.AptConfig = filepath.Join(c.Root, "etc/apt/patchring-chroot.conf")
	if err := c.setup(ctx); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("new chroot: %w", err)
	}
	return c, nil
}

// chrootOwnerFile, in each system's directory, identifies the process that
// made it (processIdentity), so that the systems of a test process that
// died before its cleanup (a test binary's timeout, kill -9) are removed
// by the next NewChroot instead of filling /dev/shm.
const chrootOwnerFile = "owner"

// processIdentity is "pid starttime" of a running process, from
// /proc/pid/stat; ok is false when there is no such process.
func processIdentity(pid int) (id string, ok bool) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", false
	}
	// Fields after the command, which is in parentheses and may hold
	// anything: state is field 3, starttime field 22.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return "", false
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 20 {
		return "", false
	}
	return fmt.Sprintf("%d %s", pid, f[19]), true
}

// sweepStaleChroots removes systems in dir whose owner process has ended.
// It is best effort: what it cannot judge or remove it leaves.
func sweepStaleChroots(dir string) {
	matches, _ := filepath.Glob(filepath.Join(dir, "patchring-chroot-*"))
	for _, m := range matches {
		owner, err := os.ReadFile(filepath.Join(m, chrootOwnerFile))
		if err != nil {
			continue // being set up, or not ours
		}
		var pid int
		if _, err := fmt.Sscanf(string(owner), "%d", &pid); err != nil || pid <= 0 {
			continue
		}
		if id, ok := processIdentity(pid); ok && id == string(owner) {
			continue
		}
		removeUnmounted(m)
	}
}

// removeUnmounted removes dir unless something is mounted below it.
func removeUnmounted(dir string) {
	if mounts, err := mountsBelow(dir); err == nil && len(mounts) == 0 {
		_ = os.RemoveAll(dir)
	}
}

// defaultChrootTempDir is where systems are extracted when
// ChrootOptions.TempDir is empty: /dev/shm when it is a tmpfs that allows
// executables and has at least 1 GiB free (extracting there takes a tenth
// of a second, on a disk several seconds), else os.TempDir().
func defaultChrootTempDir() string {
	const shm = "/dev/shm"
	var st unix.Statfs_t
	if err := unix.Statfs(shm, &st); err == nil && st.Type == unix.TMPFS_MAGIC &&
		st.Flags&unix.ST_NOEXEC == 0 && st.Flags&unix.ST_RDONLY == 0 && st.Bavail*uint64(st.Bsize) >= 1<<30 {
		return shm
	}
	return os.TempDir()
}

// MustChroot is NewChroot for tests: it fails t on error (naming what to
// install or which mirror it tried) and removes the system when the test
// ends.
func MustChroot(t TB, opts ChrootOptions) *Chroot {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	c, err := NewChroot(ctx, opts)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Fatalf("%v", err)
		}
	})
	return c
}

func (c *Chroot) setup(ctx context.Context) error {
	if err := os.MkdirAll(c.Root, 0o755); err != nil {
		return err
	}
	var out bytes.Buffer
	// Device nodes are left out: the runner mounts /dev.
	tar := exec.CommandContext(ctx, "tar", "--extract", "--file", c.Image, "--directory", c.Root,
		"--numeric-owner", "--preserve-permissions", "--exclude=./dev/*")
	tar.Stdout, tar.Stderr = &out, &out
	if err := tar.Run(); err != nil {
		return fmt.Errorf("extract %s: %w: %s", c.Image, err, tail(out.String(), 2<<10))
	}
	for _, d := range []string{"proc", "dev", "etc/apt/sources.list.d", "var/cache/apt/archives/partial", "var/lib/apt/lists/partial"} {
		if _, err := os.Stat(c.Path(d)); err != nil {
			return fmt.Errorf("extracted system is incomplete: %w", err)
		}
	}
	entries, err := os.ReadDir(c.Path("etc/apt/sources.list.d"))
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.Remove(filepath.Join(c.Path("etc/apt/sources.list.d"), e.Name())); err != nil {
			return err
		}
	}
	files := []struct {
		rel  string
		body string
		mode os.FileMode
	}{
		{"etc/apt/sources.list", "", 0o644},
		{"etc/patchring-chroot", "patchring test root extracted from " + c.Image + "\n", 0o644},
		{"usr/sbin/policy-rc.d", "#!/bin/sh\n# patchring test root: services are never started.\nexit 101\n", 0o755},
		{"etc/apt/patchring-chroot.conf", c.aptConfigText(), 0o644},
	}
	for _, f := range files {
		if err := os.WriteFile(c.Path(f.rel), []byte(f.body), f.mode); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(c.BinDir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(c.Runner(), []byte(c.runnerScript()), 0o755); err != nil {
		return err
	}
	for _, tool := range chrootTools {
		body := "#!/bin/sh\n# runs the patchring test root's " + tool + "\nexec " + shellQuote(c.Runner()) + " " + tool + " \"$@\"\n"
		if err := os.WriteFile(filepath.Join(c.BinDir, tool), []byte(body), 0o755); err != nil {
			return err
		}
	}
	return nil
}

// aptConfigText is the APT_CONFIG file: apt's root is Root (the root
// itself inside, through the runner's second mount), and dpkg runs with
// --root so that it chroots into Root for maintainer scripts the way it
// does on a real system.
func (c *Chroot) aptConfigText() string {
	q := func(v string) string { return `"` + v + `"` }
	var b strings.Builder
	fmt.Fprintf(&b, "Dir %s;\n", q(c.Root+"/"))
	fmt.Fprintf(&b, "Dir::State::status %s;\n", q(filepath.Join(c.AdminDir, "status")))
	fmt.Fprintf(&b, "APT::Architecture %s;\n", q(c.Arch))
	fmt.Fprintf(&b, "APT::Architectures { %s; };\n", q(c.Arch))
	fmt.Fprintf(&b, "DPkg::Options { %s; %s; %s; };\n",
		q("--root="+c.Root), q("--admindir="+c.AdminDir), q("--log="+c.Path("var/log/dpkg.log")))
	b.WriteString(`Acquire::Languages "none";
Acquire::Retries "0";
Acquire::http::Timeout "10";
Acquire::http::Proxy::127.0.0.1 "DIRECT";
Dpkg::Use-Pty "0";
`)
	return b.String()
}

// runnerScript enters the root. The outer shell only execs unshare; the
// inner one mounts, then execs chroot, which execs the command: one
// process from start to end, so a signal to it reaches the command, and
// when it ends so does the namespace with every mount.
func (c *Chroot) runnerScript() string {
	return `#!/bin/sh
# Runs a command inside the patchring test root ` + c.Root + `
# in a private mount namespace: /proc, a minimal /dev and the root itself at
# its host path are mounted there and vanish when the command ends.
set -e
exec /usr/bin/unshare --mount --propagation private -- /bin/sh -euc '
PATH=/usr/sbin:/usr/bin:/sbin:/bin
r=$1; shift
mount -t proc -o nosuid,nodev,noexec proc "$r/proc"
mount -t tmpfs -o nosuid,noexec,mode=0755,size=1m devtmp "$r/dev"
for d in null zero full random urandom tty; do
	[ -e "/dev/$d" ] || continue
	: >"$r/dev/$d"
	mount --bind "/dev/$d" "$r/dev/$d"
done
ln -s /proc/self/fd "$r/dev/fd"
ln -s /proc/self/fd/0 "$r/dev/stdin"
ln -s /proc/self/fd/1 "$r/dev/stdout"
ln -s /proc/self/fd/2 "$r/dev/stderr"
mkdir "$r/dev/pts" "$r/dev/shm"
mkdir -p "$r$r"
mount --rbind "$r" "$r$r"
exec /usr/sbin/chroot "$r" /usr/bin/env -u TMPDIR PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"
' patchring-chroot-run ` + shellQuote(c.Root) + ` "$@"
`
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// Env is the environment of commands run in the root: the process's
// without variables that would redirect dpkg or skip its locks, plus
// APT_CONFIG, a C locale and the noninteractive debconf frontend.
func (c *Chroot) Env() []string {
	env := withoutEnv(os.Environ(), "APT_CONFIG", "DPKG_ROOT", "DPKG_ADMINDIR", "DPKG_FRONTEND_LOCKED",
		"LANG", "LANGUAGE", "LC_ALL", "TMPDIR")
	return append(env, "APT_CONFIG="+c.AptConfig, "LC_ALL=C.UTF-8",
		"DEBIAN_FRONTEND=noninteractive", "APT_LISTCHANGES_FRONTEND=none")
}

// Command returns a command running name (looked up in the root's PATH)
// with args inside the root. Paths in args must lie under Root; "/x"
// means the root's /x.
func (c *Chroot) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, c.Runner(), append([]string{name}, args...)...)
	cmd.Env = c.Env()
	cmd.Dir = "/"
	return cmd
}

// Run runs name with args inside the root and returns its combined
// output; the error names the command and includes the output.
func (c *Chroot) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	var out bytes.Buffer
	cmd := c.Command(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("%s %s in %s: %w\n%s", name, strings.Join(args, " "), c.Root, err, out.String())
	}
	return out.Bytes(), nil
}

// DpkgInstall copies the .deb files into the root and installs them with
// the root's dpkg -i: a quick way to seed the system.
func (c *Chroot) DpkgInstall(ctx context.Context, debs ...string) error {
	dir, err := os.MkdirTemp(c.Path("tmp"), "patchring-debs-")
	if err != nil {
		return fmt.Errorf("dpkg install: %w", err)
	}
	defer os.RemoveAll(dir)
	args := []string{"--force-confold", "-i"}
	for _, d := range debs {
		dst := filepath.Join(dir, filepath.Base(d))
		if err := copyFile(d, dst); err != nil {
			return fmt.Errorf("dpkg install: %w", err)
		}
		args = append(args, "/"+strings.TrimPrefix(dst, c.Root+"/"))
	}
	_, err = c.Run(ctx, "dpkg", args...)
	return err
}

func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, data, 0o644)
}

// InstalledVersion returns the version the root's dpkg-query reports for
// pkg with its status abbreviation, e.g. ("1.0", "ii "); ("", "") when
// dpkg does not know the package.
func (c *Chroot) InstalledVersion(ctx context.Context, pkg string) (version, status string, err error) {
	var stdout, stderr bytes.Buffer
	cmd := c.Command(ctx, "dpkg-query", "-W", "-f", "${Version}\t${db:Status-Abbrev}", "--", pkg)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() == 1 && strings.Contains(stderr.String(), "no packages found") {
			return "", "", nil
		}
		return "", "", fmt.Errorf("dpkg-query %s in %s: %w: %s", pkg, c.Root, err, strings.TrimSpace(stderr.String()))
	}
	version, status, _ = strings.Cut(stdout.String(), "\t")
	return version, status, nil
}

// Audit runs the root's dpkg --audit and returns its report; empty when
// the package database is consistent.
func (c *Chroot) Audit(ctx context.Context) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := c.Command(ctx, "dpkg", "--audit")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 1 && stdout.Len() > 0) {
		return "", fmt.Errorf("dpkg --audit in %s: %w: %s", c.Root, err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// RouteTools makes every apt-get, apt-cache, apt-config, apt-mark, dpkg
// and dpkg-query this process runs by name for the rest of t run inside
// the root, by putting BinDir first in PATH (t.Setenv: t and its parents
// must not be parallel). A platform/apt Backend made afterwards with
// Options{AptConfig: c.AptConfig} then drives the root's own apt and dpkg.
func (c *Chroot) RouteTools(t EnvTB) {
	t.Helper()
	t.Setenv("PATH", c.BinDir+string(os.PathListSeparator)+os.Getenv("PATH"))
}

// Close removes the root. It refuses when something is mounted below it
// in this mount namespace (the runner never mounts here; a mount would
// mean something else did, and removing through it could reach the host).
func (c *Chroot) Close() error {
	if c.dir == "" {
		return nil
	}
	mounts, err := mountsBelow(c.dir)
	if err != nil {
		return fmt.Errorf("close chroot %s: %w", c.dir, err)
	}
	if len(mounts) > 0 {
		return fmt.Errorf("close chroot %s: refusing to remove it, file systems are mounted below it: %s", c.dir, strings.Join(mounts, ", "))
	}
	if err := os.RemoveAll(c.dir); err != nil {
		return fmt.Errorf("close chroot: %w", err)
	}
	return nil
}

// mountsBelow lists the mount points at or below dir in this process's
// mount namespace.
func mountsBelow(dir string) ([]string, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var res []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 {
			continue
		}
		mp := unescapeMountinfo(f[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			res = append(res, mp)
		}
	}
	return res, sc.Err()
}

// unescapeMountinfo undoes the octal escapes (\040 for a space) of
// /proc/self/mountinfo.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			ok := true
			for _, ch := range s[i+1 : i+4] {
				if ch < '0' || ch > '7' {
					ok = false
					break
				}
				v = v*8 + byte(ch-'0')
			}
			if ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
