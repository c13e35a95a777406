package tray

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/patchring/patchring/daemon/apitypes"
)

// fakeHost records what the loop shows and lets the test click.
type fakeHost struct {
	mu    sync.Mutex
	views []view
	click chan action
	vis   chan bool
}

func newFakeHost() *fakeHost {
	return &fakeHost{click: make(chan action), vis: make(chan bool)}
}

func (h *fakeHost) show(v view) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.views = append(h.views, v)
}
func (h *fakeHost) clicks() <-chan action   { return h.click }
func (h *fakeHost) visibility() <-chan bool { return h.vis }

func (h *fakeHost) last() view {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.views) == 0 {
		return view{}
	}
	return h.views[len(h.views)-1]
}

// fakeNotifier records notifications; absent makes it behave like a bus
// without a notification server.
type fakeNotifier struct {
	mu      sync.Mutex
	shown   []Notification
	nextID  uint32
	absent  bool
	actions chan ActionInvoked
}

func newFakeNotifier() *fakeNotifier { return &fakeNotifier{actions: make(chan ActionInvoked)} }

func (n *fakeNotifier) Notify(ctx context.Context, nt Notification) (uint32, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.absent {
		return 0, fmt.Errorf("show notification: %w", ErrNoNotificationServer)
	}
	n.shown = append(n.shown, nt)
	if nt.ReplacesID != 0 {
		return nt.ReplacesID, nil
	}
	n.nextID++
	return n.nextID, nil
}

func (n *fakeNotifier) CloseNotification(ctx context.Context, id uint32) error { return nil }
func (n *fakeNotifier) Actions() <-chan ActionInvoked                          { return n.actions }

func (n *fakeNotifier) all() []Notification {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.shown)
}

func (n *fakeNotifier) summaries() []string {
	var out []string
	for _, nt := range n.all() {
		out = append(out, nt.Summary)
	}
	return out
}

// logBuffer collects log lines for assertions.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type loopEnv struct {
	d    *FakeDaemon
	h    *fakeHost
	n    *fakeNotifier
	logs *logBuffer
	stop func() // cancels the loop and waits for it
}

// startLoop runs a loop in the synctest bubble; call inside synctest.Test.
func startLoop(t *testing.T, st apitypes.RebootStatus, visible bool, prepare func(*loopEnv)) *loopEnv {
	t.Helper()
	e := &loopEnv{d: NewFakeDaemon(st, nil), h: newFakeHost(), n: newFakeNotifier(), logs: &logBuffer{}}
	if prepare != nil {
		prepare(e)
	}
	opts := Options{
		Log:      slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Location: time.UTC,
	}.withDefaults()
	l := newLoop(e.d, opts, e.h, e.n, visible)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- l.run(ctx) }()
	e.stop = func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("loop ended with %v", err)
		}
	}
	synctest.Wait()
	return e
}

func TestLoopFollowsDaemon(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		now := time.Now()
		e := startLoop(t, PendingRestart(now, now.Add(8*time.Hour), 2, false), true, nil)
		defer e.stop()
		if got := e.h.last(); got.icon != iconRestartRequired || len(got.items) != 5 {
			t.Fatalf("first view %q icon %v", menuLines(got), got.icon)
		}
		// A restart became required: the prompt offers restart and the first deferral.
		if got := e.n.all(); len(got) != 1 || len(got[0].Actions) != 2 || got[0].Actions[1].Key != "defer:1h" {
			t.Fatalf("prompts %+v", got)
		}
		// A status event from the daemon redraws the menu.
		e.d.Update(apitypes.EventRebootStatus, func(st *apitypes.RebootStatus) {
			st.State = apitypes.RebootStateDeadlineNear
		})
		synctest.Wait()
		if got := e.h.last(); got.icon != iconDeadlineNear {
			t.Errorf("after deadline-near event icon %v", got.icon)
		}
		// Deadline near is a new prompt; a countdown event shows the countdown.
		e.d.Update(apitypes.EventRebootCountdown, func(st *apitypes.RebootStatus) {
			st.NextAutomatic = time.Now().Add(15 * time.Minute)
		})
		synctest.Wait()
		if got := e.n.summaries(); len(got) != 3 || got[2] != "Restarting in 15 minutes" {
			t.Errorf("notifications %q", got)
		}
	})
}

func TestLoopMenuClicks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		now := time.Now()
		e := startLoop(t, PendingRestart(now, now.Add(8*time.Hour), 1, false), true, nil)
		defer e.stop()
		e.h.click <- action{kind: actDefer, choice: "4h"}
		synctest.Wait()
		if st := e.d.Status(); st.DeferralsLeft != 0 || st.DeferralsUsed != 3 {
			t.Fatalf("after defer: %d left, %d used", st.DeferralsLeft, st.DeferralsUsed)
		}
		v := e.h.last()
		if !strings.HasPrefix(v.status, "Restart deferred until") || v.items[1].enabled {
			t.Fatalf("after the last deferral: %q", menuLines(v))
		}
		// A stale menu (or a forged click) beyond the limit: the daemon
		// refuses and the user is told.
		e.h.click <- action{kind: actDefer, choice: "1h"}
		synctest.Wait()
		got := e.n.all()
		if last := got[len(got)-1]; last.Summary != "Could not defer the restart" || !strings.Contains(last.Body, "no deferrals left") {
			t.Errorf("failure notification %+v", last)
		}
		e.h.click <- action{kind: actDetails}
		synctest.Wait()
		if got := e.n.all(); !strings.Contains(got[len(got)-1].Body, "Installed:") {
			t.Errorf("details notification %+v", got[len(got)-1])
		}
		e.h.click <- action{kind: actRestart}
		synctest.Wait()
		if calls := e.d.Calls(); !slices.Equal(calls[len(calls)-3:], []string{"defer 4h", "defer 1h", "restart"}) {
			t.Errorf("daemon calls %q", calls)
		}
		if v := e.h.last(); v.status != "Restarting now" || len(v.items) != 0 {
			t.Errorf("after restart: %q", menuLines(v))
		}
	})
}

