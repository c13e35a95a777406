package reboot_test

import (
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/patchring/patchring/daemon/apitypes"
	"github.com/patchring/patchring/daemon/reboot"
	"github.com/patchring/patchring/daemon/reboot/reboottest"
	"github.com/patchring/patchring/policy"
)

// waitFor polls cond (real time) until it holds or 30 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// restartNow asks for a restart once Run is running.
func restartNow(t *testing.T, n *node) {
	t.Helper()
	waitFor(t, "Run to start", func() bool {
		err := n.o.RestartNow(ctx, "root")
		if err != nil && !errors.Is(err, reboot.ErrNotRunning) {
			t.Fatalf("RestartNow: %v", err)
		}
		return err == nil
	})
}

func lastHook(st apitypes.RebootStatus) apitypes.HookRun {
	if len(st.Hooks) == 0 {
		return apitypes.HookRun{}
	}
	return st.Hooks[len(st.Hooks)-1]
}

// TestPreRebootHookHoldsTheRestart: a headless host asked to restart
// takes the site's lease and runs the policy's pre-reboot hook;
// the hook fails (a load balancer that will not drain the member), so the
// machine is not restarted, the lease is given back, and the failure is
// reported: held in the status, the hook's run with its output, the
// subsystem status and the gossip flag; the restart is retried later.
func TestPreRebootHookHoldsTheRestart(t *testing.T) {
	leases := reboottest.NewLeases(nil)
	const group = "site:berlin"
	alwaysOpen := func(t time.Time) (time.Time, time.Time, bool) { return t, t.Add(time.Hour), true }
	rules := reboot.Rules{Deadline: 72 * time.Hour, AutoWindow: alwaysOpen, SiteConcurrency: 1, LeaseTTL: 30 * time.Minute}
	hook := &reboot.Hook{Command: []string{"/bin/sh", "-c", "echo 'lb: member web-1 still has 12 sessions' >&2; exit 3"}, Timeout: 10 * time.Second, MaxOutput: 1024}
	boot := time.Now().Add(-2 * time.Hour)
	n := newNode(t, "web-1", rules, boot, reboot.Config{Headless: true, Site: "berlin",
		Lease: leases.For("web-1"), RetryAfter: time.Hour, Hooks: func() reboot.Hooks { return reboot.Hooks{PreReboot: hook} }})
	n.require(time.Now().Add(-time.Hour))
	n.run()
	restartNow(t, n)
	waitFor(t, "the pre-reboot hook to hold the restart", func() bool { return n.o.RebootStatus().Held != "" })
	st := n.o.RebootStatus()
	if len(n.rb.Calls()) != 0 {
		t.Fatalf("the machine was restarted although the pre-reboot hook failed: %q", n.rb.Calls())
	}
	if !strings.Contains(st.Held, "pre_reboot hook") || !strings.Contains(st.Held, "exit status 3") || !strings.HasPrefix(st.LastError, "held: ") {
		t.Errorf("held %q, last error %q", st.Held, st.LastError)
	}
	if h := lastHook(st); h.Hook != reboot.HookPreReboot || h.OK || !strings.Contains(h.Output, "12 sessions") {
		t.Errorf("hook run %+v", h)
	}
	if !st.Required || st.State == apitypes.RebootStateRebooting {
		t.Errorf("status after the hold: %+v", st)
	}
	waitFor(t, "the lease to be given back", func() bool { return len(leases.Holders(group)) == 0 })
	if s := n.o.Status(); s.State != "error" || !strings.Contains(s.Details["held"], "pre_reboot") {
		t.Errorf("subsystem status %+v", s)
	}
	// It survives a daemon restart (the machine did not restart).
	n.restartDaemon(boot)
	if st := n.o.RebootStatus(); st.Held == "" || len(st.Hooks) != 1 {
		t.Errorf("after a daemon restart: held %q, %d hook runs", st.Held, len(st.Hooks))
	}
}

// TestHangingPreRebootHookIsCut: a pre-reboot hook that hangs is killed at
// its timeout and holds the restart.
func TestHangingPreRebootHookIsCut(t *testing.T) {
	hook := &reboot.Hook{Command: []string{"/bin/sleep", "300"}, Timeout: 500 * time.Millisecond}
	n := newNode(t, "db-1", reboot.Rules{Deadline: 72 * time.Hour}, time.Now().Add(-time.Hour),
		reboot.Config{RetryAfter: time.Hour, Hooks: func() reboot.Hooks { return reboot.Hooks{PreReboot: hook} }})
	n.require(time.Now())
	n.run()
	restartNow(t, n)
	waitFor(t, "the hanging hook to be cut", func() bool { return n.o.RebootStatus().Held != "" })
	st := n.o.RebootStatus()
	h := lastHook(st)
	if !strings.Contains(h.Error, "timed out after 500ms") || h.Seconds > 20 {
		t.Errorf("hook run %+v, want cut at its 500ms timeout", h)
	}
	if len(n.rb.Calls()) != 0 {
		t.Errorf("restarted despite the hanging hook")
	}
}

