//go:build linux

package apttest_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/patchring/patchring/platform/apt/apttest"
)

func acme(version, marker string) apttest.Package {
	return apttest.Package{
		Name:    "acme-tool",
		Version: version,
		Files: []apttest.File{
			{Path: "/usr/bin/acme-tool", Body: []byte("#!/bin/sh\necho acme-tool " + version + "\n"), Mode: 0o755},
			{Path: "/etc/acme-tool/acme.conf", Body: []byte("level = " + marker + "\n"), Conffile: true},
		},
		Postinst: apttest.FailingPostinst("/etc/acme-tool/fail-postinst"),
	}
}

func TestBuildDebReadsBackWithDpkgDeb(t *testing.T) {
	apttest.RequireTools(t)
	dir := t.TempDir()
	cases := []struct {
		name, version, arch, file string
	}{
		{"plain", "1.0", "amd64", "acme-tool_1.0_amd64.deb"},
		{"epoch and revision", "2:1.1-3", "amd64", "acme-tool_1.1-3_amd64.deb"},
		{"arch all", "0.9~rc1-1", "all", "acme-tool_0.9~rc1-1_all.deb"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := acme(tc.version, "x")
			p.Arch = tc.arch
			p.Depends = []string{"libc6 (>= 2.36)"}
			deb := apttest.MustBuildDeb(t, dir, p)
			if filepath.Base(deb) != tc.file {
				t.Errorf("file name %s, want %s", filepath.Base(deb), tc.file)
			}
			out, err := exec.Command("dpkg-deb", "--field", deb, "Package", "Version", "Architecture", "Depends").Output()
			if err != nil {
				t.Fatalf("dpkg-deb --field: %v", err)
			}
			want := fmt.Sprintf("Package: acme-tool\nVersion: %s\nArchitecture: %s\nDepends: libc6 (>= 2.36)\n", tc.version, tc.arch)
			if string(out) != want {
				t.Errorf("dpkg-deb fields:\n%s\nwant:\n%s", out, want)
			}
			conf, err := exec.Command("dpkg-deb", "--info", deb, "conffiles").Output()
			if err != nil || strings.TrimSpace(string(conf)) != "/etc/acme-tool/acme.conf" {
				t.Errorf("conffiles = %q, %v", conf, err)
			}
			info, err := apttest.ReadDebInfo(deb)
			if err != nil {
				t.Fatal(err)
			}
			if info.Package != "acme-tool" || info.Version != tc.version || info.Architecture != tc.arch {
				t.Errorf("ReadDebInfo = %+v", info)
			}
		})
	}
}

func TestBuildDebRejectsBadInput(t *testing.T) {
	dir := t.TempDir()
	for name, p := range map[string]apttest.Package{
		"no name":       {Version: "1"},
		"relative path": {Name: "x", Version: "1", Files: []apttest.File{{Path: "usr/bin/x"}}},
		"unclean path":  {Name: "x", Version: "1", Files: []apttest.File{{Path: "/usr/../etc/x"}}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := apttest.BuildDeb(dir, p); err == nil {
				t.Fatal("BuildDeb succeeded")
			}
		})
	}
}

func get(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	return body
}

func TestRepoIndicesMatchRelease(t *testing.T) {
	dir := t.TempDir()
	repo := apttest.MustStartRepo(t, apttest.SecurityRepoConfig())
	entries := repo.MustAdd(t, apttest.MustBuildDeb(t, dir, acme("1.0", "a")))
	release := string(get(t, repo.URL()+"dists/bookworm-security/Release"))
	for _, want := range []string{"Origin: Debian\n", "Label: Debian-Security\n", "Suite: oldstable-security\n", "Codename: bookworm-security\n", "\nMD5Sum:\n", "\nSHA256:\n"} {
		if !strings.Contains(release, want) {
			t.Errorf("Release lacks %q:\n%s", want, release)
		}
	}
	// Every SHA256 line must match the file served.
	_, sums, _ := strings.Cut(release, "SHA256:\n")
	n := 0
	for line := range strings.Lines(sums) {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		body := get(t, repo.URL()+"dists/bookworm-security/"+f[2])
		s := sha256.Sum256(body)
		if hex.EncodeToString(s[:]) != f[0] || strconv.Itoa(len(body)) != f[1] {
			t.Errorf("%s: Release says %s %s, served %x %d", f[2], f[0], f[1], s, len(body))
		}
		n++
	}
	if n != 2 {
		t.Errorf("Release lists %d index files, want 2", n)
	}
	gz := get(t, repo.URL()+"dists/bookworm-security/main/binary-amd64/Packages.gz")
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	pk, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	e := entries[0]
	for _, want := range []string{"Package: acme-tool\n", "Version: 1.0\n", "Filename: " + e.Filename + "\n", "SHA256: " + e.SHA256 + "\n", fmt.Sprintf("Size: %d\n", e.Size)} {
		if !strings.Contains(string(pk), want) {
			t.Errorf("Packages lacks %q:\n%s", want, pk)
		}
	}
	deb := get(t, repo.URL()+e.Filename)
	if s := sha256.Sum256(deb); hex.EncodeToString(s[:]) != e.SHA256 {
		t.Errorf("pool file hash mismatch")
	}
	if err := repo.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(repo.URL() + "dists/bookworm-security/Release"); err == nil {
		t.Error("repository still answers after Stop")
	}
}

