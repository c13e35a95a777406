package engine_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/patchring/patchring/daemon/engine"
	"github.com/patchring/patchring/platform/apt"
	"github.com/patchring/patchring/platform/apt/apttest"
	"github.com/patchring/patchring/platform/services"
)

// libfooPackage is libfoo at version: /usr/lib/libfoo.so.1, a real shared
// object (the root's own libdl.so.2, with the version appended, which the
// loader ignores) that a process maps with LD_PRELOAD.
func libfooPackage(t *testing.T, c *apttest.Chroot, version string) apttest.Package {
	t.Helper()
	libs, _ := filepath.Glob(c.Path("usr/lib/*/libdl.so.2"))
	if len(libs) == 0 {
		t.Fatal("the Debian root has no libdl.so.2")
	}
	body, err := os.ReadFile(libs[0])
	if err != nil {
		t.Fatal(err)
	}
	return apttest.Package{Name: "libfoo", Version: version, Files: []apttest.File{
		{Path: "/usr/lib/libfoo.so.1", Body: append(body, []byte("\nlibfoo "+version+"\n")...), Mode: 0o644},
	}}
}

// fooService is the package food: a daemon (sleep with libfoo preloaded)
// and its SysV init script, which starts it with start-stop-daemon and a
// PID file, and fails to start while /etc/food/fail-start exists.
var fooService = apttest.Package{Name: "food", Version: "1.0", Depends: []string{"libfoo"}, Files: []apttest.File{
	{Path: "/usr/sbin/food", Mode: 0o755, Body: []byte("#!/bin/sh\nexec env LD_PRELOAD=/usr/lib/libfoo.so.1 sleep infinity\n")},
	{Path: "/etc/init.d/food", Mode: 0o755, Body: []byte(`#!/bin/sh
# food: a test daemon that maps libfoo.
PIDFILE=/run/food.pid
case "$1" in
start)
	if [ -e /etc/food/fail-start ]; then echo "food: failing to start on demand" >&2; exit 1; fi
	start-stop-daemon --start --quiet --background --make-pidfile --pidfile $PIDFILE --exec /usr/sbin/food
	;;
stop)
	start-stop-daemon --stop --quiet --retry 10 --oknodo --remove-pidfile --pidfile $PIDFILE
	;;
restart)
	"$0" stop && "$0" start
	;;
*)
	echo "usage: $0 start|stop|restart" >&2; exit 3
	;;
esac
`)},
}}

// restartNode is an engine on a Debian root with platform/services
// driving the root's own init scripts; it records what it tells the
// reboot logic.
type restartNode struct {
	*chrootNode
	mu      sync.Mutex
	reboots []string
}

func newRestartNode(t *testing.T, c *apttest.Chroot, extraPolicy string) *restartNode {
	t.Helper()
	n := &restartNode{}
	n.chrootNode = newChrootNode(t, c, mustPolicy(t, extraPolicy), func(cfg *engine.Config) {
		cfg.Services = services.New(services.Options{Root: c.Root, Command: c.Command, Timeout: time.Minute})
		cfg.OnReboot = func(_ time.Time, reason string, _ []string) {
			n.mu.Lock()
			n.reboots = append(n.reboots, reason)
			n.mu.Unlock()
		}
	})
	return n
}

func (n *restartNode) rebootReasons() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.reboots...)
}

// daemons tracks the food processes a test started, to stop them by PID
// when it ends.
type daemons struct {
	c    *apttest.Chroot
	mu   sync.Mutex
	pids map[int]bool
}

