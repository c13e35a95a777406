package tray

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"
)

// Urgency is a notification's urgency level.
type Urgency byte

// Urgency levels of the Desktop Notifications Specification.
const (
	UrgencyLow      Urgency = 0
	UrgencyNormal   Urgency = 1
	UrgencyCritical Urgency = 2
)

// Action is one button of a notification.
type Action struct {
	// Key is what ActionInvoked reports back.
	Key string
	// Label is the button's text.
	Label string
}

// Notification is one desktop notification.
type Notification struct {
	// ReplacesID is the id of a notification this one replaces, 0 for none.
	ReplacesID uint32
	Summary    string
	Body       string
	Actions    []Action
	Urgency    Urgency
	// Expire is how long the notification stays: 0 is the server's
	// default, negative is until the user closes it.
	Expire time.Duration
}

// ActionInvoked reports that the user picked a notification's action.
type ActionInvoked struct {
	ID  uint32
	Key string
}

// Notifier shows desktop notifications with action buttons.
type Notifier interface {
	// Notify shows n and returns its id.
	Notify(ctx context.Context, n Notification) (uint32, error)
	// CloseNotification withdraws the notification id.
	CloseNotification(ctx context.Context, id uint32) error
	// Actions delivers the actions users pick on this notifier's
	// notifications.
	Actions() <-chan ActionInvoked
}

// ErrNoNotificationServer says no org.freedesktop.Notifications server runs
// on the session bus.
var ErrNoNotificationServer = errors.New("no notification server on the session bus")

// D-Bus names of the Desktop Notifications Specification.
const (
	notifyName  = "org.freedesktop.Notifications"
	notifyPath  = dbus.ObjectPath("/org/freedesktop/Notifications")
	notifyIface = "org.freedesktop.Notifications"
)

// dbusNotifier is a Notifier over org.freedesktop.Notifications.
type dbusNotifier struct {
	conn    *dbus.Conn
	appName string
	actions chan ActionInvoked

	mu   sync.Mutex
	caps map[string]bool // nil until asked; reset when a call fails
	ours map[uint32]bool // ids of our notifications still open
	// early holds actions invoked on ids Notify has not returned yet: the
	// signal can overtake the method reply inside this process.
	early map[uint32][]string
}

// maxEarly bounds early; signals broadcast for other applications'
// notifications land there too.
const maxEarly = 64

var _ Notifier = (*dbusNotifier)(nil)

func newDBusNotifier(conn *dbus.Conn, appName string) *dbusNotifier {
	return &dbusNotifier{
		conn:    conn,
		appName: appName,
		actions: make(chan ActionInvoked, 16),
		ours:    make(map[uint32]bool),
		early:   make(map[uint32][]string),
	}
}

func (n *dbusNotifier) obj() dbus.BusObject { return n.conn.Object(notifyName, notifyPath) }

// capabilities asks the server what it supports, once per server.
func (n *dbusNotifier) capabilities(ctx context.Context) (map[string]bool, error) {
	n.mu.Lock()
	caps := n.caps
	n.mu.Unlock()
	if caps != nil {
		return caps, nil
	}
	var list []string
	if err := n.obj().CallWithContext(ctx, notifyIface+".GetCapabilities", 0).Store(&list); err != nil {
		return nil, notifyErr("get notification capabilities", err)
	}
	caps = make(map[string]bool, len(list))
	for _, c := range list {
		caps[c] = true
	}
	n.mu.Lock()
	n.caps = caps
	n.mu.Unlock()
	return caps, nil
}

