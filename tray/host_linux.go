package tray

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"fyne.io/systray"
	"github.com/godbus/dbus/v5"

	"github.com/patchring/patchring/daemon/apitypes"
)

// StatusNotifierWatcher names (KDE's StatusNotifierItem specification).
const (
	watcherName  = "org.kde.StatusNotifierWatcher"
	watcherPath  = dbus.ObjectPath("/StatusNotifierWatcher")
	watcherIface = "org.kde.StatusNotifierWatcher"
)

// sniHost is the host on Linux: fyne.io/systray exports the
// StatusNotifierItem and its com.canonical.dbusmenu menu on the session
// bus; a private connection watches whether a StatusNotifierWatcher with a
// registered host is there to show them.
//
// The menu is a fixed set of items made once (a status line, menuSlots
// action slots and Quit); show retitles, enables, shows and hides them.
// Items are never removed, which avoids fyne.io/systray's race between
// removing an item and a click on it.
type sniHost struct {
	log  *slog.Logger
	conn *dbus.Conn

	clickCh chan action
	visCh   chan bool
	done    chan struct{}
	wg      sync.WaitGroup
	end     func()

	status *systray.MenuItem
	slots  []*systray.MenuItem
	quit   *systray.MenuItem

	mu   sync.Mutex
	acts []action // what each slot does now

	// last shown, to skip redundant D-Bus updates
	shownIcon    iconKind
	shownTooltip string
	shownStatus  string
	shownItems   []menuEntry
	shownSlots   int
	visible      bool
}

var _ host = (*sniHost)(nil)

// startSNIHost builds the menu, exports the item on the session bus and
// starts watching for a tray host. It returns whether a host shows the item
// now. conn is a private session bus connection for the watching.
func startSNIHost(ctx context.Context, conn *dbus.Conn, log *slog.Logger) (*sniHost, bool, error) {
	// fyne.io/systray uses the shared session bus connection and cannot
	// report a failure to connect; make sure it will work.
	if _, err := dbus.SessionBus(); err != nil {
		return nil, false, fmt.Errorf("connect to the D-Bus session bus: %w", err)
	}
	h := &sniHost{
		log:       log,
		conn:      conn,
		clickCh:   make(chan action),
		visCh:     make(chan bool, 1),
		done:      make(chan struct{}),
		acts:      make([]action, menuSlots),
		shownIcon: -1,
	}
	systray.SetTitle("patchring")
	h.status = systray.AddMenuItem("patchring", "")
	h.status.Disable()
	systray.AddSeparator()
	for i := range menuSlots {
		it := systray.AddMenuItem("", "")
		it.Hide()
		h.slots = append(h.slots, it)
		h.forward(it, func() action {
			h.mu.Lock()
			defer h.mu.Unlock()
			return h.acts[i]
		})
	}
	systray.AddSeparator()
	h.quit = systray.AddMenuItem(labelQuit, "Close the patchring tray")
	h.forward(h.quit, func() action { return action{kind: actQuit} })
	h.show(buildView(apitypes.RebootStatus{}, false, time.Time{}, time.UTC))

	visible, err := h.startWatching(ctx)
	if err != nil {
		close(h.done)
		h.wg.Wait()
		return nil, false, err
	}
	h.visible = visible
	start, end := systray.RunWithExternalLoop(nil, nil)
	start()
	h.end = end
	return h, visible, nil
}

// forward turns clicks of it into actions on clickCh.
func (h *sniHost) forward(it *systray.MenuItem, act func() action) {
	h.wg.Go(func() {
		for {
			select {
			case <-h.done:
				return
			case <-it.ClickedCh:
				a := act()
				if a.kind == actNone {
					continue
				}
				select {
				case h.clickCh <- a:
				case <-h.done:
					return
				}
			}
		}
	})
}

func (h *sniHost) clicks() <-chan action   { return h.clickCh }
func (h *sniHost) visibility() <-chan bool { return h.visCh }

