package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/godbus/dbus/v5"

	"github.com/patchring/patchring/tray/dbustest"
)

// desktopWait bounds each wait for the tray: registering, redrawing its
// menu, showing a notification.
const desktopWait = 30 * time.Second

// userDesktop is the desktop session of the user on one agent: a private
// D-Bus session bus with a tray host (a fake StatusNotifierWatcher) and a
// notification server (tray/dbustest), and the real `patchring tray`
// talking to the agent's patchringd through its local API. The demo plays
// the tray host: it reads the menu over com.canonical.dbusmenu and clicks
// it as a host does when the user picks an item.
//
// When dbus-daemon is missing, bus is nil: the user deferred with the CLI
// and waitReboot is the demo's plain wait.
type userDesktop struct {
	d *demo
	a *agent

	bus     *dbustest.Bus
	conn    *dbus.Conn
	watcher *dbustest.Watcher
	notes   *dbustest.NotificationServer
	menu    *dbustest.Menu

	tray    *exec.Cmd
	trayLog string
	trayErr error         // set before exited closes
	exited  chan struct{} // closed when the tray process has exited

	// ctx ends when the demo's ends or the tray process exits (cause says
	// which); every wait on the tray uses it.
	ctx    context.Context
	cancel context.CancelCauseFunc
	wg     sync.WaitGroup

	printed  int // notifications printed so far
	deferred time.Time
	stopOnce sync.Once
}

// deferFromTray starts the user's desktop on a's machine with
// `patchring tray` in it, shows its menu as the user sees it, defers the
// restart by clicking the menu's first deferral over D-Bus, and shows the
// menu and the agent's `patchring reboot status` after it. Without
// dbus-daemon it says so and defers with the CLI instead. The desktop is
// stopped by its waitReboot, or by the demo's cleanup on failure.
func (d *demo) deferFromTray(ctx context.Context, a *agent) (*userDesktop, error) {
	u := &userDesktop{d: d, a: a}
	bus, err := dbustest.StartBus(ctx)
	if errors.Is(err, exec.ErrNotFound) {
		d.note("dbus-daemon is not installed (Debian package dbus-daemon), so the demo cannot give the user a desktop")
		d.note("session bus for `patchring tray`: the user defers with the CLI instead")
		return u, d.cli(ctx, "--socket", a.sock, "reboot", "defer", "10s")
	}
	if err != nil {
		return nil, err
	}
	u.bus = bus
	u.ctx, u.cancel = context.WithCancelCause(ctx)
	d.cleanups = append(d.cleanups, func() { u.stop() })
	if err := u.start(); err != nil {
		return nil, err
	}
	if err := u.showAndDefer(); err != nil {
		return nil, err
	}
	return u, nil
}

// start brings up the fake desktop services and the tray process.
func (u *userDesktop) start() error {
	conn, err := u.bus.Connect()
	if err != nil {
		return err
	}
	u.conn = conn
	if u.watcher, err = dbustest.NewWatcher(conn, true); err != nil {
		return err
	}
	if u.notes, err = dbustest.NewNotificationServer(conn); err != nil {
		return err
	}
	u.d.note("the user's desktop: a private D-Bus session bus with a tray host (StatusNotifierWatcher) and a notification server")

	u.trayLog = filepath.Join(u.a.dir, "tray.log")
	logf, err := os.Create(u.trayLog)
	if err != nil {
		return err
	}
	u.tray = exec.Command(filepath.Join(u.d.bin, "patchring"), "--socket", u.a.sock, "tray")
	u.tray.Env = append(withoutEnv(os.Environ(), "DBUS_SESSION_BUS_ADDRESS"), u.bus.Env())
	u.tray.Stdout, u.tray.Stderr = logf, logf
	fmt.Printf("\n          $ %s patchring --socket %s tray &\n", u.bus.Env(), u.a.sock)
	if err := u.tray.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start patchring tray: %w", err)
	}
	u.exited = make(chan struct{})
	u.wg.Go(func() {
		u.trayErr = u.tray.Wait()
		logf.Close()
		close(u.exited)
	})
	u.wg.Go(func() {
		select {
		case <-u.exited:
			u.cancel(fmt.Errorf("patchring tray (pid %d) exited: %v (its log: %s)", u.tray.Process.Pid, u.trayErr, u.trayLog))
		case <-u.ctx.Done():
		}
	})
	u.d.note("pid %d, its log in %s", u.tray.Process.Pid, u.trayLog)
	return nil
}