func TestLoopQuit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := NewFakeDaemon(apitypes.RebootStatus{State: apitypes.RebootStateUpToDate}, nil)
		h := newFakeHost()
		l := newLoop(d, Options{}.withDefaults(), h, nil, true)
		done := make(chan error, 1)
		go func() { done <- l.run(t.Context()) }()
		synctest.Wait()
		h.click <- action{kind: actQuit}
		if err := <-done; err != nil {
			t.Fatalf("quit: %v", err)
		}
	})
}

func TestLoopReconnects(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		now := time.Now()
		e := startLoop(t, PendingRestart(now, now.Add(8*time.Hour), 2, false), true, func(e *loopEnv) { e.d.Disconnect() })
		defer e.stop()
		if v := e.h.last(); v.status != labelDisconnected || v.icon != iconDisconnected {
			t.Fatalf("daemon down at start: %q", menuLines(v))
		}
		// Backoff doubles from RetryMin (1s) up to RetryMax (30s): attempts
		// at 0, 1, 3, 7, 15, 31, 61 and 91 seconds.
		start := time.Now()
		for i, at := range []time.Duration{0, 1, 3, 7, 15, 31, 61, 91} {
			time.Sleep(time.Until(start.Add(at*time.Second + 500*time.Millisecond)))
			synctest.Wait()
			if got := e.d.Tries(); got != i+1 {
				t.Fatalf("%v after start: %d attempts, want %d", time.Since(start), got, i+1)
			}
		}
		e.d.Reconnect()
		time.Sleep(30 * time.Second)
		synctest.Wait()
		if v := e.h.last(); v.icon != iconRestartRequired {
			t.Fatalf("after the daemon came back (%v later): %q", time.Since(start), menuLines(v))
		}
		// The stream ends (daemon restarts): disconnected at once, back after 1s.
		e.d.Disconnect()
		synctest.Wait()
		if v := e.h.last(); v.status != labelDisconnected {
			t.Fatalf("after the daemon stopped: %q", menuLines(v))
		}
		e.d.Reconnect()
		time.Sleep(time.Second)
		synctest.Wait()
		if v := e.h.last(); v.icon != iconRestartRequired {
			t.Fatalf("1s after the daemon restarted: %q", menuLines(v))
		}
		if n := strings.Count(e.logs.String(), "no connection to patchringd"); n != 2 {
			t.Errorf("logged the lost connection %d times, want once per outage (2):\n%s", n, e.logs)
		}
		// One prompt only: reconnecting to the same pending restart does not nag again.
		if got := e.n.summaries(); len(got) != 1 {
			t.Errorf("prompts %q", got)
		}
	})
}

func TestLoopFallbackWithoutTrayHost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		now := time.Now()
		e := startLoop(t, PendingRestart(now, now.Add(8*time.Hour), 2, true), false, nil)
		defer e.stop()
		got := e.n.all()
		if len(got) != 1 {
			t.Fatalf("prompts %+v", got)
		}
		var keys []string
		for _, a := range got[0].Actions {
			keys = append(keys, a.Key)
		}
		if want := []string{"restart", "defer:1h", "defer:4h", "defer:tomorrow", "refuse", "details"}; !slices.Equal(keys, want) {
			t.Fatalf("fallback prompt actions %q, want %q", keys, want)
		}
		if n := strings.Count(e.logs.String(), "no StatusNotifierItem host"); n != 1 {
			t.Errorf("logged the missing host %d times, want 1", n)
		}
		// The user defers from the notification; the prompt comes back with one left.
		e.n.actions <- ActionInvoked{ID: 1, Key: "defer:4h"}
		synctest.Wait()
		got = e.n.all()
		if len(got) != 2 || !strings.Contains(got[1].Body, "You can defer once more.") || got[1].ReplacesID != 1 {
			t.Fatalf("after deferring: %+v", got)
		}
		// Left alone, the prompt is repeated every RemindEvery.
		time.Sleep(time.Hour)
		synctest.Wait()
		if got := e.n.all(); len(got) != 3 {
			t.Errorf("no reminder after an hour: %d notifications", len(got))
		}
		// A host appears: prompts go back to the short form and reminders stop.
		e.h.vis <- true
		synctest.Wait()
		time.Sleep(2 * time.Hour)
		synctest.Wait()
		if got := e.n.all(); len(got) != 4 || len(got[3].Actions) != 2 {
			t.Errorf("after a host appeared: %d notifications, last %+v", len(got), got[len(got)-1])
		}
	})
}

func TestLoopWithoutNotificationServer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		now := time.Now()
		e := startLoop(t, PendingRestart(now, now.Add(8*time.Hour), 2, false), true, func(e *loopEnv) { e.n.absent = true })
		defer e.stop()
		e.d.Update(apitypes.EventRebootReminder, func(*apitypes.RebootStatus) {})
		e.d.Update(apitypes.EventRebootCountdown, func(*apitypes.RebootStatus) {})
		synctest.Wait()
		if n := strings.Count(e.logs.String(), "notifications are off"); n != 1 {
			t.Errorf("logged the missing notification server %d times, want 1:\n%s", n, e.logs)
		}
		// The menu still works.
		e.h.click <- action{kind: actDefer, choice: "1h"}
		synctest.Wait()
		if st := e.d.Status(); st.DeferralsLeft != 1 {
			t.Errorf("defer through the menu without notifications: %d left", st.DeferralsLeft)
		}
	})
}
