//go:build linux

package sitetest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/patchring/patchring/internal/testutil"
	"github.com/patchring/patchring/platform/apt/apttest"
	"github.com/patchring/patchring/platform/detach"
)

// The agent's package in a site test: the real patchringd of one version
// in a .deb named patchring, with maintainer scripts that do what the
// shipped ones do through an init system (prerm stops the agent, postinst
// starts it) against the node's service (below) instead of the host's.
// Scripts run chrootless on the host in a sandbox, so every path has
// $DPKG_ROOT in front.
const (
	// selfPrerm stops the running agent as an init script would: SIGTERM
	// to the PID in the pid file, then wait until the service saw it exit
	// (it removes the pid file), at most 30 s.
	selfPrerm = `#!/bin/sh
pidfile="$DPKG_ROOT/run/patchringd.pid"
case "$1" in
remove|upgrade|deconfigure)
	if [ -f "$pidfile" ]; then
		kill -TERM "$(cat "$pidfile")" 2>/dev/null || true
		i=0
		while [ -f "$pidfile" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
	fi
	;;
esac
exit 0
`
	// selfPostinst asks the node's service to start the agent now
	// installed, when the service exists (not while the test seeds the
	// sandbox, as policy-rc.d would forbid it).
	selfPostinst = `#!/bin/sh
ctl="$DPKG_ROOT/run/patchringd.ctl"
if [ "$1" = configure ] && [ -p "$ctl" ]; then
	timeout 10 sh -c 'echo start >"$1"' sh "$ctl" || echo "postinst: the service did not take the start request" >&2
fi
exit 0
`
)

// How the agent of a test package behaves.
type agentKind int

const (
	agentReal    agentKind = iota // the real patchringd
	agentNoStart                  // exits at once: an agent that cannot start
	agentNoAPI                    // the real patchringd, whose local API socket disappears once it is up
)

// noAPIWrapper is /usr/sbin/patchringd of an agentNoAPI package: it runs
// the real agent (from /usr/lib/patchring-test) and removes the socket the
// agent's config names as soon as it appears, so the agent runs, gossips
// and verifies, but nothing reaches its local API.
const noAPIWrapper = `#!/bin/sh
cfg=""; prev=""
for a in "$@"; do [ "$prev" = --config ] && cfg=$a; prev=$a; done
sock=$(sed -n 's/^socket: *//p' "$cfg")
(
	i=0
	while [ $i -lt 600 ]; do
		if [ -S "$sock" ]; then
			rm -f "$sock"
			echo "patchringd (broken on purpose): removed the local API socket $sock" >&2
			exit 0
		fi
		sleep 0.1; i=$((i+1))
	done
) &
exec "$(dirname "$0")/../lib/patchring-test/patchringd" "$@"
`

