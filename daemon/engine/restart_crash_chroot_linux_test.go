package engine_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/patchring/patchring/daemon/engine"
	"github.com/patchring/patchring/internal/testutil"
	"github.com/patchring/patchring/platform/apt/apttest"
	"github.com/patchring/patchring/platform/services"
)

// healthUnless is a policy section whose health check fails while the file
// flag exists (a path on the host).
func healthUnless(flag string) string {
	return fmt.Sprintf("health_check:\n  command: [\"test\", \"!\", \"-e\", %q]\n  timeout: 30s\n", flag)
}

// libfooMapped returns the inode of the libfoo.so.1 that pid maps, and
// whether that file is deleted; 0 when it maps none.
func libfooMapped(pid int) (ino uint64, deleted bool) {
	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return 0, false
	}
	for line := range strings.SplitSeq(string(maps), "\n") {
		f := strings.Fields(line)
		if len(f) >= 6 && strings.HasSuffix(f[5], "/usr/lib/libfoo.so.1") {
			ino, _ := strconv.ParseUint(f[4], 10, 64)
			return ino, len(f) > 6 && f[6] == "(deleted)"
		}
	}
	return 0, false
}

// mapsLibfooVersion fails unless pid maps the root's current
// /usr/lib/libfoo.so.1 and that file is libfoo version.
func mapsLibfooVersion(t *testing.T, c *apttest.Chroot, pid int, version string) {
	t.Helper()
	p := c.Path("usr/lib/libfoo.so.1")
	body, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(string(body), "\nlibfoo "+version+"\n") {
		t.Fatalf("the root's libfoo.so.1 is not version %s", version)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	want := fi.Sys().(*syscall.Stat_t).Ino
	if ino, deleted := libfooMapped(pid); ino != want || deleted {
		t.Fatalf("PID %d maps libfoo.so.1 inode %d (deleted %v), want the current file (libfoo %s, inode %d)", pid, ino, deleted, version, want)
	}
}

// TestChrootRollbackRestartsServices: in a Debian 12 root, food maps
// libfoo 1.0; the upgrade to 1.1 restarts it onto 1.1, the health check
// fails, the transaction is rolled back, and the journaled
// restart-after-rollback step restarts food again: a new process maps
// libfoo 1.0.
func TestChrootRollbackRestartsServices(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: runs apt, dpkg and a service in a Debian root (run without -short, as make test does)")
	}
	apttest.GuardHostDB(t)
	apttest.GuardHostFiles(t, "/etc/init.d/food", "/usr/lib/libfoo.so.1", "/run/food.pid")
	ctx := context.Background()
	dir := t.TempDir()
	repo := apttest.MustStartRepo(t, apttest.RepoConfig{})
	c := apttest.MustChroot(t, apttest.ChrootOptions{})
	c.MustAddRepo(t, "vendor", repo)
	d := newDaemons(t, c)
	// The repository offers 1.0 too: a rollback needs its payload.
	lib10, food := apttest.MustBuildDeb(t, dir, libfooPackage(t, c, "1.0")), apttest.MustBuildDeb(t, dir, fooService)
	repo.MustAdd(t, lib10)
	repo.MustAdd(t, food)
	if err := c.DpkgInstall(ctx, lib10, food); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Run(ctx, "/etc/init.d/food", "start"); err != nil {
		t.Fatal(err)
	}
	first := d.current(t)
	mapsLibfooVersion(t, c, first, "1.0")
	repo.MustAdd(t, apttest.MustBuildDeb(t, dir, libfooPackage(t, c, "1.1")))

	unhealthy := filepath.Join(dir, "unhealthy")
	if err := os.WriteFile(unhealthy, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	n := newRestartNode(t, c, "restart_services: auto\n"+healthUnless(unhealthy))
	n.cycle(t)
	tx := n.latest(t)
	want := "planned:done fetch:done place:done install:done verify:done restart-services:done health-check:failed rollback:done restart-after-rollback:done completed:done"
	if tx.Outcome != engine.OutcomeRolledBack || chrootSteps(tx) != want {
		t.Fatalf("transaction: %s %q, steps %s, want %s", tx.Outcome, tx.Error, chrootSteps(tx), want)
	}
	if len(tx.Restarts) != 1 || tx.Restarts[0].Service != "food" || tx.Restarts[0].PIDs[0] != first {
		t.Fatalf("restarts onto 1.1: %+v, want food for PID %d", tx.Restarts, first)
	}
	if len(tx.RollbackRestarts) != 1 || tx.RollbackRestarts[0].Service != "food" || tx.RollbackRestarts[0].Result != engine.RestartDone ||
		tx.RollbackRestarts[0].PIDs[0] == first {
		t.Fatalf("restarts after the rollback: %+v, want food restarted from the process that ran 1.1", tx.RollbackRestarts)
	}
	onNew := tx.RollbackRestarts[0].PIDs[0]
	third := d.current(t)
	if third == first || third == onNew {
		t.Errorf("food was not restarted after the rollback: PIDs %d (1.0), %d (1.1), %d now", first, onNew, third)
	}
	mapsLibfooVersion(t, c, third, "1.0")
	if v, status, err := c.InstalledVersion(ctx, "libfoo"); err != nil || v != "1.0" || status != "ii " {
		t.Errorf("libfoo is %s (%q, %v) after the rollback, want 1.0", v, status, err)
	}
	if tx.Reboot || len(tx.Stale) != 0 || len(n.rebootReasons()) != 0 {
		t.Errorf("reboot %v, stale %+v, reasons %q: want none", tx.Reboot, tx.Stale, n.rebootReasons())
	}
	if api := tx.API(); len(api.Restarted) != 2 || api.Restarted[1] != "food (sysv): restarted after the rollback" {
		t.Errorf("history shows %q", api.Restarted)
	}
	n.audit(t)
}

// chrootAgentMain is the agent process of TestChrootCrashInRestartStep:
// one engine cycle on the Debian root the environment names, with
// platform/services driving the root's init scripts.
func chrootAgentMain() int {
	c := &apttest.Chroot{Root: os.Getenv("CHROOT_ROOT"), BinDir: os.Getenv("CHROOT_BIN"), Arch: apttest.DefaultArch}
	c.AdminDir = filepath.Join(c.Root, "var/lib/dpkg")
	c.AptConfig = filepath.Join(c.Root, "etc/apt/patchring-chroot.conf")
	t := &agentTB{}
	defer t.cleanup()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	n := openChrootNode(t, c, mustPolicy(t, os.Getenv("AGENT_POLICY_EXTRA")), os.Getenv("AGENT_STATE"), log, withServices(c))
	if err := n.eng.Cycle(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "cycle:", err)
		return 1
	}
	return 0
}