func newDaemons(t *testing.T, c *apttest.Chroot) *daemons {
	d := &daemons{c: c, pids: map[int]bool{}}
	t.Cleanup(func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		for pid := range d.pids {
			// Only a process still running in this root is ours (the PID
			// may have been reused).
			if root, err := os.Readlink(fmt.Sprintf("/proc/%d/root", pid)); err == nil && root == c.Root {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	return d
}

// current returns food's PID from its PID file, waiting until it maps
// libfoo.so.1; it fails when there is none.
func (d *daemons) current(t *testing.T) int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		data, err := os.ReadFile(d.c.Path("run/food.pid"))
		if err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil {
				d.mu.Lock()
				d.pids[pid] = true
				d.mu.Unlock()
				if maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid)); err == nil && strings.Contains(string(maps), "/usr/lib/libfoo.so.1") {
					return pid
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("food is not running with libfoo mapped (pid file: %q, %v)", data, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// mapsLibfoo returns how pid maps libfoo: "current", "deleted", or "" when
// it does not map it (or is gone).
func mapsLibfoo(pid int) string {
	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return ""
	}
	for line := range strings.SplitSeq(string(maps), "\n") {
		if strings.Contains(line, "/usr/lib/libfoo.so.1") {
			if strings.HasSuffix(line, " (deleted)") {
				return "deleted"
			}
			return "current"
		}
	}
	return ""
}

// TestChrootServiceRestartInsteadOfReboot: in a Debian 12 root, the
// service food (started through its init script) maps libfoo 1.0. The
// engine upgrades libfoo to 1.1 with restart_services: auto: food is
// restarted through its script, its new process maps the new file, and no
// reboot is required. With never, the upgrade to 1.2 leaves food on the
// replaced file and the reboot is required, naming the process. With auto
// again and a food that fails to start, the upgrade to 1.3 is rolled back.
func TestChrootServiceRestartInsteadOfReboot(t *testing.T) {
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
	deb := func(p apttest.Package) { repo.MustAdd(t, apttest.MustBuildDeb(t, dir, p)) }
	deb(libfooPackage(t, c, "1.0"))
	deb(fooService)

	n := newRestartNode(t, c, "restart_services: auto\n")
	if err := n.b.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n.b.Install(ctx, []apt.PkgVersion{{Name: "libfoo", Version: "1.0"}, {Name: "food", Version: "1.0"}}, apt.InstallOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Run(ctx, "/etc/init.d/food", "start"); err != nil {
		t.Fatal(err)
	}
	first := d.current(t)

	deb(libfooPackage(t, c, "1.1"))
	chrootStep(t, "auto: food restarted onto libfoo 1.1, no reboot", func(t *testing.T) {
		n.cycle(t)
		tx := n.latest(t)
		if tx.Outcome != engine.OutcomeInstalled || tx.Items[0].Package != "libfoo" || tx.Items[0].To != "1.1" {
			t.Fatalf("transaction: %s %q, steps %s", tx.Outcome, tx.Error, chrootSteps(tx))
		}
		want := "planned:done fetch:done place:done install:done verify:done restart-services:done health-check:done completed:done"
		if chrootSteps(tx) != want {
			t.Errorf("steps %s, want %s", chrootSteps(tx), want)
		}
		if len(tx.Restarts) != 1 || tx.Restarts[0].Service != "food" || tx.Restarts[0].Manager != services.ManagerSysV ||
			tx.Restarts[0].Result != engine.RestartDone || tx.Restarts[0].PIDs[0] != first {
			t.Errorf("restarts: %+v, want food (sysv) restarted for PID %d", tx.Restarts, first)
		}
		second := d.current(t)
		if second == first || mapsLibfoo(first) != "" {
			t.Errorf("food was not restarted: PID %d before, %d now (old one maps libfoo: %q)", first, second, mapsLibfoo(first))
		}
		if got := mapsLibfoo(second); got != "current" {
			t.Errorf("the restarted food maps libfoo %q, want the current file", got)
		}
		if tx.Reboot || len(n.rebootReasons()) != 0 || len(tx.Stale) != 0 {
			t.Errorf("reboot required after a restart: %v %q, stale %+v", tx.Reboot, n.rebootReasons(), tx.Stale)
		}
		if api := tx.API(); len(api.Restarted) != 1 || api.Restarted[0] != "food (sysv): restarted" {
			t.Errorf("history shows %q", api.Restarted)
		}
	})

	deb(libfooPackage(t, c, "1.2"))
	chrootStep(t, "never: libfoo 1.2 installed, reboot required naming food's process", func(t *testing.T) {
		before := d.current(t)
		n.setPolicy(mustPolicy(t, "restart_services: never\n"), "v2")
		n.cycle(t)
		tx := n.latest(t)
		if tx.Outcome != engine.OutcomeInstalled || tx.Items[0].To != "1.2" {
			t.Fatalf("transaction: %s %q, steps %s", tx.Outcome, tx.Error, chrootSteps(tx))
		}
		if now := d.current(t); now != before || mapsLibfoo(before) != "deleted" {
			t.Errorf("food was touched: PID %d before, %d now, maps libfoo %q", before, now, mapsLibfoo(before))
		}
		if len(tx.Restarts) != 0 || !tx.Reboot {
			t.Fatalf("restarts %+v, reboot %v: want none and a reboot", tx.Restarts, tx.Reboot)
		}
		proc := fmt.Sprintf("PID %d (sleep) of food still maps /usr/lib/libfoo.so.1 (restart_services is never)", before)
		reasons := n.rebootReasons()
		if len(reasons) != 1 || !strings.Contains(reasons[0], proc) {
			t.Errorf("reboot reasons %q, want one naming %q", reasons, proc)
		}
		if len(tx.RebootReasons) != 1 || tx.RebootReasons[0] != proc {
			t.Errorf("journaled reasons %q", tx.RebootReasons)
		}
	})

	deb(libfooPackage(t, c, "1.3"))
	chrootStep(t, "auto, food fails to start: libfoo 1.3 rolled back", func(t *testing.T) {
		if err := os.MkdirAll(c.Path("etc/food"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(c.Path("etc/food/fail-start"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		n.setPolicy(mustPolicy(t, "restart_services: auto\n"), "v3")
		n.cycle(t)
		tx := n.latest(t)
		if tx.Outcome != engine.OutcomeRolledBack || !strings.Contains(tx.Error, "health check: restart services") ||
			!strings.Contains(tx.Error, "failing to start on demand") {
			t.Fatalf("transaction: %s %q, steps %s", tx.Outcome, tx.Error, chrootSteps(tx))
		}
		if len(tx.Restarts) != 1 || tx.Restarts[0].Result != engine.RestartFailed {
			t.Errorf("restarts: %+v", tx.Restarts)
		}
		v, status, err := c.InstalledVersion(ctx, "libfoo")
		if err != nil || v != "1.2" || status != "ii " {
			t.Errorf("libfoo is %s (%q, %v) after the rollback, want 1.2", v, status, err)
		}
		n.audit(t)
	})
}
