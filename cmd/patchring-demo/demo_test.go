//go:build linux

package main

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDemo runs the whole demo binary against freshly built patchringd and
// patchring and checks that it tells the story: an issuing service
// delegated by the fleet CA, every agent enrolled with a token (its ring
// chosen by the credential's tags), the intruder refused, every ring reached, the
// rollback, the tray's menu read over D-Bus, the deferral clicked in it,
// the refused second deferral and the enforced reboot; and that it leaves
// no process and no file behind.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("the whole demo takes about three minutes")
	}
	if _, err := exec.LookPath("dbus-daemon"); err != nil {
		t.Fatalf("the demo's tray part needs dbus-daemon: install the Debian package dbus-daemon (%v)", err)
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("building the demo's binaries needs the go command: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 16*time.Minute)
	defer cancel()

	bin := t.TempDir()
	build := exec.CommandContext(ctx, goTool, "build", "-o", bin+"/",
		"github.com/patchring/patchring/cmd/patchringd",
		"github.com/patchring/patchring/cmd/patchring",
		"github.com/patchring/patchring/cmd/patchring-demo")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	// The demo's temporary files (its work tree, the private bus) go to
	// tmp, which must be empty afterwards.
	tmp := t.TempDir()
	demo := exec.CommandContext(ctx, filepath.Join(bin, "patchring-demo"), "--bin", bin, "--timeout", "13m")
	demo.Env = append(withoutEnv(os.Environ(), "TMPDIR"), "TMPDIR="+tmp)
	// On timeout the demo gets SIGTERM and cleans up after itself; SIGKILL
	// only if it does not manage within WaitDelay.
	demo.Cancel = func() error { return demo.Process.Signal(syscall.SIGTERM) }
	demo.WaitDelay = 30 * time.Second
	outb, err := demo.CombinedOutput()
	out := string(outb)
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}

	t.Run("story", func(t *testing.T) {
		// Key lines, in the order the demo must print them.
		steps := []struct{ name, pattern string }{
			{"issuer delegated", `\$ patchring ca issuer create [^\n]*\n\s*Created issuer "demo-issuer" \(signer [0-9a-f]+\) for sites hq, branch, ship`},
			{"issuing service", `\$ patchring ca serve [^\n]*&\n\s*issuing service pid \d+ on http://127\.0\.0\.1:\d+`},
			{"tokens", `\$ patchring enroll-token list [^\n]*\n\s*ID\s+SITE\s+TAGS\s+USES LEFT[^\n]*\n(\s*[0-9a-f]{16}\s+(hq|branch|ship)\s+[^\n]*active\n){7}`},
			{"hq-lab-1 enrolled", `\$ patchringd enroll --config \S+/hq-lab-1/patchringd\.yaml @\S+\n\s*Enrolled node 12D3KooW\S+: site hq, tags lab,`},
			{"hq-pilot-1 enrolled", `Enrolled node 12D3KooW\S+: site hq, tags pilot,`},
			{"hq-desk-1 enrolled", `Enrolled node 12D3KooW\S+: site hq, tags ,`},
			{"branch-pilot-1 enrolled", `Enrolled node 12D3KooW\S+: site branch, tags pilot,`},
			{"branch-desk-1 enrolled", `Enrolled node 12D3KooW\S+: site branch, tags ,`},
			{"branch-desk-2 enrolled", `\$ patchringd enroll --config \S+/branch-desk-2/patchringd\.yaml @\S+\n\s*Enrolled node 12D3KooW\S+: site branch, tags ,`},
			{"policy verified", `every agent verified the signed policy`},
			{"ring from the credential", `Ring:\s+lab \(selected by rings\[0\]\.select\[0\]: has tags lab\)`},
			{"intruder", `an intruder: an agent with the site's stolen gossip key, but no credential`},
			{"intruder refused", `Refused: 1 node\(s\) without a valid credential[^\n]*\n\s*NODE\s+ADDRESS\s+REASON[^\n]*\n\s*12D3KooW\S+\s+127\.0\.0\.1:\d+\s+[^\n]*no credential`},
			{"intruder knows why", `Credential:\s+credential missing`},
			{"ship's LAN", `the ship's LAN 10\.231\.0\.0/24: ship-pilot-1 10\.231\.0\.11, ship-desk-1 10\.231\.0\.12, ship-desk-2 10\.231\.0\.13, printer 10\.231\.0\.50, camera 10\.231\.0\.51; no default route`},
			{"ship enrolled", `\$ patchringd enroll --config \S+/ship-desk-1/patchringd\.yaml @\S+\n\s*Enrolled node 12D3KooW\S+: site ship, tags ,`},
			{"ship agents", `ship-desk-1\s+site ship\s+tags -\s+pid \d+, on 10\.231\.0\.12 in namespace prdemo\d+-ship-desk-1`},
			{"ship's first bundle", `\$ patchring bundle create [^\n]*ship-1\.tar\.gz --apt-source http://127\.0\.0\.1:\d+/ [^\n]*\n\s*pinned apt snapshot: \d+ files`},
			{"ship imports", `\$ patchring --socket \S+/ship-pilot-1/patchringd\.sock bundle import \S+/ship-1\.tar\.gz\n\s*imported \S+: policy \S+ "demo-fleet" verified, \d+ payloads into the content store\n\s*apt snapshot: \d+ files into the content store, 1 releases pinned`},
			{"advisories published", `\$ patchring advisories import \S+/DSA-6042-1\.json --kev \S+ --ecosystem \S+ [^\n]*\n\s*Advisory database version 1: `},
			{"CVE open everywhere", `NODE\s+RING\s+ACME-TOOL\s+CVE-2026-4242\s+FIX\n(\s*\S+\s+(lab|pilot|broad)\s+1\.0\s+OPEN \(critical, KEV\)\s+\S+\n){6}`},
			{"vulns", `\$ patchring --socket \S+ vulns\n\s*Advisory database version 1 [^\n]*\n[^\n]*\n\s*PACKAGE\s+VERSION\s+CVE[^\n]*\n(\s*(acme-tool|libacme)\s+1\.0\s+CVE-2026-4242\s+critical 9\.8\s+KEV\s+1\.1\s+[^\n]*\n){2}`},
			{"agent packages", `patchring_1\.0_\S+\.deb: the agent itself in /usr/sbin/patchringd`},
			{"agents as services", `each runs as the service of its root, from the installed package patchring 1\.0`},
			{"running version in the catalog", `\$ patchring catalog add \S+/patchring_1\.0_\S+\.deb --package patchring --version 1\.0 [^\n]*\n\s*Added catalog/patchring/1\.0/`},
			{"next version published", `\$ patchring catalog add \S+/patchring_1\.1_\S+\.deb --package patchring --version 1\.1 [^\n]*\n\s*Added catalog/patchring/1\.1/`},
			{"self-update table", `NODE\s+RING\s+AGENT BEFORE\s+AGENT AFTER\s+PACKAGE\s+SELF-UPDATE\s+HEALTH CHECK\n`},
			{"lab updated itself", `hq-lab-1\s+lab\s+1\.0\s+1\.1\s+1\.1\s+#\d+ installed\s+passed: local API answers, gossip rejoined, policy verified`},
			{"pilot updated itself", `hq-pilot-1\s+pilot\s+1\.0\s+1\.1\s+1\.1\s+#\d+ installed\s+passed`},
			{"broken agent rolled back", `hq-desk-1\s+broad\s+1\.0\s+1\.0\s+1\.0\s+#\d+ rolled-back\s+failed: self-update: the new agent was not healthy by its deadline`},
			{"broad updated itself", `branch-desk-2\s+broad\s+1\.0\s+1\.1\s+1\.1\s+#\d+ installed\s+passed`},
			{"self-update history", `patchring\s+1\.0 -> 1\.1\n(.*\n)*?\s+error: self-update: the new agent was not healthy by its deadline [^\n]*local API`},
			{"ship's newer bundle", `\$ patchring --socket \S+/ship-pilot-1/patchringd\.sock bundle import \S+/ship-2\.tar\.gz\n\s*imported \S+: policy \S+ "demo-fleet" verified[^\n]*\n\s*signed advisory database into the content store`},
			{"ship's replay refused", `bundle import \S+/ship-1\.tar\.gz\n\s*[^\n]*(older|rollback|version)[^\n]*`},
			{"lab installs", `hq-lab-1\s+hq\s+lab\s+1\.1\s+1\.1\s+#\d+ install installed`},
			{"rollback shown", `branch-desk-2's health check failed after the install: the engine rolled both packages back in one apt run`},
			{"one tx, both packages", `#\d+ [\d-]+ [\d:]+ install of 2 packages  \[rolled-back\]\n(\s+(acme-tool|libacme)\s+1\.0 -> 1\.1\s+\(upgrade, restored\)\n){2}`},
			{"rollback done", `rollback\s+done\s+health check`},
			{"tray step", `==> acme-tool 1\.1 asked for a reboot: the user on \S+ defers it once from the tray`},
			{"tray started", `\$ DBUS_SESSION_BUS_ADDRESS=unix:\S+ patchring --socket \S+ tray &`},
			{"tooltip", `tooltip:\n\s+patchring: Restart required by `},
			{"menu read", `read with com\.canonical\.dbusmenu GetLayout`},
			{"status line", `\| Restart required by [^|]* \[disabled\] +\|`},
			{"restart now", `\| Restart now +\|`},
			{"deferral offered", `\| Defer 10 seconds \(1 left\) +\|`},
			{"quit", `\| Quit +\|`},
			{"prompt", `notification #\d+: Restart required by [^\n]*\[Restart now\]  \[Defer 10 seconds\]`},
			{"click", `the user picks "Defer 10 seconds \(1 left\)": the tray host sends dbusmenu Event\(\d+, "clicked"\)`},
			{"deferred status", `\| Restart deferred until [^|]* \[disabled\] +\|`},
			{"deferral used", `\| Defer 10 seconds \(none left\) \[disabled\] +\|`},
			{"other choice disabled", `\| Defer 1 hour \(none left\) \[disabled\] +\|`},
			{"agent agrees", `the agent agrees:\n\n\s+\$ patchring --socket \S+ reboot status\n(.*\n)*?\s+Deferrals:\s+1 used, none left`},
			{"second deferral refused", `patchring: no deferrals left: the policy allows 1 and all were used`},
			{"countdown", `notification #\d+: Restarting in \d+ (seconds?|minute) \(critical\)`},
			{"restarting now", `notification #\d+: Restarting now \(critical\)`},
			{"reboot enforced", `patchringd ran the reboot command \(simulated here\), \d+s after the deferral: \S+ patchring: restarting`},
			{"menu while restarting", `\| Restarting now \[disabled\] +\|`},
			{"tray stopped", `stopped the tray \(pid \d+, it exited cleanly\) and the private bus`},
			{"CVE closed in lab", `CVE-2026-4242 ring by ring[^\n]*\n\s*RING\s+NODE\s+ACME-TOOL\s+CVE-2026-4242\s+FIX\n\s*lab\s+hq-lab-1\s+1\.1\s+closed\s+installed\n`},
			{"CVE closed in pilot", `pilot\s+\S+-pilot-1\s+1\.1\s+closed\s+installed\n\s*pilot\s+\S+-pilot-1\s+1\.1\s+closed\s+installed\n`},
			{"CVE open after the rollback", `broad\s+branch-desk-2\s+1\.0\s+OPEN \(critical, KEV\)\s+\S+ 1\.1; last: #\d+ install rolled-back`},
			{"apt through the site", `apt through the site: each agent's apt runs through its own verifying proxy`},
			{"apt traffic", `SITE\s+APT FILES\s+FROM VENDOR\s+FROM PEERS\s+FROM STORE\s+REFUSED\n(\s+(branch|hq)\s+(release|index|package)\s+\d+ B\s+\d+ B\s+\d+ B\s+0\n)+`},
			{"vendor copies", `since the release the vendor served \d+ index and package files \d+ times in all, at most \d+ times each, to 2 sites of \d+ apt agents and 1 time\(s\) to the admin making the ship's bundle`},
			{"ship installed offline", `NODE\s+RING\s+ACME-TOOL\s+LIBACME\s+APT FROM VENDOR\s+FROM PEERS\s+FROM STORE\s+LAST TRANSACTION\n\s*ship-pilot-1\s+pilot\s+1\.1\s+1\.1\s+0 B\s+\d+ B\s+\d+ B\s+#\d+ install installed[^\n]*(\n\s*ship-desk-\d\s+broad\s+1\.1\s+1\.1\s+0 B\s+[1-9]\d* B\s+\d+ B\s+#\d+ install installed[^\n]*){2}`},
			{"ship's advisories", `\$ patchring --socket \S+/ship-desk-2/patchringd\.sock vulns\n\s*Advisory database version 1 `},
			{"ship's devices", `\$ patchring --socket \S+ fleet unmanaged\n\s*Site ship: 2 unmanaged devices [^\n]*sweep on[^\n]*\n\s*MAC\s+VENDOR[^\n]*\n(\s*(00:80:77:31:00:50\s+Brother industries, LTD\.\s+10\.231\.0\.50|b8:a4:4f:31:00:51\s+Axis Communications AB\s+10\.231\.0\.51)[,\s][^\n]*\n){2}`},
			{"summary", `==> summary`},
		}
		rest := out
		for _, s := range steps {
			loc := regexp.MustCompile(s.pattern).FindStringIndex(rest)
			if loc == nil {
				t.Fatalf("%s: no %q after the previous key line; demo output:\n%s", s.name, s.pattern, out)
			}
			rest = rest[loc[1]:]
		}
		// The restart scene (demo_restart.go): make test installs
		// mmdebstrap, so the demo builds (or finds) its Debian 12 root.
		if m := regexp.MustCompile(`fewer reboots: [^\n]*\n\s*skipped: [^\n]*`).FindString(out); m != "" {
			t.Errorf("the restart scene was skipped:\n%s", m)
		} else {
			for _, p := range []string{
				`food runs as PID \d+, started by /etc/init\.d/food, and maps /usr/lib/libfoo\.so\.1 \(libfoo 1\.0\)`,
				`restarted food \(sysv\): restarted`,
				`food now runs as PID \d+ \(was \d+\) and maps /usr/lib/libfoo\.so\.1 \(libfoo 1\.1\); reboot required: false`,
				`transaction 2: installed; reboot required: true\n\s+because linux-image-demo 1\.1 changed \(kernel`,
			} {
				if !regexp.MustCompile(p).MatchString(out) {
					t.Errorf("restart scene: no %q in the demo's output", p)
				}
			}
		}
		// The summary table: every ring reached; the broken node rolled back.
		rows := map[string]string{
			"hq-lab-1":       `hq\s+lab\s+1\.1\s+1\.1\s+#\d+ install installed`,
			"hq-pilot-1":     `hq\s+pilot\s+1\.1\s+1\.1\s+#\d+ install installed`,
			"hq-rpm-1":       `hq\s+lab\s+1\.1-1\s+1\.1-1\s+#\d+ install installed`,
			"hq-desk-1":      `hq\s+broad\s+1\.1\s+1\.1\s+#\d+ install installed`,
			"branch-pilot-1": `branch\s+pilot\s+1\.1\s+1\.1\s+#\d+ install installed`,
			"branch-desk-1":  `branch\s+broad\s+1\.1\s+1\.1\s+#\d+ install installed\s+rebooting`,
			"branch-desk-2":  `branch\s+broad\s+1\.0\s+1\.0\s+#\d+ install rolled-back`,
			"ship-pilot-1":   `ship\s+pilot\s+1\.1\s+1\.1\s+#\d+ install installed`,
			"ship-desk-1":    `ship\s+broad\s+1\.1\s+1\.1\s+#\d+ install installed`,
			"ship-desk-2":    `ship\s+broad\s+1\.1\s+1\.1\s+#\d+ install installed`,
		}
		for node, row := range rows {
			if !regexp.MustCompile(`(?m)^\s+` + node + `\s+` + row).MatchString(rest) {
				t.Errorf("summary: no row %s %s in\n%s", node, row, rest)
			}
		}
	})

	t.Run("cleaned up", func(t *testing.T) {
		left, err := os.ReadDir(tmp)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range left {
			t.Errorf("the demo left %s behind", filepath.Join(tmp, e.Name()))
		}
		if out, err := exec.Command("ip", "netns", "list").Output(); err != nil {
			t.Errorf("ip netns list: %v", err)
		} else if m := regexp.MustCompile(`(?m)^`+shipNSPrefix+strconv.Itoa(demo.Process.Pid)+`-\S+`).FindAllString(string(out), -1); len(m) > 0 {
			t.Errorf("the demo left network namespaces behind: %v", m)
		}
		pids := regexp.MustCompile(`\bpid (\d+)`).FindAllStringSubmatch(out, -1)
		if len(pids) < len(fleet)+len(shipFleet)+1 {
			t.Fatalf("found %d pids in the output, want the %d agents' and the tray's", len(pids), len(fleet)+1)
		}
		for _, m := range pids {
			pid, _ := strconv.Atoi(m[1])
			// The agents run from bin, then from their sandboxed roots
			// under tmp (the self-update scene).
			if runningFrom(pid, bin) || runningFrom(pid, tmp) {
				t.Errorf("process %d is still running after the demo ended", pid)
				if p, err := os.FindProcess(pid); err == nil {
					p.Kill()
				}
			}
		}
	})
}

