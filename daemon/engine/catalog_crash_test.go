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

// catalogAgentEnv makes the test binary an agent that refreshes the TUF
// repository at CATALOG_ORIGIN and runs one engine cycle (see
// catalogAgentMain). It is checked in init, before TestMain.
const catalogAgentEnv = "PATCHRING_TEST_CATALOG_AGENT"

func init() {
	if os.Getenv(catalogAgentEnv) != "" {
		os.Exit(catalogAgentMain())
	}
}

func catalogAgentMain() int {
	root := os.Getenv("SB_ROOT")
	sb := &apttest.Sandbox{Root: root, AdminDir: filepath.Join(root, "var/lib/dpkg"), AptConfig: os.Getenv("SB_APT_CONFIG"), Arch: apttest.DefaultArch}
	t := &agentTB{}
	defer t.cleanup()
	trusted, err := os.ReadFile(os.Getenv("CATALOG_ROOT"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	n := openCatalogNode(t, "pilot-1", []string{"pilot"}, sb, os.Getenv("CATALOG_ORIGIN"), trusted, os.Getenv("AGENT_STATE"))
	if err := n.eng.Cycle(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "cycle:", err)
		return 1
	}
	return 0
}

// crashWorld is a catalog with vendor-app 2.0 and next (2.1 unless
// given), and a node's sandbox with 2.0 installed.
func crashWorld(t *testing.T, next apttest.Package) (*catalogWorld, *apttest.Sandbox, string) {
	t.Helper()
	w := newCatalogWorld(t, "")
	old := w.build(t, vendorPkg("vendor-app", "2.0"))
	w.add(t, vendorPkg("vendor-app", "2.0"))
	if next.Name == "" {
		next = vendorPkg("vendor-app", "2.1")
	}
	w.add(t, next)
	sb := w.sandbox(t, w.libacme, old)
	rootFile := filepath.Join(t.TempDir(), "root.json")
	if err := os.WriteFile(rootFile, w.root, 0o644); err != nil {
		t.Fatal(err)
	}
	return w, sb, rootFile
}

// TestCatalogCrashAtEveryStep kills the agent with SIGKILL right after
// each journaled step of a catalog upgrade, restarts it, and checks that
// vendor-app ends at exactly 2.0 or 2.1, dpkg's audit is clean and the
// journal explains what happened; the next cycle completes the upgrade.
func TestCatalogCrashAtEveryStep(t *testing.T) {
	steps := append(append([]string{}, engine.InstallSteps...), engine.CrashAfterInstall)
	for _, step := range steps {
		t.Run(step, func(t *testing.T) {
			w, sb, rootFile := crashWorld(t, apttest.Package{})
			state := filepath.Join(w.stateDir, "agent")
			out, err := runCatalogAgent(t, w, sb, rootFile, state, step, false)
			var ee *exec.ExitError
			if err == nil || !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("agent was not killed at %s: %v\n%s", step, err, out)
			}

			n := openCatalogNode(t, "pilot-1", []string{"pilot"}, sb, w.srv.URL, w.root, state)
			if err := n.eng.Recover(context.Background()); err != nil {
				t.Fatalf("recover: %v", err)
			}
			v := n.versionOf("vendor-app")
			if v != "2.0" && v != "2.1" {
				t.Fatalf("after a crash at %s vendor-app is %q: neither old nor new", step, v)
			}
			n.audit()
			h := n.history()
			if len(h) != 1 || h[0].Open() || h[0].Items[0].Source != "catalog" {
				t.Fatalf("journal after recovery: %+v", h)
			}
			tx := h[0]
			if !hasStepName(tx, engine.StepRecover) {
				t.Errorf("journal does not say it recovered: %s", stepNames(tx))
			}
			switch {
			case v == "2.1" && tx.Outcome != engine.OutcomeInstalled:
				t.Errorf("2.1 installed but the journal says %s", tx.Outcome)
			case v == "2.0" && tx.Outcome == engine.OutcomeInstalled:
				t.Errorf("2.0 still installed but the journal says installed")
			}
			n.cycle()
			if v := n.versionOf("vendor-app"); v != "2.1" {
				t.Errorf("the next cycle did not install 2.1: %q (history %+v)", v, n.history())
			}
			n.audit()
		})
	}
}

// TestCatalogPowerLossDuringDpkg kills the agent together with apt and
// dpkg while 2.1's postinst runs; the restart runs dpkg --configure -a and
// ends at a whole version.
func TestCatalogPowerLossDuringDpkg(t *testing.T) {
	next := vendorPkg("vendor-app", "2.1")
	next.Postinst = "#!/bin/sh\nif [ ! -e \"$DPKG_ROOT/var/lib/vendor-killed\" ]; then touch \"$DPKG_ROOT/var/lib/vendor-killed\"; kill -9 -$(cut -d\" \" -f5 /proc/$$/stat); sleep 5; fi\nexit 0\n"
	w, sb, rootFile := crashWorld(t, next)
	state := filepath.Join(w.stateDir, "agent")
	if out, err := runCatalogAgent(t, w, sb, rootFile, state, "", true); err == nil {
		t.Fatalf("agent survived the power loss:\n%s", out)
	}
	if _, status, _ := sb.InstalledVersion(context.Background(), "vendor-app"); status == "installed" {
		t.Fatalf("package state after the kill is %q; the test did not interrupt dpkg", status)
	}
	n := openCatalogNode(t, "pilot-1", []string{"pilot"}, sb, w.srv.URL, w.root, state)
	if err := n.eng.Recover(context.Background()); err != nil {
		t.Fatalf("recover: %v", err)
	}
	if v := n.versionOf("vendor-app"); v != "2.1" && v != "2.0" {
		t.Fatalf("vendor-app is %q after recovery", v)
	}
	n.audit()
	tx := n.history()[0]
	if tx.Open() || !strings.Contains(stepDetail(tx, engine.StepRecover), "dpkg --configure -a") {
		t.Fatalf("journal does not explain the recovery: %s", stepNames(tx))
	}
}

func runCatalogAgent(t *testing.T, w *catalogWorld, sb *apttest.Sandbox, rootFile, state, crashAt string, ownGroup bool) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), catalogAgentEnv+"=1", "SB_ROOT="+sb.Root, "SB_APT_CONFIG="+sb.AptConfig,
		"AGENT_STATE="+state, "CATALOG_ORIGIN="+w.srv.URL, "CATALOG_ROOT="+rootFile,
		engine.CrashEnv+"="+crashAt, "GORACE=atexit_sleep_ms=0")
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
