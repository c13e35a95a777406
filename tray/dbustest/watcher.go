package dbustest

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/introspect"
	"github.com/godbus/dbus/v5/prop"
)

// StatusNotifierWatcher names.
const (
	WatcherName  = "org.kde.StatusNotifierWatcher"
	WatcherPath  = dbus.ObjectPath("/StatusNotifierWatcher")
	watcherIface = "org.kde.StatusNotifierWatcher"
	itemIface    = "org.kde.StatusNotifierItem"
)

// Item is a StatusNotifierItem registered with the watcher.
type Item struct {
	// Service is the bus name the item lives on (the registering
	// connection's unique name when it registered by path).
	Service string
	// Path is the item's object path.
	Path dbus.ObjectPath
}

// String is the form the watcher's RegisteredStatusNotifierItems lists.
func (it Item) String() string { return it.Service + string(it.Path) }

// Watcher is a fake org.kde.StatusNotifierWatcher: it records the items
// that register, drops those whose connection leaves the bus, and emits the
// specification's signals.
type Watcher struct {
	conn  *dbus.Conn
	props *prop.Properties

	mu      sync.Mutex
	items   []Item
	host    bool
	changed chan struct{} // closed and replaced on every change
	closed  bool

	done chan struct{}
	wg   sync.WaitGroup
}

// NewWatcher claims org.kde.StatusNotifierWatcher on conn's bus. host is the
// initial IsStatusNotifierHostRegistered: whether a tray host shows the
// items. Close releases it.
func NewWatcher(conn *dbus.Conn, host bool) (*Watcher, error) {
	w := &Watcher{conn: conn, host: host, changed: make(chan struct{}), done: make(chan struct{})}
	if err := conn.Export(watcherMethods{w}, WatcherPath, watcherIface); err != nil {
		return nil, fmt.Errorf("export watcher: %w", err)
	}
	props, err := prop.Export(conn, WatcherPath, map[string]map[string]*prop.Prop{
		watcherIface: {
			"RegisteredStatusNotifierItems":  {Value: []string{}, Emit: prop.EmitTrue},
			"IsStatusNotifierHostRegistered": {Value: host, Emit: prop.EmitTrue},
			"ProtocolVersion":                {Value: int32(0), Emit: prop.EmitTrue},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("export watcher properties: %w", err)
	}
	w.props = props
	node := &introspect.Node{Name: string(WatcherPath), Interfaces: []introspect.Interface{
		introspect.IntrospectData, prop.IntrospectData,
		{Name: watcherIface, Methods: []introspect.Method{
			{Name: "RegisterStatusNotifierItem", Args: []introspect.Arg{{Name: "service", Type: "s", Direction: "in"}}},
			{Name: "RegisterStatusNotifierHost", Args: []introspect.Arg{{Name: "service", Type: "s", Direction: "in"}}},
		}},
	}}
	if err := conn.Export(introspect.NewIntrospectable(node), WatcherPath, "org.freedesktop.DBus.Introspectable"); err != nil {
		return nil, fmt.Errorf("export watcher introspection: %w", err)
	}
	if err := conn.AddMatchSignal(dbus.WithMatchSender("org.freedesktop.DBus"),
		dbus.WithMatchMember("NameOwnerChanged")); err != nil {
		return nil, fmt.Errorf("watch bus names: %w", err)
	}
	sigs := make(chan *dbus.Signal, 32)
	conn.Signal(sigs)
	w.wg.Go(func() { w.followNames(sigs) })
	reply, err := conn.RequestName(WatcherName, dbus.NameFlagDoNotQueue)
	if err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		w.Close()
		return nil, fmt.Errorf("claim %s: reply %v: %v", WatcherName, reply, err)
	}
	return w, nil
}

// followNames forgets items whose connection left the bus.
func (w *Watcher) followNames(sigs chan *dbus.Signal) {
	defer w.conn.RemoveSignal(sigs)
	for {
		select {
		case <-w.done:
			return
		case sig, ok := <-sigs:
			if !ok {
				return
			}
			if sig.Name != "org.freedesktop.DBus.NameOwnerChanged" || len(sig.Body) != 3 {
				continue
			}
			name, _ := sig.Body[0].(string)
			newOwner, _ := sig.Body[2].(string)
			if newOwner == "" {
				w.drop(name)
			}
		}
	}
}

func (w *Watcher) drop(service string) {
	w.mu.Lock()
	var gone []Item
	kept := w.items[:0]
	for _, it := range w.items {
		if it.Service == service {
			gone = append(gone, it)
		} else {
			kept = append(kept, it)
		}
	}
	w.items = kept
	w.mu.Unlock()
	for _, it := range gone {
		w.conn.Emit(WatcherPath, watcherIface+".StatusNotifierItemUnregistered", it.String())
	}
	if len(gone) > 0 {
		w.publish()
	}
}

// publish updates the items property and wakes waiters.
func (w *Watcher) publish() {
	w.mu.Lock()
	list := make([]string, len(w.items))
	for i, it := range w.items {
		list[i] = it.String()
	}
	close(w.changed)
	w.changed = make(chan struct{})
	w.mu.Unlock()
	w.props.SetMust(watcherIface, "RegisteredStatusNotifierItems", list)
}

type watcherMethods struct{ w *Watcher }

// RegisterStatusNotifierItem is the specification's method. service is a
// bus name or, as KDE and fyne.io/systray use it, an object path on the
// caller's connection.
func (m watcherMethods) RegisterStatusNotifierItem(sender dbus.Sender, service string) *dbus.Error {
	it := Item{Service: service, Path: "/StatusNotifierItem"}
	if strings.HasPrefix(service, "/") {
		it = Item{Service: string(sender), Path: dbus.ObjectPath(service)}
	}
	if !it.Path.IsValid() {
		return dbus.MakeFailedError(fmt.Errorf("invalid item path %q", it.Path))
	}
	w := m.w
	w.mu.Lock()
	for _, have := range w.items {
		if have == it {
			w.mu.Unlock()
			return nil
		}
	}
	w.items = append(w.items, it)
	w.mu.Unlock()
	w.publish()
	w.conn.Emit(WatcherPath, watcherIface+".StatusNotifierItemRegistered", it.String())
	return nil
}

// RegisterStatusNotifierHost is the specification's method.
func (m watcherMethods) RegisterStatusNotifierHost(service string) *dbus.Error {
	if err := m.w.SetHostRegistered(true); err != nil {
		return dbus.MakeFailedError(err)
	}
	return nil
}

// SetHostRegistered changes IsStatusNotifierHostRegistered and emits
// StatusNotifierHostRegistered or StatusNotifierHostUnregistered.
func (w *Watcher) SetHostRegistered(registered bool) error {
	w.mu.Lock()
	w.host = registered
	w.mu.Unlock()
	w.props.SetMust(watcherIface, "IsStatusNotifierHostRegistered", registered)
	sig := "StatusNotifierHostUnregistered"
	if registered {
		sig = "StatusNotifierHostRegistered"
	}
	if err := w.conn.Emit(WatcherPath, watcherIface+"."+sig); err != nil {
		return fmt.Errorf("emit %s: %w", sig, err)
	}
	return nil
}

// Items returns the registered items.
func (w *Watcher) Items() []Item {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Item(nil), w.items...)
}

