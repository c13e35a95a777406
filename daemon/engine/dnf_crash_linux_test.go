package engine_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/patchring/patchring/daemon/engine"
	"github.com/patchring/patchring/platform/dnf/dnftest"
)

// dnfAgentMain is the test binary as an agent on a dnf sandbox: one
// engine cycle, killed at the crash point.
func dnfAgentMain() int {
	sb := dnftest.OpenSandbox(os.Getenv("SB_DIR"))
	t := &agentTB{}
	defer t.cleanup()
	n := openDnfNode(t, "pilot-1", sb, []string{"pilot"}, dnfPolicy(t, ""), os.Getenv("AGENT_STATE"))
	if err := n.eng.Cycle(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "cycle:", err)
		return 1
	}
	return 0
}

func runDnfAgent(t *testing.T, sb *dnftest.Sandbox, state, crashAt string, ownGroup bool) ([]byte, error) {
	t.Helper()
	// Generous: dnf is slow on a loaded machine, and a timeout here would
	// kill the agent for the wrong reason.
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PATCHRING_TEST_AGENT=dnf", "SB_DIR="+sb.Dir,
		"AGENT_STATE="+state, engine.CrashEnv+"="+crashAt, "GORACE=atexit_sleep_ms=0")
	if ownGroup {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	}
	var buf strings.Builder
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if ownGroup {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // nothing of the group may outlive the test
	}
	return []byte(buf.String()), err
}

// TestDnfCrashAtEveryStep kills the agent with SIGKILL right after each
// journaled step of a dnf install, restarts it, and checks that acme-tool
// ends at exactly 1.0-1 or 1.1-1, the rpm database is clean and the
// journal explains what happened.
func TestDnfCrashAtEveryStep(t *testing.T) {
	t.Parallel()
	steps := append(append([]string{}, engine.InstallSteps...), engine.CrashAfterInstall)
	for _, step := range steps {
		t.Run(step, func(t *testing.T) {
			w := newDnfWorld(t, dnftest.Package{})
			n0 := w.newNode(t, "pilot-1", []string{"pilot"}, dnfPolicy(t, ""))
			w.publish11(t)
			state := filepath.Join(w.stateDir, "agent")

			out, err := runDnfAgent(t, n0.sb, state, step, false)
			var ee *exec.ExitError
			if err == nil || !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("agent was not killed at %s: %v\n%s", step, err, out)
			}
			n := openDnfNode(t, "pilot-1", n0.sb, []string{"pilot"}, dnfPolicy(t, ""), state)
			if err := n.eng.Recover(context.Background()); err != nil {
				t.Fatalf("recover: %v", err)
			}
			v := n.version()
			if v != "1.0-1" && v != "1.1-1" {
				t.Fatalf("after a crash at %s acme-tool is %q: neither old nor new", step, v)
			}
			n.audit()
			h := n.history()
			if len(h) != 1 || h[0].Open() {
				t.Fatalf("journal after recovery: %+v", h)
			}
			tx := h[0]
			if !hasStep(tx, engine.StepRecover) {
				t.Errorf("journal does not say it recovered: %+v", tx.Steps)
			}
			switch {
			case v == "1.1-1" && tx.Outcome != engine.OutcomeInstalled:
				t.Errorf("1.1-1 installed but the journal says %s", tx.Outcome)
			case v == "1.0-1" && tx.Outcome == engine.OutcomeInstalled:
				t.Errorf("1.0-1 still installed but the journal says installed")
			}
			n.cycle()
			if n.version() != "1.1-1" {
				t.Errorf("the next cycle did not install 1.1-1 (history %+v)", n.history())
			}
			n.audit()
		})
	}
}

// TestDnfPowerLossDuringRPM kills the agent together with dnf and rpm
// (its whole process group, as a power loss would) while 1.1's %post
// runs: rpm has added 1.1 and not yet erased 1.0. The restart finds both
// in the rpm database, removes the older, and finishes or rolls back.
func TestDnfPowerLossDuringRPM(t *testing.T) {
	t.Parallel()
	w := newDnfWorld(t, dnftest.Package{Name: "acme-tool", Version: "1.1",
		Files: []dnftest.File{{Path: "/usr/share/acme-tool/VERSION", Body: []byte("1.1\n")}},
		// The first run of the %post takes the whole agent down.
		Post: "if [ ! -e /var/lib/acme-killed ]; then : > /var/lib/acme-killed; kill -9 0; fi\nexit 0\n"})
	n0 := w.newNode(t, "pilot-1", []string{"pilot"}, dnfPolicy(t, ""))
	w.publish11(t)
	state := filepath.Join(w.stateDir, "agent")
	out, err := runDnfAgent(t, n0.sb, state, "", true)
	if err == nil {
		t.Fatalf("agent survived the power loss:\n%s", out)
	}
	if _, err := os.Stat(n0.sb.Path("var/lib/acme-killed")); err != nil {
		t.Fatalf("the %%post did not run: %v\nagent output:\n%s", err, out)
	}
	dups, err := n0.backend.Duplicates(context.Background())
	if err != nil || len(dups) == 0 {
		t.Fatalf("the kill did not interrupt rpm's transaction (duplicates %v, %v)", dups, err)
	}
	n := openDnfNode(t, "pilot-1", n0.sb, []string{"pilot"}, dnfPolicy(t, ""), state)
	if err := n.eng.Recover(context.Background()); err != nil {
		t.Fatalf("recover: %v", err)
	}
	if v := n.version(); v != "1.1-1" && v != "1.0-1" {
		t.Fatalf("acme-tool is %q after recovery", v)
	}
	n.audit()
	tx := n.history()[0]
	if tx.Open() || !strings.Contains(stepDetail(tx, engine.StepRecover), "interrupted transaction") {
		t.Fatalf("journal does not explain the recovery: %+v", tx.Steps)
	}
}

// TestDnfDiskFullRefusedBeforeStarting: the sandbox lives on a small
// tmpfs; the engine refuses before any transaction starts.
func TestDnfDiskFullRefusedBeforeStarting(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test mounts a tmpfs and needs root (make test runs as root)")
	}
	small := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=24m", "patchring-test", small).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", small).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", small, err, out)
		}
	})
	w := newDnfWorld(t, dnftest.Package{})
	w.sandboxDir = small
	testMinFree = 64 << 20
	t.Cleanup(func() { testMinFree = 1 })
	n := w.newNode(t, "pilot-1", []string{"pilot"}, dnfPolicy(t, ""))
	w.publish11(t)
	// The refusal is the cycle's error (and the engine's status).
	if err := n.eng.Cycle(t.Context()); err == nil || !strings.Contains(err.Error(), "not enough free disk") {
		t.Fatalf("cycle on a full disk: %v, want the refusal", err)
	}
	if v := n.version(); v != "1.0-1" {
		t.Fatalf("installed %q on a full disk", v)
	}
	if h := n.history(); len(h) != 0 {
		t.Fatalf("a transaction started on a full disk: %+v", h)
	}
	if _, err := n.eng.InstallNow(t.Context(), "acme-tool", "1.1-1"); err == nil || !strings.Contains(err.Error(), "not enough free disk") {
		t.Fatalf("install --now on a full disk: %v", err)
	}
}
