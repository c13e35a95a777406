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
	"github.com/patchring/patchring/platform/apt/apttest"
)

// The test binary doubles as an agent that runs one engine cycle and is
// killed at a crash point (see engine.CrashEnv).
func TestMain(m *testing.M) {
	switch os.Getenv("PATCHRING_TEST_AGENT") {
	case "":
	case "dnf":
		os.Exit(dnfAgentMain())
	case "chroot":
		os.Exit(chrootAgentMain())
	default:
		os.Exit(agentMain())
	}
	os.Exit(m.Run())
}

// agentTB lets the agent process reuse the test fixture: failures end the
// process, cleanups run at exit.
type agentTB struct {
	testing.TB // nil: only the methods below are used
	cleanups   []func()
}

func (a *agentTB) Helper()           {}
func (a *agentTB) Cleanup(f func())  { a.cleanups = append(a.cleanups, f) }
func (a *agentTB) Fatal(args ...any) { fmt.Fprintln(os.Stderr, args...); os.Exit(3) }
func (a *agentTB) Fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(3)
}
func (a *agentTB) cleanup() {
	for i := len(a.cleanups) - 1; i >= 0; i-- {
		a.cleanups[i]()
	}
}

func agentMain() int {
	sb := &apttest.Sandbox{
		Root:      os.Getenv("SB_ROOT"),
		AdminDir:  filepath.Join(os.Getenv("SB_ROOT"), "var/lib/dpkg"),
		AptConfig: os.Getenv("SB_APT_CONFIG"),
		Arch:      apttest.DefaultArch,
	}
	t := &agentTB{}
	defer t.cleanup()
	pol := mustPolicy(t, os.Getenv("AGENT_POLICY_EXTRA"))
	n := openNode(t, "pilot-1", sb, []string{"pilot"}, pol, os.Getenv("AGENT_STATE"))
	if err := n.eng.Cycle(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "cycle:", err)
		return 1
	}
	return 0
}

// TestCrashAtEveryStep kills the agent with SIGKILL right after each
// journaled step of an install, restarts it, and checks that acme-tool ends
// at exactly 1.0 or 1.1, dpkg's audit is clean and the journal explains
// what happened.
func TestCrashAtEveryStep(t *testing.T) {
	steps := append(append([]string{}, engine.InstallSteps...), engine.CrashAfterInstall)
	for _, step := range steps {
		t.Run(step, func(t *testing.T) {
			w := newWorld(t, apttest.Package{})
			sb := apttest.MustSandbox(t, apttest.SandboxOptions{TempDir: w.sandboxDir})
			sb.MustAddRepo(t, "test", w.repo)
			if err := sb.DpkgInstall(context.Background(), w.deb10); err != nil {
				t.Fatal(err)
			}
			w.publish11(t)
			state := filepath.Join(w.stateDir, "agent")

			out, err := runAgent(t, sb, state, step, false)
			var ee *exec.ExitError
			if err == nil || !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("agent was not killed at %s: %v\n%s", step, err, out)
			}

			// Restart: recovery finishes or rolls back.
			n := openNode(t, "pilot-1", sb, []string{"pilot"}, mustPolicy(t, ""), state)
			if err := n.eng.Recover(context.Background()); err != nil {
				t.Fatalf("recover: %v", err)
			}
			v := n.version()
			if v != "1.0" && v != "1.1" {
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
			case v == "1.1" && tx.Outcome != engine.OutcomeInstalled:
				t.Errorf("1.1 installed but the journal says %s", tx.Outcome)
			case v == "1.0" && tx.Outcome == engine.OutcomeInstalled:
				t.Errorf("1.0 still installed but the journal says installed")
			}
			// A later cycle completes the update either way.
			n.cycle()
			if n.version() != "1.1" {
				t.Errorf("the next cycle did not install 1.1 (history %+v)", n.history())
			}
			n.audit()
		})
	}
}

// TestPowerLossDuringDpkg kills the agent together with apt and dpkg (its
// whole process group, as a power loss would) while 1.1's postinst runs.
// The restart runs dpkg --configure -a and finishes the install.
func TestPowerLossDuringDpkg(t *testing.T) {
	w := newWorld(t, apttest.Package{Name: "acme-tool", Version: "1.1",
		Files: []apttest.File{{Path: "/usr/share/acme-tool/VERSION", Body: []byte("1.1\n")}},
		// The first run of the postinst takes the whole agent down.
		Postinst: "#!/bin/sh\nif [ ! -e \"$DPKG_ROOT/var/lib/acme-killed\" ]; then touch \"$DPKG_ROOT/var/lib/acme-killed\"; kill -9 -$(cut -d\" \" -f5 /proc/$$/stat); sleep 5; fi\nexit 0\n"})
	sb := apttest.MustSandbox(t, apttest.SandboxOptions{TempDir: w.sandboxDir})
	sb.MustAddRepo(t, "test", w.repo)
	if err := sb.DpkgInstall(context.Background(), w.deb10); err != nil {
		t.Fatal(err)
	}
	w.publish11(t)
	state := filepath.Join(w.stateDir, "agent")
	out, err := runAgent(t, sb, state, "", true)
	if err == nil {
		t.Fatalf("agent survived the power loss:\n%s", out)
	}
	// dpkg was interrupted: the package is half-configured.
	if _, status, _ := sb.InstalledVersion(context.Background(), "acme-tool"); status == "installed" {
		t.Fatalf("package state after the kill is %q; the test did not interrupt dpkg", status)
	}
	n := openNode(t, "pilot-1", sb, []string{"pilot"}, mustPolicy(t, ""), state)
	if err := n.eng.Recover(context.Background()); err != nil {
		t.Fatalf("recover: %v", err)
	}
	if v := n.version(); v != "1.1" && v != "1.0" {
		t.Fatalf("acme-tool is %q after recovery", v)
	}
	n.audit()
	tx := n.history()[0]
	if tx.Open() || !strings.Contains(stepDetail(tx, engine.StepRecover), "dpkg --configure -a") {
		t.Fatalf("journal does not explain the recovery: %+v", tx.Steps)
	}
}

func runAgent(t *testing.T, sb *apttest.Sandbox, state, crashAt string, ownGroup bool, env ...string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PATCHRING_TEST_AGENT=1", "SB_ROOT="+sb.Root, "SB_APT_CONFIG="+sb.AptConfig,
		"AGENT_STATE="+state, engine.CrashEnv+"="+crashAt, "GORACE=atexit_sleep_ms=0")
	cmd.Env = append(cmd.Env, env...)
	if ownGroup {
		// The agent leads its own process group so the postinst can kill
		// the agent, apt-get and dpkg at once.
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

func hasStep(tx *engine.Tx, name string) bool {
	return stepDetail(tx, name) != "" || hasStepName(tx, name)
}

func hasStepName(tx *engine.Tx, name string) bool {
	for _, s := range tx.Steps {
		if s.Name == name {
			return true
		}
	}
	return false
}

func stepDetail(tx *engine.Tx, name string) string {
	for _, s := range tx.Steps {
		if s.Name == name {
			return s.Detail
		}
	}
	return ""
}