// TestSandboxCycle installs, upgrades and downgrades a package from a real
// repository in a sandbox with the real apt-get, and checks that the host's
// dpkg database is untouched.
func TestSandboxCycle(t *testing.T) {
	apttest.GuardHostDB(t)
	ctx := context.Background()
	dir := t.TempDir()
	repo := apttest.MustStartRepo(t, apttest.RepoConfig{})
	repo.MustAdd(t, apttest.MustBuildDeb(t, dir, acme("1.0", "a")))
	sb := apttest.MustSandbox(t, apttest.SandboxOptions{})
	sb.MustAddRepo(t, "acme", repo)

	mustRun(t, sb, "apt-get", "update", "-q")
	mustRun(t, sb, "apt-get", "install", "-y", "-q", "acme-tool")
	checkVersion(t, sb, "1.0")
	out, err := os.ReadFile(sb.Path("usr/bin/acme-tool"))
	if err != nil || !strings.Contains(string(out), "acme-tool 1.0") {
		t.Fatalf("installed file: %q, %v", out, err)
	}

	// Adding a package after start regenerates the indices.
	repo.MustAdd(t, apttest.MustBuildDeb(t, dir, acme("1.1", "b")))
	mustRun(t, sb, "apt-get", "update", "-q")
	mustRun(t, sb, "apt-get", "install", "-y", "-q", "acme-tool")
	checkVersion(t, sb, "1.1")
	mustRun(t, sb, "apt-get", "install", "-y", "-q", "--allow-downgrades", "acme-tool=1.0")
	checkVersion(t, sb, "1.0")

	// The postinst fails on demand and recovers with dpkg --configure -a.
	if err := os.WriteFile(sb.Path("etc/acme-tool/fail-postinst"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := sb.Run(ctx, "apt-get", "install", "-y", "-q", "acme-tool=1.1"); err == nil {
		t.Fatal("install with failing postinst succeeded")
	}
	if v, st, _ := sb.InstalledVersion(ctx, "acme-tool"); v != "1.1" || st != "iF " {
		t.Fatalf("after failed postinst: %q %q, want 1.1 half-configured (iF)", v, st)
	}
	if err := os.Remove(sb.Path("etc/acme-tool/fail-postinst")); err != nil {
		t.Fatal(err)
	}
	mustRun(t, sb, "dpkg", append(sb.DpkgArgs(), "--configure", "-a")...)
	checkVersion(t, sb, "1.1")

	log, err := os.ReadFile(sb.Path("var/log/dpkg.log"))
	if err != nil || !strings.Contains(string(log), "status installed acme-tool:amd64 1.1") {
		t.Errorf("sandbox dpkg.log: %v\n%s", err, log)
	}
}

func mustRun(t *testing.T, sb *apttest.Sandbox, name string, args ...string) {
	t.Helper()
	if _, err := sb.Run(context.Background(), name, args...); err != nil {
		t.Fatal(err)
	}
}

func checkVersion(t testing.TB, sb *apttest.Sandbox, want string) {
	t.Helper()
	v, st, err := sb.InstalledVersion(context.Background(), "acme-tool")
	if err != nil || v != want || st != "ii " {
		t.Fatalf("acme-tool: version %q status %q err %v, want %s ii", v, st, err, want)
	}
}

// TestHoldLock checks that the holder is a real dpkg process that holds a
// POSIX lock on the sandbox's lock-frontend, as /proc/locks shows, and that
// it leaves nothing behind when released.
func TestHoldLock(t *testing.T) {
	apttest.GuardHostDB(t)
	sb := apttest.MustSandbox(t, apttest.SandboxOptions{})
	h := apttest.MustHoldLock(t, sb)
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", h.PID()))
	if err != nil || strings.TrimSpace(string(comm)) != "dpkg" {
		t.Fatalf("holder %d is %q (%v), want dpkg", h.PID(), comm, err)
	}
	for _, name := range []string{"lock-frontend", "lock"} {
		if !lockedBy(t, filepath.Join(sb.AdminDir, name), h.PID()) {
			t.Errorf("%s is not locked by %d in /proc/locks", name, h.PID())
		}
	}
	// apt-get sees the lock and names the holder.
	out, err := sb.Run(context.Background(), "apt-get", "install", "-y", "-q", "nothing")
	if err == nil || !strings.Contains(string(out), fmt.Sprintf("It is held by process %d (dpkg)", h.PID())) {
		t.Errorf("apt-get with lock held: %v\n%s", err, out)
	}
	if err := h.Release(); err != nil {
		t.Fatal(err)
	}
	if lockedBy(t, filepath.Join(sb.AdminDir, "lock-frontend"), h.PID()) {
		t.Error("lock still held after Release")
	}
	audit, err := sb.Run(context.Background(), "dpkg", "--admindir="+sb.AdminDir, "--audit")
	if err != nil || len(bytes.TrimSpace(audit)) != 0 {
		t.Errorf("dpkg --audit after release: %v\n%s", err, audit)
	}
	if v, _, _ := sb.InstalledVersion(context.Background(), "apttest-lock-holder"); v != "" {
		t.Errorf("lock holder package left installed: %s", v)
	}
}

// lockedBy reports whether /proc/locks lists a lock on path held by pid.
func lockedBy(t *testing.T, path string, pid int) bool {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	ino := fi.Sys().(*syscall.Stat_t).Ino
	f, err := os.Open("/proc/locks")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// 1: POSIX  ADVISORY  WRITE 1234 08:01:5678 0 EOF
		fs := strings.Fields(sc.Text())
		if len(fs) < 6 || fs[4] != strconv.Itoa(pid) {
			continue
		}
		parts := strings.Split(fs[5], ":")
		if len(parts) == 3 && parts[2] == strconv.FormatUint(ino, 10) {
			return true
		}
	}
	return false
}

func TestHostDBDetectsChange(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"info", "updates"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "status"), []byte("Package: a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		change func() error
	}{
		{"status rewritten", func() error {
			return os.WriteFile(filepath.Join(dir, "status"), []byte("Package: b\n"), 0o644)
		}},
		{"pending update journal", func() error {
			return os.WriteFile(filepath.Join(dir, "updates", "0000"), []byte("x"), 0o644)
		}},
		{"info file added", func() error {
			return os.WriteFile(filepath.Join(dir, "info", "b.list"), []byte("/x\n"), 0o644)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			snap, err := apttest.SnapshotDB(dir)
			if err != nil {
				t.Fatal(err)
			}
			if err := snap.Verify(); err != nil {
				t.Fatalf("unchanged db reported: %v", err)
			}
			if err := tc.change(); err != nil {
				t.Fatal(err)
			}
			if err := snap.Verify(); err == nil {
				t.Fatal("change not detected")
			}
		})
	}
}

