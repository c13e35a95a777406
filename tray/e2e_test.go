package tray_test

import (
	"bytes"
	"context"
	"fmt"
	"image"
	_ "image/png"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/patchring/patchring/daemon/apitypes"
	"github.com/patchring/patchring/daemon/client"
	"github.com/patchring/patchring/internal/testutil"
	"github.com/patchring/patchring/tray"
	"github.com/patchring/patchring/tray/dbustest"
)

// childEnv makes the test binary run the tray instead of the tests: each
// test starts its own tray process on its own private bus.
const childEnv = "PATCHRING_TRAY_TEST_CHILD"

// socketEnv makes the child talk to a real patchringd local API on that
// socket instead of the bridged FakeDaemon.
const socketEnv = "PATCHRING_TRAY_TEST_SOCKET"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(runChild())
	}
	os.Exit(m.Run())
}

// runChild runs tray.Run against the bridged FakeDaemon until SIGTERM.
func runChild() int {
	conn, err := dbus.ConnectSessionBus()
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	defer conn.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var d tray.Daemon = &bridgeClient{conn: conn}
	if sock := os.Getenv(socketEnv); sock != "" {
		d = &client.Client{Socket: sock} // the real local API
	}
	err = tray.Run(ctx, d, tray.Options{
		Log:      log,
		Location: time.UTC,
		RetryMin: 100 * time.Millisecond,
		RetryMax: 400 * time.Millisecond,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	return 0
}

// setup says what the desktop around the tray has.
type setup struct {
	watcher       bool // an org.kde.StatusNotifierWatcher runs
	noHost        bool // ... but reports no registered host
	notifications bool // an org.freedesktop.Notifications server runs
	status        apitypes.RebootStatus
	// socket, when set, is a real local API the tray uses instead of a
	// FakeDaemon.
	socket string
}

// world is one tray process on a private bus with fakes around it.
type world struct {
	t       *testing.T
	bus     *dbustest.Bus
	conn    *dbus.Conn
	watcher *dbustest.Watcher
	notes   *dbustest.NotificationServer
	d       *tray.FakeDaemon
	br      *bridge
	stderr  *testutil.SyncBuffer
	exited  chan error
}

func startWorld(t *testing.T, s setup) *world {
	t.Helper()
	bus := dbustest.NewBus(t)
	w := &world{t: t, bus: bus, conn: bus.Conn(t), stderr: &testutil.SyncBuffer{}, exited: make(chan error, 1)}
	if s.watcher {
		w.startWatcher(!s.noHost)
	}
	if s.notifications {
		n, err := dbustest.NewNotificationServer(w.conn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		w.notes = n
	}
	env := []string{bus.Env(), childEnv + "=1"}
	if s.socket != "" {
		env = append(env, socketEnv+"="+s.socket)
	} else {
		w.d = tray.NewFakeDaemon(s.status, nil)
		w.br = &bridge{bus: bus, d: w.d}
		if err := w.br.up(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(w.br.down)
	}

	raceDir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	// Race reports of the child (a -race build) go to files the cleanup
	// checks; see checkRaceReports.
	cmd.Env = append(append(withoutBusEnv(os.Environ()), env...),
		"GORACE=exitcode=0 log_path="+filepath.Join(raceDir, "race"))
	cmd.Stderr = w.stderr
	cmd.Stdout = w.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start tray process: %v", err)
	}
	go func() { w.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		var err error
		select {
		case err = <-w.exited:
			w.exited <- err
		default:
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case err = <-w.exited:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				err = fmt.Errorf("did not stop on SIGTERM: %w", <-w.exited)
			}
		}
		if err != nil {
			t.Errorf("tray process: %v", err)
		}
		checkRaceReports(t, raceDir)
		if t.Failed() {
			t.Logf("tray process output:\n%s", w.stderr)
		}
	})
	return w
}

// knownRace recognises the one data race of fyne.io/systray v1.12.2 the
// tests tolerate: since v1.12.2 (fyne-io/systray#118) the first GetLayout
// starts a goroutine that calls refresh() 150ms later, which writes
// menuVersion under instance.lock while GetLayout reads it under menuLock
// only. Both stacks are inside fyne.io/systray; the tray cannot avoid it (a
// tray host calls GetLayout) and it is harmless (a torn read of a revision
// counter). Any other race fails the test.
func knownRace(report string) bool {
	return strings.Contains(report, "fyne.io/systray.refresh()") &&
		strings.Contains(report, "fyne.io/systray.(*tray).GetLayout()") &&
		!strings.Contains(report, "patchring/tray.")
}

// checkRaceReports fails t for every race the child reported other than
// knownRace.
func checkRaceReports(t *testing.T, dir string) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "race*"))
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Errorf("read race report: %v", err)
			continue
		}
		for _, report := range strings.Split(string(raw), "==================") {
			if strings.Contains(report, "WARNING: DATA RACE") && !knownRace(report) {
				t.Errorf("data race in the tray process:%s", report)
			}
		}
	}
}