// bounded is u.ctx limited to desktopWait.
func (u *userDesktop) bounded() (context.Context, context.CancelFunc) {
	return context.WithTimeout(u.ctx, desktopWait)
}

// failed says why a wait on the tray ended: the tray's exit or the demo's
// end when that is the cause, else err.
func (u *userDesktop) failed(what string, err error) error {
	if cause := context.Cause(u.ctx); cause != nil {
		return fmt.Errorf("%s: %w", what, cause)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// showAndDefer reads the tray's item and menu, clicks the first deferral
// and shows the result.
func (u *userDesktop) showAndDefer() error {
	ctx, cancel := u.bounded()
	defer cancel()
	item, err := u.watcher.WaitItem(ctx)
	if err != nil {
		return u.failed("the tray's StatusNotifierItem", err)
	}
	if u.menu, err = dbustest.OpenMenu(ctx, u.conn, item); err != nil {
		return u.failed("open the tray's menu", err)
	}
	// The tray shows "Disconnected" until it has read the agent's status.
	root, err := u.menu.WaitFor(ctx, func(root dbustest.MenuItem) bool {
		it, ok := root.FindPrefix("Defer ")
		return ok && it.Enabled
	})
	if err != nil {
		return u.failed("the tray's menu with a deferral to pick", err)
	}
	if err := u.showItem(ctx, item); err != nil {
		return err
	}
	u.d.note("its menu, read with com.canonical.dbusmenu GetLayout: what the user sees on clicking the icon")
	printMenu(root)
	// The tray prompts when it finds a restart pending.
	if _, err := u.notes.WaitNotification(ctx, func(dbustest.Notification) bool { return true }); err != nil {
		return u.failed("the tray's restart prompt", err)
	}
	u.d.note("and its notification:")
	u.printNotifications()

	pick, _ := root.FindPrefix("Defer ")
	seen := u.menu.Updates()
	fmt.Println()
	u.d.note("the user picks %q: the tray host sends dbusmenu Event(%d, \"clicked\")", pick.Label, pick.ID)
	if err := u.menu.Click(ctx, pick.ID); err != nil {
		return u.failed("click "+pick.Label, err)
	}
	u.deferred = time.Now()
	if err := u.menu.WaitUpdates(ctx, seen); err != nil {
		return u.failed("the menu's update after the click", err)
	}
	root, err = u.menu.WaitFor(ctx, func(root dbustest.MenuItem) bool {
		it, ok := byID(root, pick.ID)
		return ok && !it.Enabled
	})
	if err != nil {
		return u.failed("the menu with the deferral used", err)
	}
	u.d.note("the tray called the agent's local API and redrew the menu (LayoutUpdated); read again:")
	printMenu(root)
	if err := u.showItem(ctx, item); err != nil {
		return err
	}
	st, err := u.a.client.RebootStatus(ctx)
	if err != nil {
		return fmt.Errorf("%s: reboot status after the tray's deferral: %w", u.a.name, err)
	}
	if st.DeferralsUsed != 1 {
		return fmt.Errorf("%s: %d deferrals used after the click in the tray, want 1", u.a.name, st.DeferralsUsed)
	}
	u.d.note("the agent agrees:")
	return u.d.cli(ctx, "--socket", u.a.sock, "reboot", "status")
}

// showItem prints the item's tooltip.
func (u *userDesktop) showItem(ctx context.Context, item dbustest.Item) error {
	props, err := dbustest.ReadItem(ctx, u.conn, item)
	if err != nil {
		return u.failed("read the tray's item", err)
	}
	u.d.note("the tray's icon (StatusNotifierItem %s), tooltip:", item)
	for line := range strings.SplitSeq(props.ToolTip, "\n") {
		u.d.note("    %s", line)
	}
	return nil
}

// printMenu draws the visible menu items in a box, disabled ones marked.
func printMenu(root dbustest.MenuItem) {
	lines := root.Lines()
	width := 0
	for _, l := range lines {
		width = max(width, utf8.RuneCountInString(l))
	}
	rule := strings.Repeat("-", width+2)
	fmt.Printf("            +%s+\n", rule)
	for _, l := range lines {
		if l == "---" {
			fmt.Printf("            |%s|\n", rule)
			continue
		}
		fmt.Printf("            | %s%s |\n", l, strings.Repeat(" ", width-utf8.RuneCountInString(l)))
	}
	fmt.Printf("            +%s+\n", rule)
}

// byID finds the visible item id among root's descendants.
func byID(root dbustest.MenuItem, id int32) (dbustest.MenuItem, bool) {
	for _, c := range root.Children {
		if !c.Visible {
			continue
		}
		if c.ID == id {
			return c, true
		}
		if f, ok := byID(c, id); ok {
			return f, true
		}
	}
	return dbustest.MenuItem{}, false
}

// printNotifications prints the notifications the tray sent since the last
// call.
func (u *userDesktop) printNotifications() {
	all := u.notes.Notifications()
	for _, n := range all[u.printed:] {
		head := n.Summary
		if v, ok := n.Hints["urgency"].Value().(byte); ok && v == 2 {
			head += " (critical)"
		}
		if n.ReplacesID != 0 {
			head += fmt.Sprintf(", replacing #%d", n.ReplacesID)
		}
		for _, l := range n.ActionLabels() {
			head += "  [" + l + "]"
		}
		u.d.note("%s  notification #%d: %s", time.Now().Format("15:04:05"), n.ID, head)
		for line := range strings.SplitSeq(n.Body, "\n") {
			if line != "" {
				u.d.note("                            %s", line)
			}
		}
	}
	u.printed = len(all)
}

// waitReboot prints the tray's notifications until the agent runs its
// reboot command, shows the menu at that moment and stops the desktop.
func (u *userDesktop) waitReboot(ctx context.Context) error {
	if u.bus == nil {
		return u.d.waitReboot(ctx, u.a)
	}
	defer u.stop()
	fmt.Println()
	u.d.note("the deadline approaches; the notifications the tray shows (recorded by the notification server):")
	marker := filepath.Join(u.a.dir, "rebooted")
	err := u.d.poll(u.ctx, u.a, "the enforced reboot", func() (bool, error) {
		u.printNotifications()
		_, err := os.Stat(marker)
		return err == nil, nil
	})
	if err != nil {
		return u.failed("wait for the reboot", err)
	}
	ctx, cancel := u.bounded()
	defer cancel()
	// The tray hears of the restart from the daemon's event stream while
	// the command runs; wait for its last notification.
	if _, err := u.notes.WaitNotification(ctx, func(n dbustest.Notification) bool { return n.Summary == "Restarting now" }); err != nil {
		return u.failed(`the tray's "Restarting now"`, err)
	}
	u.printNotifications()
	data, _ := os.ReadFile(marker)
	u.d.note("%s  patchringd ran the reboot command (simulated here), %.0fs after the deferral: %s",
		time.Now().Format("15:04:05"), time.Since(u.deferred).Seconds(), strings.TrimSpace(string(data)))
	root, err := u.menu.WaitFor(ctx, func(root dbustest.MenuItem) bool {
		_, ok := root.Find("Restart now")
		return !ok
	})
	if err != nil {
		return u.failed("the menu while restarting", err)
	}
	u.d.note("the tray's menu now: nothing left to choose")
	printMenu(root)
	pid := u.tray.Process.Pid
	if err := u.stop(); err != nil {
		return err
	}
	u.d.note("stopped the tray (pid %d, it exited cleanly) and the private bus", pid)
	return nil
}

// stop ends the tray process (SIGTERM to its pid, then SIGKILL), the fake
// desktop services and the bus. It returns the tray's exit error; calls
// after the first return nil.
func (u *userDesktop) stop() error {
	var err error
	u.stopOnce.Do(func() {
		if u.tray != nil && u.exited != nil {
			select {
			case <-u.exited:
			default:
				u.tray.Process.Signal(syscall.SIGTERM)
				select {
				case <-u.exited:
				case <-time.After(10 * time.Second):
					u.tray.Process.Kill()
					<-u.exited
				}
			}
			if u.trayErr != nil {
				err = fmt.Errorf("patchring tray (pid %d): %w (its log: %s)", u.tray.Process.Pid, u.trayErr, u.trayLog)
			}
		}
		if u.menu != nil {
			u.menu.Close()
		}
		if u.notes != nil {
			u.notes.Close()
		}
		if u.watcher != nil {
			u.watcher.Close()
		}
		if u.conn != nil {
			u.conn.Close()
		}
		u.cancel(nil)
		u.wg.Wait()
		if cerr := u.bus.Close(); cerr != nil && err == nil {
			err = cerr
		}
	})
	return err
}

// withoutEnv returns env without the variable name.
func withoutEnv(env []string, name string) []string {
	var out []string
	for _, e := range env {
		if !strings.HasPrefix(e, name+"=") {
			out = append(out, e)
		}
	}
	return out
}