// WaitItem waits until an item is registered and returns the first one.
func (w *Watcher) WaitItem(ctx context.Context) (Item, error) {
	for {
		w.mu.Lock()
		if len(w.items) > 0 {
			it := w.items[0]
			w.mu.Unlock()
			return it, nil
		}
		ch := w.changed
		w.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return Item{}, fmt.Errorf("wait for a StatusNotifierItem to register: %w", ctx.Err())
		}
	}
}

// WaitNoItem waits until no item is registered.
func (w *Watcher) WaitNoItem(ctx context.Context) error {
	for {
		w.mu.Lock()
		if len(w.items) == 0 {
			w.mu.Unlock()
			return nil
		}
		ch := w.changed
		w.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for the StatusNotifierItems to leave: %w", ctx.Err())
		}
	}
}

// Close releases the watcher's name and stops following the bus.
func (w *Watcher) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.mu.Unlock()
	close(w.done)
	w.wg.Wait()
	_, err := w.conn.ReleaseName(WatcherName)
	w.conn.Export(nil, WatcherPath, watcherIface)
	w.conn.Export(nil, WatcherPath, "org.freedesktop.DBus.Properties")
	w.conn.Export(nil, WatcherPath, "org.freedesktop.DBus.Introspectable")
	if err != nil {
		return fmt.Errorf("release %s: %w", WatcherName, err)
	}
	return nil
}