func (w *world) startWatcher(host bool) {
	w.t.Helper()
	wt, err := dbustest.NewWatcher(w.conn, host)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { wt.Close() })
	w.watcher = wt
}

func withoutBusEnv(env []string) []string {
	return slices.DeleteFunc(slices.Clone(env), func(e string) bool {
		return strings.HasPrefix(e, "DBUS_SESSION_BUS_ADDRESS=") || strings.HasPrefix(e, childEnv+"=") ||
			strings.HasPrefix(e, socketEnv+"=") || strings.HasPrefix(e, "GORACE=")
	})
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// menu waits for the tray's item to register and opens its menu.
func (w *world) menu(ctx context.Context) (*dbustest.Menu, dbustest.Item) {
	w.t.Helper()
	item, err := w.watcher.WaitItem(ctx)
	if err != nil {
		w.t.Fatal(err)
	}
	m, err := dbustest.OpenMenu(ctx, w.conn, item)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(m.Close)
	return m, item
}

func waitLines(ctx context.Context, t *testing.T, m *dbustest.Menu, want []string) dbustest.MenuItem {
	t.Helper()
	root, err := m.WaitFor(ctx, func(root dbustest.MenuItem) bool { return slices.Equal(root.Lines(), want) })
	if err != nil {
		t.Fatalf("menu never became\n%q:\n%v", want, err)
	}
	return root
}

// waitItems waits until the menu's items below the status line are items
// (then a separator and Quit).
func waitItems(ctx context.Context, t *testing.T, m *dbustest.Menu, items ...string) dbustest.MenuItem {
	t.Helper()
	want := append(append([]string{"---"}, items...), "---", "Quit")
	root, err := m.WaitFor(ctx, func(root dbustest.MenuItem) bool {
		l := root.Lines()
		return len(l) > 0 && slices.Equal(l[1:], want)
	})
	if err != nil {
		t.Fatalf("menu items never became\n%q:\n%v", items, err)
	}
	return root
}

// sameIcon says whether got shows the icon the tray draws for state: every
// opaque pixel of the expected icon matches.
func sameIcon(t *testing.T, got image.Image, state string) bool {
	t.Helper()
	want, _, err := image.Decode(bytes.NewReader(tray.IconPNGForTest(state)))
	if err != nil {
		t.Fatalf("decode icon %s: %v", state, err)
	}
	if got == nil || got.Bounds() != want.Bounds() {
		return false
	}
	b := want.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			wr, wg, wb, wa := want.At(x, y).RGBA()
			if wa != 0xffff {
				continue
			}
			if gr, gg, gb, _ := got.At(x, y).RGBA(); gr>>8 != wr>>8 || gg>>8 != wg>>8 || gb>>8 != wb>>8 {
				return false
			}
		}
	}
	return true
}

func pending(left int, canRefuse bool) (apitypes.RebootStatus, string) {
	now := time.Now()
	deadline := now.Add(8 * time.Hour).Truncate(time.Minute)
	return tray.PendingRestart(now, deadline, left, canRefuse), "Restart required by " + deadline.UTC().Format("Mon 15:04")
}

func menuWith(status string, items ...string) []string {
	return append(append([]string{status + " [disabled]", "---"}, items...), "---", "Quit")
}

func TestTrayRegistersAndMenuMatchesDaemon(t *testing.T) {
	t.Parallel()
	st, status := pending(2, false)
	w := startWorld(t, setup{watcher: true, notifications: true, status: st})
	ctx := testContext(t)
	m, item := w.menu(ctx)

	waitLines(ctx, t, m, menuWith(status,
		"Restart now", "Defer 1 hour (2 left)", "Defer 4 hours (2 left)", "Defer until tomorrow (2 left)", "Details"))
	if !strings.HasPrefix(item.Service, ":") || item.Path != "/StatusNotifierItem" {
		t.Errorf("registered item %v, want the tray's unique name and /StatusNotifierItem", item)
	}
	props, err := dbustest.ReadItem(ctx, w.conn, item)
	if err != nil {
		t.Fatal(err)
	}
	if props.ID != "patchring" || props.Category != "ApplicationStatus" {
		t.Errorf("item Id %q Category %q", props.ID, props.Category)
	}
	if !strings.Contains(props.ToolTip, status) || !strings.Contains(props.ToolTip, st.Reason) {
		t.Errorf("tooltip %q lacks the status line or the reason", props.ToolTip)
	}
	if !sameIcon(t, props.Icon, "restart-required") {
		t.Errorf("icon is not the restart-required icon")
	}
}