// runningFrom says whether pid is a live process running a program from
// dir (so a recycled pid does not count).
func runningFrom(pid int, dir string) bool {
	cmdline, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	if err != nil {
		return false
	}
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err == nil {
		// A zombie has exited; its parent has not reaped it yet.
		if f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:])); len(f) > 0 && f[0] == "Z" {
			return false
		}
	}
	return strings.HasPrefix(string(cmdline), dir+"/")
}

// Without dbus-daemon the demo says so and defers with the CLI; waiting
// for the reboot is then the plain wait.
func TestDeferFromTrayWithoutDBusDaemon(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // no dbus-daemon anywhere
	bin := t.TempDir()
	// A stand-in for the patchring CLI that records its arguments.
	script := "#!/bin/sh\necho \"$@\" > \"${0%/*}/args\"\necho 'Restart deferred.'\n"
	if err := os.WriteFile(filepath.Join(bin, "patchring"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	d := &demo{bin: bin, start: time.Now()}
	a := &agent{agentSpec: agentSpec{name: "desk-1"}, dir: t.TempDir(), sock: "/run/demo/desk-1.sock", done: make(chan error)}

	out := captureStdout(t, func() {
		u, err := d.deferFromTray(t.Context(), a)
		if err != nil {
			t.Fatalf("deferFromTray: %v", err)
		}
		if u.bus != nil {
			t.Errorf("a bus was started without dbus-daemon")
		}
		if len(d.cleanups) != 0 {
			t.Errorf("%d cleanups registered for a desktop that was never started", len(d.cleanups))
		}
		if err := os.WriteFile(filepath.Join(a.dir, "rebooted"), []byte("12:00:00 restarting\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := u.waitReboot(t.Context()); err != nil {
			t.Fatalf("waitReboot: %v", err)
		}
	})
	args, err := os.ReadFile(filepath.Join(bin, "args"))
	if err != nil {
		t.Fatalf("the CLI was not run: %v", err)
	}
	if got, want := strings.TrimSpace(string(args)), "--socket /run/demo/desk-1.sock reboot defer 10s"; got != want {
		t.Errorf("CLI run with %q, want %q", got, want)
	}
	for _, want := range []string{
		"dbus-daemon is not installed (Debian package dbus-daemon)",
		"the user defers with the CLI instead",
		"$ patchring --socket /run/demo/desk-1.sock reboot defer 10s",
		"Restart deferred.",
		"patchringd ran the reboot command (simulated here): 12:00:00 restarting",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// captureStdout runs f with os.Stdout going to a pipe and returns what f
// printed.
func captureStdout(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stdout
	os.Stdout = w
	read := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(r)
		read <- string(b)
	}()
	defer func() {
		os.Stdout = saved
		w.Close()
		r.Close()
	}()
	f()
	os.Stdout = saved
	if err := w.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
		t.Fatal(err)
	}
	return <-read
}
