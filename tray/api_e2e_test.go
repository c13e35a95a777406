package tray_test

import (
	"strings"
	"testing"
	"time"

	"github.com/patchring/patchring/internal/testutil/rebootapi"
	"github.com/patchring/patchring/tray/dbustest"
)

// This test runs the tray against patchringd's real reboot orchestrator
// behind the real local API (unix socket, daemon/client), on a fake clock,
// served by internal/testutil/rebootapi: the tray's tests, like the tray,
// reach the daemon only through its API. It exists to check the two sides
// agree, not to test the orchestrator.

// The user defers from the tray menu through the real local API; at the
// deadline the tray shows the daemon's countdown and the restart happens
// once.
func TestThroughTheRealLocalAPI(t *testing.T) {
	t.Parallel()
	d := rebootapi.Start(t, rebootapi.Options{
		Start: time.Now().Truncate(time.Minute),
		Rules: rebootapi.Rules{
			NotifyAhead:  30 * time.Minute,
			Deadline:     8 * time.Hour,
			Grace:        4 * time.Hour,
			DeferChoices: []time.Duration{time.Hour, 4 * time.Hour},
			MaxDeferrals: 2,
		},
	})
	ctx := testContext(t)
	if err := d.SetRequired(ctx, "Security updates to openssl and the kernel need a restart",
		[]string{"openssl 3.0.17-1~deb12u2", "linux-image-amd64 6.1.140-1"}); err != nil {
		t.Fatal(err)
	}
	w := startWorld(t, setup{watcher: true, notifications: true, socket: d.Socket})
	m, _ := w.menu(ctx)

	root, err := m.WaitFor(ctx, func(root dbustest.MenuItem) bool {
		_, ok := root.Find("Defer 4 hours (2 left)")
		return ok
	})
	if err != nil {
		t.Fatal(err)
	}
	if l := root.Lines(); !strings.HasPrefix(l[0], "Restart required by ") {
		t.Errorf("status line %q", l[0])
	}
	if err := m.ClickLabel(ctx, "Defer 4 hours (2 left)"); err != nil {
		t.Fatal(err)
	}
	waitItems(ctx, t, m, "Restart now", "Defer 1 hour (1 left)", "Defer 4 hours (1 left)", "Details")
	st := d.Status()
	if st.DeferralsUsed != 1 || st.DeferralsLeft != 1 {
		t.Fatalf("daemon after the click: %d used, %d left", st.DeferralsUsed, st.DeferralsLeft)
	}
	if st.NextAutomatic.IsZero() {
		t.Fatalf("daemon plans no automatic restart: %+v", st)
	}

	// The clock reaches the countdown steps and the restart.
	at := st.NextAutomatic
	for _, step := range []struct {
		before time.Duration
		want   string
	}{
		{15 * time.Minute, "Restarting in 15 minutes"},
		{time.Minute, "Restarting in 1 minute"},
		{0, "Restarting now"},
	} {
		d.SetClock(at.Add(-step.before))
		if _, err := w.notes.WaitNotification(ctx, func(n dbustest.Notification) bool { return n.Summary == step.want }); err != nil {
			t.Fatalf("%s: %v", step.want, err)
		}
	}
	if _, err := d.WaitReboot(ctx); err != nil {
		t.Fatal(err)
	}
	waitItems(ctx, t, m) // "Restarting now": nothing left to choose
	if calls := d.Reboots(); len(calls) != 1 {
		t.Errorf("rebooter called %d times: %q", len(calls), calls)
	}
}