// Notify implements Notifier.
func (n *dbusNotifier) Notify(ctx context.Context, nt Notification) (uint32, error) {
	caps, err := n.capabilities(ctx)
	if err != nil {
		return 0, err
	}
	body := nt.Body
	if caps["body-markup"] {
		body = escapeMarkup(body)
	}
	actions := make([]string, 0, 2*len(nt.Actions))
	for _, a := range nt.Actions {
		actions = append(actions, a.Key, a.Label)
	}
	hints := map[string]dbus.Variant{
		"urgency":       dbus.MakeVariant(byte(nt.Urgency)),
		"desktop-entry": dbus.MakeVariant("patchring-tray"),
	}
	if len(nt.Actions) > 0 && caps["persistence"] {
		hints["resident"] = dbus.MakeVariant(true)
	}
	expire := int32(-1)
	switch {
	case nt.Expire < 0:
		expire = 0
	case nt.Expire > 0:
		expire = int32(nt.Expire.Milliseconds())
	}
	var id uint32
	call := n.obj().CallWithContext(ctx, notifyIface+".Notify", 0,
		n.appName, nt.ReplacesID, "system-software-update", nt.Summary, body, actions, hints, expire)
	if err := call.Store(&id); err != nil {
		n.mu.Lock()
		n.caps = nil
		n.mu.Unlock()
		return 0, notifyErr("show notification", err)
	}
	n.mu.Lock()
	n.ours[id] = true
	keys := n.early[id]
	delete(n.early, id)
	n.mu.Unlock()
	for _, key := range keys {
		select {
		case n.actions <- ActionInvoked{ID: id, Key: key}:
		default: // the reader is our caller; never block it
		}
	}
	return id, nil
}

// CloseNotification implements Notifier.
func (n *dbusNotifier) CloseNotification(ctx context.Context, id uint32) error {
	n.mu.Lock()
	delete(n.ours, id)
	n.mu.Unlock()
	if err := n.obj().CallWithContext(ctx, notifyIface+".CloseNotification", 0, id).Err; err != nil {
		return notifyErr("close notification", err)
	}
	return nil
}

// Actions implements Notifier.
func (n *dbusNotifier) Actions() <-chan ActionInvoked { return n.actions }

// subscribe asks the bus for the server's ActionInvoked and
// NotificationClosed signals; after it returns no action is missed. run
// then forwards them.
func (n *dbusNotifier) subscribe(ctx context.Context) (chan *dbus.Signal, error) {
	for _, member := range []string{"ActionInvoked", "NotificationClosed"} {
		if err := n.conn.AddMatchSignalContext(ctx,
			dbus.WithMatchInterface(notifyIface),
			dbus.WithMatchObjectPath(notifyPath),
			dbus.WithMatchMember(member)); err != nil {
			return nil, fmt.Errorf("watch notification %s: %w", member, err)
		}
	}
	sigs := make(chan *dbus.Signal, 16)
	n.conn.Signal(sigs)
	return sigs, nil
}

// run forwards ActionInvoked signals for our notifications until ctx ends.
func (n *dbusNotifier) run(ctx context.Context, sigs chan *dbus.Signal) error {
	defer n.conn.RemoveSignal(sigs)
	for {
		select {
		case <-ctx.Done():
			return nil
		case sig, ok := <-sigs:
			if !ok {
				return errors.New("notifications: D-Bus connection closed")
			}
			n.handle(ctx, sig)
		}
	}
}

func (n *dbusNotifier) handle(ctx context.Context, sig *dbus.Signal) {
	if sig.Path != notifyPath || len(sig.Body) < 2 {
		return
	}
	id, ok := sig.Body[0].(uint32)
	if !ok {
		return
	}
	key, _ := sig.Body[1].(string)
	invoked := sig.Name == notifyIface+".ActionInvoked"
	n.mu.Lock()
	mine := n.ours[id]
	switch {
	case sig.Name == notifyIface+".NotificationClosed":
		delete(n.ours, id)
	case invoked && !mine:
		if len(n.early) >= maxEarly {
			clear(n.early)
		}
		n.early[id] = append(n.early[id], key)
	}
	n.mu.Unlock()
	if !mine || !invoked {
		return
	}
	select {
	case n.actions <- ActionInvoked{ID: id, Key: key}:
	case <-ctx.Done():
	}
}

// notifyErr wraps a D-Bus error, turning "nobody owns the name" into
// ErrNoNotificationServer.
func notifyErr(op string, err error) error {
	var derr dbus.Error
	if errors.As(err, &derr) && (derr.Name == "org.freedesktop.DBus.Error.ServiceUnknown" ||
		derr.Name == "org.freedesktop.DBus.Error.NameHasNoOwner") {
		return fmt.Errorf("%s: %w", op, ErrNoNotificationServer)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// escapeMarkup escapes the characters the notification body markup treats
// specially.
func escapeMarkup(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