// BenchmarkSandboxCycle measures one install, upgrade and downgrade of a
// small package from a local repository in a sandbox with the real apt-get.
func BenchmarkSandboxCycle(b *testing.B) {
	apttest.GuardHostDB(b)
	dir := b.TempDir()
	repo := apttest.MustStartRepo(b, apttest.RepoConfig{})
	p10, p11 := acme("1.0", "a"), acme("1.1", "b")
	p10.Postinst, p11.Postinst = "", ""
	repo.MustAdd(b, apttest.MustBuildDeb(b, dir, p10), apttest.MustBuildDeb(b, dir, p11))
	ctx := context.Background()
	var total time.Duration
	for b.Loop() {
		b.StopTimer()
		sb := apttest.MustSandbox(b, apttest.SandboxOptions{})
		sb.MustAddRepo(b, "acme", repo)
		if _, err := sb.Run(ctx, "apt-get", "update", "-q"); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		for _, args := range [][]string{
			{"install", "-y", "-q", "acme-tool=1.0"},
			{"install", "-y", "-q", "acme-tool=1.1"},
			{"install", "-y", "-q", "--allow-downgrades", "acme-tool=1.0"},
		} {
			if _, err := sb.Run(ctx, "apt-get", args...); err != nil {
				b.Fatal(err)
			}
		}
		total += time.Since(start)
		b.StopTimer()
		checkVersion(b, sb, "1.0")
		if err := sb.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "apttest_sandbox_cycle@ms")
}