// TestPostRebootHookMarksUnhealthy: the pre-reboot hook passes and the
// machine restarts; after it is back the post-reboot hook fails, and the
// node reports itself unhealthy until a later run passes.
func TestPostRebootHookMarksUnhealthy(t *testing.T) {
	ready := []string{"/bin/sh", "-c", "echo not ready; exit 1"}
	hooks := func() reboot.Hooks {
		return reboot.Hooks{
			PreReboot:  &reboot.Hook{Command: []string{"/bin/true"}, Timeout: 10 * time.Second},
			PostReboot: &reboot.Hook{Command: ready, Timeout: 10 * time.Second},
		}
	}
	n := newNode(t, "app-1", reboot.Rules{Deadline: 72 * time.Hour}, time.Now().Add(-time.Hour), reboot.Config{Hooks: hooks})
	n.require(time.Now())
	n.run()
	restartNow(t, n)
	waitFor(t, "the restart", func() bool { return len(n.rb.Calls()) == 1 })
	if h := lastHook(n.o.RebootStatus()); h.Hook != reboot.HookPreReboot || !h.OK {
		t.Fatalf("pre-reboot hook run %+v", h)
	}
	// The machine is back.
	n.restartDaemon(time.Now().Add(time.Second))
	n.run()
	waitFor(t, "the post-reboot hook", func() bool { return n.o.RebootStatus().Unhealthy != "" })
	st := n.o.RebootStatus()
	if h := lastHook(st); h.Hook != reboot.HookPostReboot || h.OK || !strings.Contains(h.Output, "not ready") {
		t.Errorf("post-reboot hook run %+v", h)
	}
	if s := n.o.Status(); s.State != "unhealthy" || !strings.Contains(s.Summary, "post_reboot hook") {
		t.Errorf("subsystem status %+v", s)
	}
	// It ran once: a daemon restart without a machine restart does not
	// run it again, and the node stays unhealthy.
	n.restartDaemon(time.Now().Add(-time.Minute))
	n.run()
	if st := n.o.RebootStatus(); len(st.Hooks) != 2 || st.Unhealthy == "" {
		t.Errorf("after a daemon restart: %d runs, unhealthy %q", len(st.Hooks), st.Unhealthy)
	}
}

// TestHeadlessRestartOnlyInItsWindow: a headless host whose policy sets an
// automatic restart window (02:00-03:00 UTC) restarts only inside it, and
// holds the site's lease while it does.
func TestHeadlessRestartOnlyInItsWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, err := policy.Parse([]byte(`schema: 1
expires: 2030-01-01T00:00:00Z
rings: [{name: all, default: true, defer: 0d}]
reboot:
  notify_ahead: 0s
  headless: {cron: "0 2 * * *", duration: 1h, tz: UTC, max_concurrent: 1}
`), "p.yaml")
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now().UTC() // synctest's epoch: 2000-01-01 00:00 UTC
		leases := reboottest.NewLeases(nil)
		rules := reboot.Rules{Deadline: 72 * time.Hour, AutoWindow: p.Reboot.Headless.Occurrence, SiteConcurrency: 1, LeaseTTL: time.Hour}
		var at time.Time
		n := newNode(t, "srv", rules, start.Add(-time.Hour), reboot.Config{Headless: true, Site: "berlin", Lease: leases.For("srv")})
		n.rb.OnReboot = func(string) {
			at = time.Now().UTC()
			if h := leases.Holders("site:berlin"); len(h) != 1 || h[0] != "srv" {
				t.Errorf("restart while the lease holders are %q", h)
			}
		}
		n.require(start)
		n.run()
		time.Sleep(time.Hour + 59*time.Minute)
		synctest.Wait()
		if len(n.rb.Calls()) != 0 {
			t.Fatalf("restarted at %s, before the window", at)
		}
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		if len(n.rb.Calls()) != 1 || at.Hour() != 2 {
			t.Fatalf("restarts %d, at %s: want one inside 02:00-03:00", len(n.rb.Calls()), at)
		}
	})
}