func withServices(c *apttest.Chroot) func(*engine.Config) {
	return func(cfg *engine.Config) {
		cfg.Services = services.New(services.Options{Root: c.Root, Command: c.Command, Timeout: time.Minute})
	}
}

// TestChrootCrashInRestartStep kills the agent (SIGKILL) at each crash
// point of the restart steps (engine.RestartCrashPoints) in a Debian 12
// root where food maps libfoo, restarts it, and checks that recovery
// resumes the journal: libfoo fully installed at the new version (or back
// at the old one for a failing update), food running on the libfoo that
// is installed, dpkg's audit clean, the transaction closed.
func TestChrootCrashInRestartStep(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: runs apt, dpkg and a service in a Debian root (run without -short, as make test does)")
	}
	apttest.GuardHostDB(t)
	apttest.GuardHostFiles(t, "/etc/init.d/food", "/usr/lib/libfoo.so.1", "/run/food.pid")
	ctx := context.Background()
	dir := t.TempDir()
	repo := apttest.MustStartRepo(t, apttest.RepoConfig{})
	c := apttest.MustChroot(t, apttest.ChrootOptions{})
	c.MustAddRepo(t, "vendor", repo)
	c.RouteTools(t)
	d := newDaemons(t, c)
	// The repository offers 1.0 too: a rollback needs its payload.
	lib10, food := apttest.MustBuildDeb(t, dir, libfooPackage(t, c, "1.0")), apttest.MustBuildDeb(t, dir, fooService)
	repo.MustAdd(t, lib10)
	repo.MustAdd(t, food)
	if err := c.DpkgInstall(ctx, lib10, food); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Run(ctx, "/etc/init.d/food", "start"); err != nil {
		t.Fatal(err)
	}
	unhealthy := filepath.Join(dir, "unhealthy")
	extra := "restart_services: auto\n" + healthUnless(unhealthy)
	state := filepath.Join(dir, "agent")
	if err := os.MkdirAll(state, 0o700); err != nil {
		t.Fatal(err)
	}

	installed := "1.0"
	for i, point := range engine.RestartCrashPoints {
		next := fmt.Sprintf("1.%d", i+1)
		failing := point == engine.StepRestartBack || point == engine.CrashAfterRestartBack
		chrootStep(t, fmt.Sprintf("%s: libfoo %s -> %s", point, installed, next), func(t *testing.T) {
			before := d.current(t)
			repo.MustAdd(t, apttest.MustBuildDeb(t, dir, libfooPackage(t, c, next)))
			os.Remove(unhealthy)
			if failing {
				if err := os.WriteFile(unhealthy, nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			out, err := runChrootAgent(t, c, state, point, extra)
			var ee *exec.ExitError
			if err == nil || !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("agent was not killed at %s: %v\n%s", point, err, out)
			}
			atCrash := d.current(t)

			n := openChrootNode(t, c, mustPolicy(t, extra), state, testutil.Logger(t), withServices(c))
			if err := n.eng.Recover(ctx); err != nil {
				t.Fatalf("recover: %v", err)
			}
			want := next
			if failing {
				want = installed
			}
			v, status, err := c.InstalledVersion(ctx, "libfoo")
			if err != nil || v != want || status != "ii " {
				t.Fatalf("after a crash at %s libfoo is %s (%q, %v), want %s", point, v, status, err, want)
			}
			n.audit(t)
			tx := n.latest(t)
			if tx.Open() || !hasStepName(tx, engine.StepRecover) {
				t.Fatalf("journal after recovery: %s %s", tx.Outcome, chrootSteps(tx))
			}
			if failing && tx.Outcome != engine.OutcomeRolledBack || !failing && tx.Outcome != engine.OutcomeInstalled {
				t.Fatalf("transaction %s (%q), steps %s", tx.Outcome, tx.Error, chrootSteps(tx))
			}
			// The step that was interrupted ran again after the recovery.
			last := engine.StepRestart
			if failing {
				last = engine.StepRestartBack
			}
			recovered, rerun := false, false
			for _, st := range tx.Steps {
				recovered = recovered || st.Name == engine.StepRecover
				if recovered && st.Name == last {
					rerun = true
					if st.Status != "done" {
						t.Errorf("%s after the recovery: %s (%s)", last, st.Status, st.Detail)
					}
				}
			}
			if !rerun {
				t.Errorf("steps %s: %s did not run again after the recovery", chrootSteps(tx), last)
			}
			now := d.current(t)
			if now == before {
				t.Errorf("food still runs as PID %d from before the update", before)
			}
			if point == engine.CrashAfterRestart || point == engine.CrashAfterRestartBack {
				// The restart happened before the crash: the recovery has
				// nothing left to restart.
				if now != atCrash {
					t.Errorf("food was restarted again after the crash: PID %d then, %d now", atCrash, now)
				}
			}
			mapsLibfooVersion(t, c, now, want)
			installed = want
			t.Logf("crash at %s: steps %s", point, chrootSteps(tx))
		})
	}
}

func runChrootAgent(t *testing.T, c *apttest.Chroot, state, crashAt, extra string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PATCHRING_TEST_AGENT=chroot", "CHROOT_ROOT="+c.Root, "CHROOT_BIN="+c.BinDir,
		"AGENT_STATE="+state, "AGENT_POLICY_EXTRA="+extra, engine.CrashEnv+"="+crashAt, "GORACE=atexit_sleep_ms=0")
	var buf strings.Builder
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	return []byte(buf.String()), err
}
