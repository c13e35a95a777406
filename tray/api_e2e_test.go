package tray_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchring/patchring/daemon/localapi"
	"github.com/patchring/patchring/daemon/reboot"
	"github.com/patchring/patchring/daemon/reboot/reboottest"
	"github.com/patchring/patchring/daemon/store"
	"github.com/patchring/patchring/internal/testutil"
	"github.com/patchring/patchring/platform/ipc"
	"github.com/patchring/patchring/tray/dbustest"
)

// This test runs the tray against patchringd's real reboot orchestrator
// behind the real local API (unix socket, daemon/client), on a fake clock:
// only the tray's own code is allowed to import less. It exists to check
// the two sides agree, not to test the orchestrator.

// startRebootAPI serves a reboot orchestrator with a pending restart on a
// unix socket and returns the socket, the orchestrator, its clock and its
// recording rebooter.
func startRebootAPI(t *testing.T, rules reboot.Rules) (string, *reboot.Orchestrator, *reboottest.Clock, *reboottest.Rebooter) {
	t.Helper()
	clock := reboottest.NewClock(time.Now().Truncate(time.Minute))
	db, err := store.Open(filepath.Join(t.TempDir(), store.FileName), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	rb := reboottest.NewRebooter()
	log := testutil.Logger(t).With("side", "daemon")
	booted := clock.Now().Add(-time.Hour)
	o, err := reboot.New(reboot.Config{
		Store: db, Log: log, Clock: clock, Rebooter: rb,
		Rules:    func() reboot.Rules { return rules },
		BootTime: func() (time.Time, error) { return booted, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := o.SetRequired(t.Context(), clock.Now(), "Security updates to openssl and the kernel need a restart",
		[]string{"openssl 3.0.17-1~deb12u2", "linux-image-amd64 6.1.140-1"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runDone, serveDone := make(chan error, 1), make(chan error, 1)
	go func() { runDone <- o.Run(ctx) }()

	dir, err := os.MkdirTemp("", "patchring-tray-api-")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "api.sock")
	srv := localapi.New(log, "")
	srv.Mount(localapi.Parts{Reboot: o})
	ln, err := ipc.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	go func() { serveDone <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		for _, ch := range []chan error{serveDone, runDone} {
			if err := <-ch; err != nil {
				t.Errorf("daemon side: %v", err)
			}
		}
		os.RemoveAll(dir)
	})
	return sock, o, clock, rb
}

// The user defers from the tray menu through the real local API; at the
// deadline the tray shows the daemon's countdown and the restart happens
// once.
func TestThroughTheRealLocalAPI(t *testing.T) {
	t.Parallel()
	rules := reboot.Rules{
		NotifyAhead:  30 * time.Minute,
		Deadline:     8 * time.Hour,
		Grace:        4 * time.Hour,
		DeferChoices: reboot.ChoicesFromDurations([]time.Duration{time.Hour, 4 * time.Hour}),
		MaxDeferrals: 2,
	}
	sock, o, clock, rb := startRebootAPI(t, rules)
	w := startWorld(t, setup{watcher: true, notifications: true, socket: sock})
	ctx := testContext(t)
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
	st := o.RebootStatus()
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
		clock.Set(at.Add(-step.before))
		if _, err := w.notes.WaitNotification(ctx, func(n dbustest.Notification) bool { return n.Summary == step.want }); err != nil {
			t.Fatalf("%s: %v", step.want, err)
		}
	}
	if _, err := rb.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	waitItems(ctx, t, m) // "Restarting now": nothing left to choose
	if calls := rb.Calls(); len(calls) != 1 {
		t.Errorf("rebooter called %d times: %q", len(calls), calls)
	}
}