func TestDeferFromMenu(t *testing.T) {
	t.Parallel()
	st, status := pending(2, false)
	w := startWorld(t, setup{watcher: true, notifications: true, status: st})
	ctx := testContext(t)
	m, _ := w.menu(ctx)
	waitLines(ctx, t, m, menuWith(status,
		"Restart now", "Defer 1 hour (2 left)", "Defer 4 hours (2 left)", "Defer until tomorrow (2 left)", "Details"))

	before := m.Updates()
	if err := m.ClickLabel(ctx, "Defer 4 hours (2 left)"); err != nil {
		t.Fatal(err)
	}
	if err := w.d.WaitCall(ctx, "defer 4h"); err != nil {
		t.Fatal(err)
	}
	root, err := m.WaitFor(ctx, func(root dbustest.MenuItem) bool {
		_, ok := root.Find("Defer 4 hours (1 left)")
		return ok
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.WaitUpdates(ctx, before); err != nil {
		t.Errorf("the menu changed without LayoutUpdated or ItemsPropertiesUpdated signals: %v", err)
	}
	if got := w.d.Status(); got.DeferralsLeft != 1 || got.DeferralsUsed != 2 {
		t.Errorf("daemon after deferring: %d left, %d used", got.DeferralsLeft, got.DeferralsUsed)
	}
	if !strings.HasPrefix(root.Lines()[0], "Restart deferred until ") {
		t.Errorf("status line after deferring: %q", root.Lines()[0])
	}

	// The last deferral: every choice is disabled.
	if err := m.ClickLabel(ctx, "Defer 1 hour (1 left)"); err != nil {
		t.Fatal(err)
	}
	root = waitItems(ctx, t, m, "Restart now", "Defer 1 hour (none left) [disabled]", "Defer 4 hours (none left) [disabled]",
		"Defer until tomorrow (none left) [disabled]", "Details")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range root.Lines() {
		if strings.HasPrefix(l, "Defer ") && !strings.HasSuffix(l, "(none left) [disabled]") {
			t.Errorf("deferrals exhausted but %q is offered", l)
		}
	}

	// A click on a disabled item sent anyway over D-Bus reaches the daemon,
	// which refuses it; the user is told and nothing changes.
	it, ok := root.Find("Defer 4 hours (none left)")
	if !ok {
		t.Fatalf("no disabled defer item in %q", root.Lines())
	}
	if err := m.Click(ctx, it.ID); err != nil {
		t.Fatal(err)
	}
	n, err := w.notes.WaitNotification(ctx, func(n dbustest.Notification) bool { return n.Summary == "Could not defer the restart" })
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(n.Body, "no deferrals left") {
		t.Errorf("refusal notification body %q", n.Body)
	}
	if got := w.d.Status(); got.DeferralsLeft != 0 || got.DeferralsUsed != 3 {
		t.Errorf("daemon after a refused deferral: %d left, %d used", got.DeferralsLeft, got.DeferralsUsed)
	}
}

func TestRefuse(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		allowed bool
	}{
		{"absent where the policy does not allow it", false},
		{"offered and honoured where it does", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st, status := pending(1, tc.allowed)
			w := startWorld(t, setup{watcher: true, notifications: true, status: st})
			ctx := testContext(t)
			m, _ := w.menu(ctx)
			items := []string{"Restart now", "Defer 1 hour (1 left)", "Defer 4 hours (1 left)", "Defer until tomorrow (1 left)"}
			if tc.allowed {
				items = append(items, "Don't restart")
			}
			root := waitLines(ctx, t, m, menuWith(status, append(items, "Details")...))
			if !tc.allowed {
				for _, c := range root.Children {
					if strings.Contains(c.Label, "restart") && c.Label != "Restart now" && c.Visible {
						t.Errorf("visible item %q where refusing is not allowed", c.Label)
					}
				}
				return
			}
			if err := m.ClickLabel(ctx, "Don't restart"); err != nil {
				t.Fatal(err)
			}
			if err := w.d.WaitCall(ctx, "refuse"); err != nil {
				t.Fatal(err)
			}
			waitLines(ctx, t, m, menuWith("Restart declined (you chose not to restart)", "Restart now", "Details"))
			if !w.d.Status().Refused {
				t.Errorf("daemon does not record the refusal")
			}
		})
	}
}

