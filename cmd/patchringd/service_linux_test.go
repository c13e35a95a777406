package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// inMountNamespace runs script with sh in a private mount namespace where
// tmpfs hides the host's init directories, so installing a service there
// touches nothing outside. The namespace and its mounts end with the script.
func inMountNamespace(t *testing.T, script string, env ...string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("service tests need root for a private mount namespace (make test runs as root)")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Fatal("unshare is missing: install util-linux")
	}
	prelude := `set -e
for d in /etc/init.d /etc/rc0.d /etc/rc1.d /etc/rc2.d /etc/rc3.d /etc/rc4.d /etc/rc5.d /etc/rc6.d /etc/systemd/system /etc/patchring /etc/xdg/autostart /run /var/log; do
  mkdir -p "$d"; mount -t tmpfs -o size=16m patchring-test "$d"
done
`
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", prelude+script)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("script in mount namespace: %v\n%s", err, out)
	}
	return string(out)
}

func TestServiceSysVLifecycle(t *testing.T) {
	if _, err := exec.LookPath("service"); err != nil {
		t.Fatal("the 'service' command is missing: install init-system-helpers / sysvinit-utils")
	}
	bin := patchringd.Path(t)
	dir, err := os.MkdirTemp("", "patchringd-sysv-*")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	state := filepath.Join(dir, "state")
	sock := filepath.Join(dir, "api.sock")
	// The trap stops the daemon by the PID the init script recorded if
	// the script fails halfway; the namespace ends with the script.
	script := `
trap 'if [ -f /var/run/patchringd.pid ]; then kill $(cat /var/run/patchringd.pid) 2>/dev/null || true; fi' EXIT
B=` + bin + `
echo "== install"; $B install --state-dir ` + state + ` --socket ` + sock + `
test -x /etc/init.d/patchringd
ls /etc/rc2.d/
grep -q "Exec=patchring tray" /etc/xdg/autostart/patchring-tray.desktop
echo "== status"; $B status
echo "== start"; $B start
i=0; while [ ! -S ` + sock + ` ] && [ $i -lt 200 ]; do i=$((i+1)); sleep 0.05; done
test -S ` + sock + `
echo "== status"; $B status
echo "== stop"; $B stop
echo "== status"; $B status
echo "== uninstall"; $B uninstall
test ! -e /etc/init.d/patchringd
test ! -e /etc/xdg/autostart/patchring-tray.desktop
echo "== status"; $B status
`
	out := inMountNamespace(t, script)
	for _, want := range []string{
		"patchringd: install done (unix-systemv)",
		"S50patchringd",
		"== status\npatchringd: stopped (unix-systemv)",
		"patchringd: start done (unix-systemv)",
		"== status\npatchringd: running (unix-systemv)",
		"patchringd: stop done (unix-systemv)",
		"patchringd: uninstall done (unix-systemv)",
		"== status\npatchringd: not installed (unix-systemv)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// The daemon ran for real: it created its state.
	if _, err := os.Stat(filepath.Join(state, "state.db")); err != nil {
		t.Errorf("daemon started by the init script left no state: %v", err)
	}
}

func TestServiceSystemdUnitGolden(t *testing.T) {
	bin := patchringd.Path(t)
	dir := t.TempDir()
	fake := filepath.Join(dir, "bin")
	os.MkdirAll(fake, 0o755)
	// systemd is not PID 1 here: a recording systemctl stands in for it,
	// and /run/systemd/system (on the namespace's tmpfs) makes
	// kardianos/service choose systemd.
	os.WriteFile(filepath.Join(fake, "systemctl"), []byte("#!/bin/sh\necho \"systemctl $*\" >> "+dir+"/calls\n"), 0o755)
	script := `
mkdir -p /run/systemd/system; touch /etc/patchring/patchringd.yaml
` + bin + ` install --config /etc/patchring/patchringd.yaml --state-dir /var/lib/patchring --socket /run/patchring/patchringd.sock
cat /etc/systemd/system/patchringd.service
`
	out := inMountNamespace(t, script, "PATH="+fake+":"+os.Getenv("PATH"))
	unit := out[strings.Index(out, "[Unit]"):]
	unit = strings.ReplaceAll(unit, bin, "/usr/sbin/patchringd")
	golden := filepath.Join("testdata", "patchringd.service.golden")
	if *update {
		os.WriteFile(golden, []byte(unit), 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if unit != string(want) {
		t.Errorf("systemd unit differs from %s:\n%s", golden, unit)
	}
	calls, _ := os.ReadFile(filepath.Join(dir, "calls"))
	if !strings.Contains(string(calls), "enable patchringd.service") {
		t.Errorf("install did not enable the unit; systemctl calls:\n%s", calls)
	}
}