// selfDeb builds the agent's package at version into dir, with dpkg-deb
// (the real binary is tens of megabytes: nfpm under the race detector
// takes minutes for it). daemon is the real patchringd binary (unused for
// agentNoStart).
func selfDeb(t testing.TB, dir, version string, kind agentKind, daemon string) string {
	t.Helper()
	stage := filepath.Join(t.TempDir(), "patchring-"+version)
	for _, d := range []string{"DEBIAN", "usr/sbin", "usr/lib/patchring-test"} {
		if err := os.MkdirAll(filepath.Join(stage, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(stage, "usr/sbin/patchringd")
	copyBin := func(dst string) {
		if out, err := exec.Command("cp", daemon, dst).CombinedOutput(); err != nil {
			t.Fatalf("cp %s: %v %s", daemon, err, out)
		}
	}
	switch kind {
	case agentReal:
		copyBin(bin)
	case agentNoStart:
		script := "#!/bin/sh\necho \"patchringd " + version + ": broken on purpose, cannot start\" >&2\nexit 1\n"
		if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	case agentNoAPI:
		copyBin(filepath.Join(stage, "usr/lib/patchring-test/patchringd"))
		if err := os.WriteFile(bin, []byte(noAPIWrapper), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	control := "Package: patchring\nVersion: " + version + "\nArchitecture: " + apttest.DefaultArch +
		"\nMaintainer: patchring tests <tests@patchring.invalid>\nDescription: patchring agent (site test build)\n"
	for name, body := range map[string]string{"control": control, "prerm": selfPrerm, "postinst": selfPostinst} {
		mode := os.FileMode(0o755)
		if name == "control" {
			mode = 0o644
		}
		if err := os.WriteFile(filepath.Join(stage, "DEBIAN", name), []byte(body), mode); err != nil {
			t.Fatal(err)
		}
	}
	deb := filepath.Join(dir, "patchring_"+version+"_"+apttest.DefaultArch+".deb")
	if out, err := exec.Command("dpkg-deb", "--root-owner-group", "-Zgzip", "-z1", "--build", stage, deb).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb --build %s: %v\n%s", stage, err, out)
	}
	return deb
}

// service runs a node's agent the way an init system runs patchringd
// where there is no systemd: the binary the patchring package installed in
// the node's sandbox, started when the package's postinst asks (through a
// FIFO, run/patchringd.ctl in the sandbox) and stopped by its prerm
// (through the pid file, run/patchringd.pid, that the service writes for
// each agent it starts and removes once that agent exited). An agent that
// exits stays down until asked again. When the test ends the service takes
// no more requests, stops the agent's detached self-update jobs
// (platform/detach's StopAll) and ends the running agent by the PID it
// started (SIGTERM, SIGKILL after 15 s).
type service struct {
	n       *node
	cfgFile string
	bin     string
	ctl     string
	pidFile string
	fifo    *os.File
	reader  chan struct{} // closed when the FIFO's reader ended

	mu     sync.Mutex
	closed bool
	cmd    *exec.Cmd
	done   chan struct{} // of cmd
	runs   []string      // how each agent the service started ended ("" while it runs)
}

// startService creates n's service and starts its agent.
func startService(t testing.TB, n *node, cfgFile string) *service {
	t.Helper()
	sv := &service{n: n, cfgFile: cfgFile, bin: n.sb.Path("usr/sbin/patchringd"),
		ctl: n.sb.Path("run/patchringd.ctl"), pidFile: n.sb.Path("run/patchringd.pid"), reader: make(chan struct{})}
	if err := os.MkdirAll(filepath.Dir(sv.ctl), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(sv.ctl, 0o600); err != nil {
		t.Fatalf("service of %s: %v", n.hostname, err)
	}
	// Read and write: the reader never sees end of file between writers,
	// and a writer never blocks while the service runs.
	f, err := os.OpenFile(sv.ctl, os.O_RDWR, 0)
	if err != nil {
		t.Fatalf("service of %s: %v", n.hostname, err)
	}
	sv.fifo = f
	go sv.read()
	t.Cleanup(func() {
		if err := sv.close(); err != nil {
			t.Errorf("service of %s: %v", n.hostname, err)
		}
	})
	if err := sv.start(); err != nil {
		t.Fatal(err)
	}
	return sv
}

// read takes the requests written into the FIFO, one a line.
func (sv *service) read() {
	defer close(sv.reader)
	sc := bufio.NewScanner(sv.fifo)
	for sc.Scan() {
		switch line := strings.TrimSpace(sc.Text()); line {
		case "start":
			if err := sv.start(); err != nil {
				sv.logf("service: %v", err)
			}
		case "quit":
			return
		default:
			sv.logf("service: unknown request %q", line)
		}
	}
}

// logf appends a line to the node's log (where the agents write theirs).
func (sv *service) logf(format string, args ...any) {
	f, err := os.OpenFile(sv.n.logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "sitetest %s "+format+"\n", append([]any{time.Now().UTC().Format(time.RFC3339Nano)}, args...)...)
}

// start starts the installed agent unless one runs or the test ended.
func (sv *service) start() error {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	if sv.closed {
		return errors.New("the test ended: not starting the agent")
	}
	if sv.cmd != nil {
		return nil // running: start is idempotent, as an init script's is
	}
	logf, err := os.OpenFile(sv.n.logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("start %s: %w", sv.n.hostname, err)
	}
	cmd := nsCommand(sv.n.ns, sv.bin, "run", "--config", sv.cfgFile)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Should the test process die without its cleanup, the kernel kills
	// the agent.
	// A process group of its own (led by the agent's PID): close ends
	// what the agent's binary started besides the agent, by that PID.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := testutil.Start(cmd); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", sv.n.hostname, err)
	}
	if err := os.WriteFile(sv.pidFile, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
		return fmt.Errorf("start %s: %w", sv.n.hostname, err)
	}
	done := make(chan struct{})
	sv.cmd, sv.done = cmd, done
	sv.runs = append(sv.runs, "")
	run := len(sv.runs) - 1
	go func() {
		err := cmd.Wait()
		logf.Close()
		sv.mu.Lock()
		if err == nil {
			err = errors.New("exit status 0")
		}
		sv.runs[run] = err.Error()
		// Anything the agent's binary left in its group goes with it.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		sv.cmd, sv.done = nil, nil
		_ = os.Remove(sv.pidFile)
		sv.mu.Unlock()
		close(done)
	}()
	return nil
}

// Runs reports how each agent the service started ended ("" for the one
// running).
func (sv *service) Runs() []string {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	return append([]string(nil), sv.runs...)
}

// Running reports whether an agent runs.
func (sv *service) Running() bool {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	return sv.cmd != nil
}

// close ends the service: no more starts, the FIFO gone, the agent's
// detached jobs stopped, the running agent ended by its PID.
func (sv *service) close() error {
	sv.mu.Lock()
	sv.closed = true
	sv.mu.Unlock()
	var errs []error
	// A postinst finds no FIFO from now on; the reader ends on "quit".
	if err := os.Remove(sv.ctl); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	if _, err := sv.fifo.WriteString("quit\n"); err != nil {
		errs = append(errs, err)
	}
	<-sv.reader
	sv.fifo.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	jobs := &detach.Runner{Dir: filepath.Join(sv.n.dir, "state", "selfupdate")}
	if err := jobs.StopAll(ctx); err != nil {
		errs = append(errs, fmt.Errorf("stop the agent's detached jobs: %w", err))
	}
	sv.mu.Lock()
	cmd, done := sv.cmd, sv.done
	sv.mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		t := time.NewTimer(15 * time.Second)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			_ = cmd.Process.Signal(syscall.SIGKILL)
			<-done
		}
	}
	return errors.Join(errs...)
}