func TestNotificationActionsReachDaemon(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		key, label, call string
	}{
		{"restart", "Restart now", "restart"},
		{"defer:1h", "Defer 1 hour", "defer 1h"},
	} {
		t.Run(tc.label, func(t *testing.T) {
			t.Parallel()
			st, status := pending(2, false)
			w := startWorld(t, setup{watcher: true, notifications: true, status: st})
			ctx := testContext(t)
			prompt, err := w.notes.WaitNotification(ctx, func(n dbustest.Notification) bool { return n.Summary == status })
			if err != nil {
				t.Fatal(err)
			}
			if got := prompt.ActionLabels(); !slices.Equal(got, []string{"Restart now", "Defer 1 hour"}) {
				t.Fatalf("prompt actions %q", got)
			}
			if prompt.AppName != "patchring" || !strings.Contains(prompt.Body, st.Reason) {
				t.Errorf("prompt app %q body %q", prompt.AppName, prompt.Body)
			}
			if err := w.notes.InvokeAction(prompt.ID, tc.key); err != nil {
				t.Fatal(err)
			}
			if err := w.d.WaitCall(ctx, tc.call); err != nil {
				t.Fatal(err)
			}
			if tc.call == "restart" {
				if _, err := w.notes.WaitNotification(ctx, func(n dbustest.Notification) bool { return n.Summary == "Restarting now" }); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestCountdownNotifications(t *testing.T) {
	t.Parallel()
	st, status := pending(0, false)
	w := startWorld(t, setup{watcher: true, notifications: true, status: st})
	ctx := testContext(t)
	if _, err := w.notes.WaitNotification(ctx, func(n dbustest.Notification) bool { return n.Summary == status }); err != nil {
		t.Fatal(err)
	}
	var first dbustest.Notification
	for i, mins := range []int{15, 1} {
		w.d.Update(apitypes.EventRebootCountdown, func(st *apitypes.RebootStatus) {
			st.State = apitypes.RebootStateDeadlineNear
			st.NextAutomatic = time.Now().Add(time.Duration(mins)*time.Minute - time.Second)
		})
		want := fmt.Sprintf("Restarting in %d minutes", mins)
		if mins == 1 {
			want = "Restarting in 1 minute"
		}
		n, err := w.notes.WaitNotification(ctx, func(n dbustest.Notification) bool { return n.Summary == want })
		if err != nil {
			t.Fatal(err)
		}
		if got := n.ActionLabels(); !slices.Equal(got, []string{"Restart now"}) {
			t.Errorf("%s: actions %q", want, got)
		}
		if u, _ := n.Hints["urgency"].Value().(byte); u != 2 {
			t.Errorf("%s: urgency %v, want critical", want, n.Hints["urgency"])
		}
		if i == 0 {
			first = n
		} else if n.ReplacesID != first.ID || n.ID != first.ID {
			t.Errorf("the 1-minute countdown (id %d, replaces %d) does not replace the 15-minute one (%d)", n.ID, n.ReplacesID, first.ID)
		}
	}
}

func TestFallbackWithoutTrayHost(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		s    setup
	}{
		{"no watcher", setup{notifications: true}},
		{"watcher without a host", setup{watcher: true, noHost: true, notifications: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st, status := pending(2, true)
			tc.s.status = st
			w := startWorld(t, tc.s)
			ctx := testContext(t)
			prompt, err := w.notes.WaitNotification(ctx, func(n dbustest.Notification) bool { return n.Summary == status })
			if err != nil {
				t.Fatal(err)
			}
			want := []string{"Restart now", "Defer 1 hour (2 left)", "Defer 4 hours (2 left)", "Defer until tomorrow (2 left)", "Don't restart", "Details"}
			if got := prompt.ActionLabels(); !slices.Equal(got, want) {
				t.Fatalf("fallback prompt actions\n got %q\nwant %q", got, want)
			}
			if prompt.ExpireTimeout != 0 {
				t.Errorf("fallback prompt expires after %dms; it must stay", prompt.ExpireTimeout)
			}
			if err := w.notes.InvokeAction(prompt.ID, "defer:4h"); err != nil {
				t.Fatal(err)
			}
			if err := w.d.WaitCall(ctx, "defer 4h"); err != nil {
				t.Fatal(err)
			}
			next, err := w.notes.WaitNotification(ctx, func(n dbustest.Notification) bool {
				return n.Seq > prompt.Seq && slices.Contains(n.ActionLabels(), "Defer 1 hour (1 left)")
			})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(next.Summary, "Restart deferred until") {
				t.Errorf("prompt after deferring says %q", next.Summary)
			}
			if n := strings.Count(w.stderr.String(), "no StatusNotifierItem host"); n != 1 {
				t.Errorf("the missing tray host was logged %d times, want once", n)
			}
			// A tray host appears: the item registers and its menu works.
			if w.watcher == nil {
				w.startWatcher(true)
			} else if err := w.watcher.SetHostRegistered(true); err != nil {
				t.Fatal(err)
			}
			m, _ := w.menu(ctx)
			if _, err := m.WaitFor(ctx, func(root dbustest.MenuItem) bool {
				_, ok := root.Find("Defer 1 hour (1 left)")
				return ok
			}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestDaemonRestart(t *testing.T) {
	t.Parallel()
	st, status := pending(2, false)
	w := startWorld(t, setup{watcher: true, notifications: true, status: st})
	ctx := testContext(t)
	m, item := w.menu(ctx)
	full := menuWith(status, "Restart now", "Defer 1 hour (2 left)", "Defer 4 hours (2 left)", "Defer until tomorrow (2 left)", "Details")
	waitLines(ctx, t, m, full)

	w.br.down()
	waitLines(ctx, t, m, menuWith("Disconnected from patchringd"))
	props, err := dbustest.ReadItem(ctx, w.conn, item)
	if err != nil {
		t.Fatal(err)
	}
	if !sameIcon(t, props.Icon, "disconnected") || !strings.Contains(props.ToolTip, "disconnected") {
		t.Errorf("while disconnected: tooltip %q, disconnected icon %v", props.ToolTip, sameIcon(t, props.Icon, "disconnected"))
	}

	// The daemon comes back with a changed state; the tray follows.
	w.d.Update(apitypes.EventRebootStatus, func(st *apitypes.RebootStatus) { st.DeferralsLeft = 1 })
	if err := w.br.up(); err != nil {
		t.Fatal(err)
	}
	waitLines(ctx, t, m, menuWith(status, "Restart now", "Defer 1 hour (1 left)", "Defer 4 hours (1 left)", "Defer until tomorrow (1 left)", "Details"))
	// And it is subscribed again: events reach it.
	w.d.Update(apitypes.EventRebootStatus, func(st *apitypes.RebootStatus) {
		st.State = apitypes.RebootStateUpToDate
		st.Required = false
	})
	waitLines(ctx, t, m, menuWith("Up to date", "Details"))
	if n := strings.Count(w.stderr.String(), "no connection to patchringd"); n != 1 {
		t.Errorf("the outage was logged %d times at warning level, want once", n)
	}
}

func TestWithoutNotificationServer(t *testing.T) {
	t.Parallel()
	st, status := pending(2, false)
	w := startWorld(t, setup{watcher: true, status: st})
	ctx := testContext(t)
	m, _ := w.menu(ctx)
	waitLines(ctx, t, m, menuWith(status, "Restart now", "Defer 1 hour (2 left)", "Defer 4 hours (2 left)", "Defer until tomorrow (2 left)", "Details"))
	if err := m.ClickLabel(ctx, "Details"); err != nil {
		t.Fatal(err)
	}
	if err := m.ClickLabel(ctx, "Defer 1 hour (2 left)"); err != nil {
		t.Fatal(err)
	}
	if err := w.d.WaitCall(ctx, "defer 1h"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.WaitFor(ctx, func(root dbustest.MenuItem) bool {
		_, ok := root.Find("Defer 1 hour (1 left)")
		return ok
	}); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(w.stderr.String(), "notifications are off"); n != 1 {
		t.Errorf("the missing notification server was logged %d times, want once", n)
	}
}

func TestQuit(t *testing.T) {
	t.Parallel()
	w := startWorld(t, setup{watcher: true, notifications: true, status: apitypes.RebootStatus{State: apitypes.RebootStateUpToDate}})
	ctx := testContext(t)
	m, _ := w.menu(ctx)
	waitLines(ctx, t, m, menuWith("Up to date", "Details"))
	// The tray may leave the bus before it answers the click.
	if err := m.ClickLabel(ctx, "Quit"); err != nil && !strings.Contains(err.Error(), "disconnected from message bus without replying") {
		t.Fatal(err)
	}
	select {
	case err := <-w.exited:
		w.exited <- err
		if err != nil {
			t.Fatalf("tray exited with %v after Quit", err)
		}
	case <-ctx.Done():
		t.Fatal("tray still running after Quit")
	}
	if err := w.watcher.WaitNoItem(ctx); err != nil {
		t.Fatal(err)
	}
}
