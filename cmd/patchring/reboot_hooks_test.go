package main

import (
	"strings"
	"testing"
	"time"

	"github.com/patchring/patchring/daemon/apitypes"
)

// TestRebootStatusShowsHooks: `patchring reboot status` says when the
// pre-reboot hook holds the restart, when the node is unhealthy after the
// post-reboot hook, and lists the hooks' runs.
func TestRebootStatusShowsHooks(t *testing.T) {
	now := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	var b strings.Builder
	st := apitypes.RebootStatus{Required: true, Since: now.Add(-time.Hour), State: apitypes.RebootStateRestartRequired,
		Reason:    "transaction 4 installed libfoo 1.1 -> 1.2: PID 42 (sleep) of food still maps /usr/lib/libfoo.so.1 (restart_services is never)",
		LastError: "held: pre_reboot hook /usr/local/sbin/lb-drain failed: exit status 3",
		Held:      "pre_reboot hook /usr/local/sbin/lb-drain failed: exit status 3",
		Hooks:     []apitypes.HookRun{{Hook: "pre_reboot", Command: "/usr/local/sbin/lb-drain", At: now, Error: "exit status 3"}}}
	if err := printRebootStatus(&b, st, now); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Why:", "PID 42 (sleep) of food", "Held:", "lb-drain failed: exit status 3 (tried again later)",
		"Hook pre_reboot at 2026-12-04T10:00:00Z: FAILED: exit status 3 (/usr/local/sbin/lb-drain)"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	if err := printRebootStatus(&b, apitypes.RebootStatus{Unhealthy: "post_reboot hook /usr/local/sbin/ready failed: exit status 1"}, now); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.String(), "UNHEALTHY after the last restart: post_reboot hook") || !strings.Contains(b.String(), "No restart needed.") {
		t.Errorf("unhealthy output:\n%s", b.String())
	}
}

// TestRebootStatusShowsUrgentDeadline: a restart an urgent update needs
// shows its deadline and the rule that set it.
func TestRebootStatusShowsUrgentDeadline(t *testing.T) {
	now := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	by := now.Add(23 * time.Hour)
	st := apitypes.RebootStatus{Required: true, Since: now.Add(-time.Hour), State: apitypes.RebootStateRestartRequired,
		EffectiveDeadline: by, UrgentDeadline: by, Urgent: "urgent[0] (kev-or-critical): libfoo 1.2, reboot within 24h0m0s"}
	var b strings.Builder
	if err := printRebootStatus(&b, st, now); err != nil {
		t.Fatal(err)
	}
	if want := "Urgent:"; !strings.Contains(b.String(), want) || !strings.Contains(b.String(), "urgent[0] (kev-or-critical): libfoo 1.2, reboot within 24h0m0s (deadline Sat 5 Dec 2026 09:00 UTC") {
		t.Errorf("output lacks the urgent deadline:\n%s", b.String())
	}
}