// show implements host.
func (h *sniHost) show(v view) {
	if v.icon != h.shownIcon {
		systray.SetIcon(iconPNG(v.icon))
		h.shownIcon = v.icon
	}
	if v.tooltip != h.shownTooltip {
		systray.SetTooltip(v.tooltip)
		h.shownTooltip = v.tooltip
	}
	if v.status != h.shownStatus {
		h.status.SetTitle(v.status)
		h.shownStatus = v.status
	}
	items := v.items
	if len(items) > menuSlots {
		items = items[:menuSlots] // buildView caps choices; this is a backstop
	}
	h.mu.Lock()
	for i := range menuSlots {
		if i < len(items) {
			h.acts[i] = items[i].act
		} else {
			h.acts[i] = action{}
		}
	}
	h.mu.Unlock()
	for i, it := range h.slots {
		switch {
		case i < len(items):
			e := items[i]
			if i >= len(h.shownItems) || h.shownItems[i].label != e.label {
				it.SetTitle(e.label)
			}
			if i >= len(h.shownItems) || h.shownItems[i].enabled != e.enabled || i >= h.shownSlots {
				if e.enabled {
					it.Enable()
				} else {
					it.Disable()
				}
			}
			if i >= h.shownSlots {
				it.Show()
			}
		case i < h.shownSlots:
			it.Hide()
		}
	}
	h.shownItems = append(h.shownItems[:0], items...)
	h.shownSlots = len(items)
}

// startWatching subscribes to the watcher's comings and goings, then reads
// whether a host is there now.
func (h *sniHost) startWatching(ctx context.Context) (bool, error) {
	matches := [][]dbus.MatchOption{
		{dbus.WithMatchSender("org.freedesktop.DBus"), dbus.WithMatchInterface("org.freedesktop.DBus"),
			dbus.WithMatchMember("NameOwnerChanged"), dbus.WithMatchArg(0, watcherName)},
		{dbus.WithMatchInterface(watcherIface), dbus.WithMatchMember("StatusNotifierHostRegistered")},
		{dbus.WithMatchInterface(watcherIface), dbus.WithMatchMember("StatusNotifierHostUnregistered")},
	}
	for _, m := range matches {
		if err := h.conn.AddMatchSignalContext(ctx, m...); err != nil {
			return false, fmt.Errorf("watch the StatusNotifierWatcher: %w", err)
		}
	}
	sigs := make(chan *dbus.Signal, 16)
	h.conn.Signal(sigs)
	visible := h.probe(ctx)
	h.wg.Go(func() {
		defer h.conn.RemoveSignal(sigs)
		last := visible
		for {
			select {
			case <-h.done:
				return
			case <-ctx.Done():
				return
			case sig, ok := <-sigs:
				if !ok {
					return
				}
				if !isWatcherSignal(sig) {
					continue
				}
				now := h.probe(ctx)
				if now == last {
					continue
				}
				last = now
				// Keep only the latest state in the one-slot channel.
				select {
				case <-h.visCh:
				default:
				}
				h.visCh <- now
			}
		}
	})
	return visible, nil
}

func isWatcherSignal(sig *dbus.Signal) bool {
	switch sig.Name {
	case "org.freedesktop.DBus.NameOwnerChanged":
		return len(sig.Body) == 3 && sig.Body[0] == watcherName
	case watcherIface + ".StatusNotifierHostRegistered", watcherIface + ".StatusNotifierHostUnregistered":
		return true
	}
	return false
}

// probe says whether a StatusNotifierWatcher runs and reports a registered
// host. A watcher that does not answer the property counts as having one.
func (h *sniHost) probe(ctx context.Context) bool {
	var has bool
	if err := h.conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.NameHasOwner", 0, watcherName).Store(&has); err != nil {
		h.log.Debug("ask for the StatusNotifierWatcher", "err", err)
		return false
	}
	if !has {
		return false
	}
	v, err := h.conn.Object(watcherName, watcherPath).GetProperty(watcherIface + ".IsStatusNotifierHostRegistered")
	if err != nil {
		var derr dbus.Error
		if errors.As(err, &derr) && derr.Name == "org.freedesktop.DBus.Error.ServiceUnknown" {
			return false
		}
		h.log.Debug("read IsStatusNotifierHostRegistered", "err", err)
		return true
	}
	b, ok := v.Value().(bool)
	return !ok || b
}

// close removes the item from the bus and stops the host's goroutines.
func (h *sniHost) close() {
	close(h.done)
	if h.end != nil {
		h.end()
	}
	h.wg.Wait()
}
