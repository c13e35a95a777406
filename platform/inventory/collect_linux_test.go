package inventory

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// fakeTree writes files (path relative to the root -> content) into a
// temporary root directory.
func fakeTree(t testing.TB, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, body := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func hasUnavailable(list []Unavailable, source, reasonPart string) bool {
	for _, u := range list {
		if u.Source == source && strings.Contains(u.Reason, reasonPart) {
			return true
		}
	}
	return false
}

func TestCollectFakeRootMissingSources(t *testing.T) {
	t.Parallel()
	root := fakeTree(t, map[string]string{
		"etc/os-release":                                  string(readFixture(t, "os-release.rhel")),
		"proc/sys/kernel/osrelease":                       "5.14.0-362.8.1.el9_3.x86_64\n",
		"proc/sys/kernel/ostype":                          "Linux\n",
		"proc/sys/kernel/hostname":                        "fakehost\n",
		"proc/cpuinfo":                                    string(readFixture(t, "cpuinfo.2socket")),
		"proc/self/mountinfo":                             "garbage\n",
		"var/run/reboot-required":                         "*** System restart required ***\n",
		"var/run/reboot-required.pkgs":                    "linux-image-6.1.0-21-amd64\nlibc6\nlibc6\n",
		"sys/devices/system/cpu/vulnerabilities/meltdown": "Not affected\n",
		"sys/devices/system/cpu/vulnerabilities/mds":      "Vulnerable\n",
		"proc/sys/kernel/randomize_va_space":              "2\n",
	})
	// A directory where a file belongs: unreadable even for root.
	if err := os.MkdirAll(filepath.Join(root, "proc/sys/kernel/version"), 0o755); err != nil {
		t.Fatal(err)
	}
	snap, err := Collect(context.Background(), Options{Root: root, RPM: "/nonexistent/rpm"})
	if err != nil {
		t.Fatalf("a scan with missing sources failed: %v", err)
	}
	if snap.Hostname != "fakehost" || snap.OS.ID != "rhel" || snap.OS.KernelRelease != "5.14.0-362.8.1.el9_3.x86_64" {
		t.Fatalf("os = %+v", snap.OS)
	}
	checks := []struct {
		section string
		list    []Unavailable
		source  string
		reason  string
	}{
		{"os", snap.OS.Unavailable, "/proc/sys/kernel/version", "is a directory"},
		{"os", snap.OS.Unavailable, "/proc/uptime", "not present"},
		{"hardware", snap.Hardware.Unavailable, "/sys/class/dmi/id", "not present"},
		{"hardware", snap.Hardware.Unavailable, "/proc/meminfo", "not present"},
		{"hardware", snap.Hardware.Unavailable, "/proc/self/mountinfo", "line 1"},
		{"network", snap.Network.Unavailable, "interfaces", "only the running system"},
		{"network", snap.Network.Unavailable, "/proc/net/route", "not present"},
		{"packages", snap.Packages.Unavailable, "dpkg " + filepath.Join(root, "var/lib/dpkg/status"), "not present"},
		{"packages", snap.Packages.Unavailable, "rpm", "no rpm database"},
		{"security", snap.Security.Unavailable, "secure boot", "not booted through EFI"},
	}
	for _, c := range checks {
		if !hasUnavailable(c.list, c.source, c.reason) {
			t.Errorf("%s: no unavailable %q with %q in %+v", c.section, c.source, c.reason, c.list)
		}
	}
	if snap.Hardware.CPU.Sockets != 2 || snap.Hardware.CPU.Threads != 4 {
		t.Errorf("cpu = %+v", snap.Hardware.CPU)
	}
	if !snap.Reboot.Required || !slices.Equal(snap.Reboot.Packages, []string{"linux-image-6.1.0-21-amd64", "libc6"}) || snap.Reboot.Since.IsZero() {
		t.Errorf("reboot = %+v", snap.Reboot)
	}
	if len(snap.Security.Vulnerabilities) != 2 || snap.Security.ASLR != 2 {
		t.Errorf("security = %+v", snap.Security)
	}
	if len(snap.Packages.Items) != 0 || len(snap.Packages.Managers) != 0 {
		t.Errorf("packages = %+v", snap.Packages)
	}
}

func TestCollectFakeRootRPM(t *testing.T) {
	t.Parallel()
	root := fakeTree(t, map[string]string{
		"proc/sys/kernel/osrelease": "5.14.0-362.8.1.el9_3.x86_64\n",
		"var/lib/rpm/rpmdb.sqlite":  "not really a database",
	})
	fake := filepath.Join(t.TempDir(), "rpm")
	script := fmt.Sprintf("#!/bin/sh\n[ \"$1\" = -qa ] && [ \"$4\" = --root ] && [ \"$5\" = %q ] || { echo \"unexpected args: $*\" >&2; exit 3; }\ncat %q\n", root, mustAbs(t, "testdata/rpm-qa.txt"))
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	snap, err := Collect(context.Background(), Options{Root: root, RPM: fake, Sections: []Section{SectionPackages, SectionReboot}})
	if err != nil {
		t.Fatal(err)
	}
	if snap.OS != nil || snap.Hardware != nil {
		t.Fatal("sections not asked for were collected")
	}
	p := snap.Packages
	if !slices.Equal(p.Managers, []string{"rpm"}) || p.Counts.Total != 7 || p.Counts.ByManager["rpm"] != 7 {
		t.Fatalf("packages = %+v", p)
	}
	if p.Kernels.Newest != "5.14.0-427.13.1.el9_4.x86_64" || !p.Kernels.RunningInstalled {
		t.Fatalf("kernels = %+v", p.Kernels)
	}
	if !snap.Reboot.Required || len(snap.Reboot.Reasons) != 1 || !strings.Contains(snap.Reboot.Reasons[0], "not the newest installed") {
		t.Fatalf("reboot = %+v", snap.Reboot)
	}

	// rpm failing is a reason, not a failed scan.
	broken := filepath.Join(t.TempDir(), "rpm")
	if err := os.WriteFile(broken, []byte("#!/bin/sh\necho 'error: cannot open Packages database' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	snap, err = Collect(context.Background(), Options{Root: root, RPM: broken, Sections: []Section{SectionPackages}})
	if err != nil {
		t.Fatal(err)
	}
	if !hasUnavailable(snap.Packages.Unavailable, "rpm -qa", "cannot open Packages database") {
		t.Fatalf("unavailable = %+v", snap.Packages.Unavailable)
	}
}

func mustAbs(t testing.TB, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestCollectFakeRootRestartGrouping(t *testing.T) {
	t.Parallel()
	maps := string(readFixture(t, "maps.deleted"))
	root := fakeTree(t, map[string]string{
		"proc/101/maps":   maps,
		"proc/101/comm":   "sshd\n",
		"proc/101/cgroup": "0::/system.slice/ssh.service\n",
		"proc/102/maps":   maps,
		"proc/102/comm":   "sshd\n",
		"proc/102/cgroup": "0::/system.slice/ssh.service\n",
		"proc/103/maps":   maps,
		"proc/103/comm":   "pipewire\n",
		"proc/103/cgroup": "0::/user.slice/user-1000.slice/user@1000.service/session.slice/ssh.service\n",
		"proc/200/maps":   "7f-8f r-xp 0 fd:01 1 /usr/lib/x86_64-linux-gnu/libz.so.1\n",
		"proc/300/maps":   "",
		"proc/self/maps":  maps, // not a PID
	})
	snap, err := Collect(context.Background(), Options{Root: root, Sections: []Section{SectionRestart}})
	if err != nil {
		t.Fatal(err)
	}
	r := snap.Restart
	if r.Scanned != 5 || len(r.Processes) != 3 || len(r.Units) != 2 {
		t.Fatalf("restart = %+v", r)
	}
	if !r.Units[1].User || r.Units[0].User || !slices.Equal(r.Units[1].PIDs, []int{103}) {
		t.Fatalf("a user's ssh.service must not merge with the system's: %+v", r.Units)
	}
	u := r.Units[0]
	if u.Unit != "ssh.service" || !slices.Equal(u.PIDs, []int{101, 102}) || len(u.Files) != 3 || r.Processes[0].Command != "sshd" {
		t.Fatalf("unit = %+v", u)
	}
}

func TestCollectErrors(t *testing.T) {
	t.Parallel()
	if _, err := Collect(context.Background(), Options{Sections: []Section{"bogus"}}); !errors.Is(err, ErrUnknownSection) {
		t.Fatalf("unknown section: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Collect(ctx, Options{Sections: []Section{SectionRestart}}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	if _, err := ParseSection("network"); err != nil {
		t.Fatal(err)
	}
}

func TestReasonWords(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		err  error
		want string
	}{
		{&os.PathError{Op: "open", Path: "/sys/class/dmi/id/product_serial", Err: os.ErrPermission}, "permission denied (needs root)"},
		{&os.PathError{Op: "open", Path: "/x", Err: os.ErrNotExist}, "not present"},
		{io.ErrUnexpectedEOF, "unexpected EOF"},
	} {
		if got := reason(tt.err); got != tt.want {
			t.Errorf("reason(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

// TestCollectLive checks a real scan of the machine running the tests
// against the system's own tools.
func TestCollectLive(t *testing.T) {
	snap, err := Collect(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	out := func(name string, args ...string) string {
		t.Helper()
		b, err := exec.Command(name, args...).Output()
		if err != nil {
			t.Fatalf("%s %v: %v", name, args, err)
		}
		return strings.TrimSpace(string(b))
	}
	if got, want := snap.OS.KernelRelease, out("uname", "-r"); got != want {
		t.Errorf("kernel release %q, uname -r %q", got, want)
	}
	if got, want := snap.OS.Architecture, out("uname", "-m"); got != want {
		t.Errorf("architecture %q, uname -m %q", got, want)
	}
	if got, want := snap.Hostname, out("uname", "-n"); got != want {
		t.Errorf("hostname %q, uname -n %q", got, want)
	}
	if snap.OS.ID == "" || snap.OS.BootTime.IsZero() || snap.OS.BootTime.After(time.Now()) || snap.OS.UptimeSeconds <= 0 {
		t.Errorf("os = %+v", snap.OS)
	}
	if got, want := fmt.Sprint(snap.Hardware.CPU.Threads), out("getconf", "_NPROCESSORS_CONF"); got != want {
		t.Errorf("threads %s, getconf %s", got, want)
	}
	if snap.Hardware.Memory.TotalBytes == 0 || !slices.ContainsFunc(snap.Hardware.Filesystems, func(f Filesystem) bool { return f.Mountpoint == "/" && f.SizeBytes > 0 }) {
		t.Errorf("hardware = %+v", snap.Hardware)
	}
	if !slices.ContainsFunc(snap.Network.Interfaces, func(i Interface) bool { return i.Loopback && slices.Contains(i.Addresses, "127.0.0.1/8") }) {
		t.Errorf("no loopback in %+v", snap.Network.Interfaces)
	}
	vulns, _ := os.ReadDir("/sys/devices/system/cpu/vulnerabilities")
	if len(snap.Security.Vulnerabilities) != len(vulns) {
		t.Errorf("%d vulnerabilities, %d files", len(snap.Security.Vulnerabilities), len(vulns))
	}
	if got := out("sysctl", "-n", "kernel.randomize_va_space"); fmt.Sprint(snap.Security.ASLR) != got {
		t.Errorf("ASLR %d, sysctl %s", snap.Security.ASLR, got)
	}
	// Issue 3: the package list equals dpkg-query's exactly.
	var b strings.Builder
	for _, p := range snap.Packages.Items {
		if p.Manager == "dpkg" {
			fmt.Fprintf(&b, "%s %s %s\n", p.Name, p.Architecture, p.Version)
		}
	}
	want, err := exec.Command("dpkg-query", "-W", "-f", "${Package} ${Architecture} ${Version}\n").Output()
	if err != nil {
		t.Fatalf("dpkg-query (Debian package dpkg): %v", err)
	}
	if b.String() != string(want) {
		t.Errorf("packages differ from dpkg-query -W")
	}
	if snap.Restart.Scanned < 2 {
		t.Errorf("restart scanned %d processes", snap.Restart.Scanned)
	}
	if runtime.GOARCH == "amd64" && snap.OS.Architecture != "x86_64" {
		t.Errorf("architecture %q on amd64", snap.OS.Architecture)
	}
}

// TestRestartFindsReplacedBinary runs a copy of sleep, deletes the copy
// (as a package upgrade replaces a binary) and expects the restart
// section to name the process.
func TestRestartFindsReplacedBinary(t *testing.T) {
	dir, err := os.MkdirTemp("/var/lib", "patchring-inventory-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(sleep)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "patchring-sleep")
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "300")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	if err := os.Remove(bin); err != nil {
		t.Fatal(err)
	}
	snap, err := Collect(context.Background(), Options{Sections: []Section{SectionRestart}})
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(snap.Restart.Processes, func(p RestartProcess) bool { return p.PID == cmd.Process.Pid })
	if i < 0 {
		t.Fatalf("process %d not reported: %+v", cmd.Process.Pid, snap.Restart.Processes)
	}
	p := snap.Restart.Processes[i]
	if !p.ExeDeleted || p.Exe != bin || !slices.Contains(p.Files, bin) {
		t.Fatalf("process = %+v", p)
	}
}

func TestWatchPaths(t *testing.T) {
	t.Parallel()
	got := Options{Root: "/srv/root"}.WatchPaths()
	want := []string{"/srv/root/var/lib/dpkg/status", "/srv/root/var/lib/dpkg/updates", "/srv/root/var/lib/rpm", "/srv/root/usr/lib/sysimage/rpm"}
	if !slices.Equal(got, want) {
		t.Fatalf("WatchPaths = %q, want %q", got, want)
	}
	if got := (Options{DpkgStatus: "/tmp/x/status"}).WatchPaths(); got[0] != "/tmp/x/status" || got[1] != "/tmp/x/updates" || got[2] != "/var/lib/rpm" {
		t.Fatalf("WatchPaths = %q", got)
	}
}
