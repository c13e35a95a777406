package dbustest

import (
	"context"
	"fmt"
	"sync"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/introspect"
)

// Notification server names.
const (
	NotificationsName  = "org.freedesktop.Notifications"
	NotificationsPath  = dbus.ObjectPath("/org/freedesktop/Notifications")
	notificationsIface = "org.freedesktop.Notifications"
)

// Reasons of NotificationClosed.
const (
	ClosedExpired   uint32 = 1
	ClosedDismissed uint32 = 2
	ClosedByCall    uint32 = 3
)

// NotifyAction is one action of a notification.
type NotifyAction struct{ Key, Label string }

// Notification is one recorded Notify call.
type Notification struct {
	// Seq numbers the Notify calls from 1.
	Seq int
	// ID is the id the server answered (ReplacesID when it replaced one).
	ID         uint32
	Sender     string
	AppName    string
	ReplacesID uint32
	AppIcon    string
	Summary    string
	Body       string
	Actions    []NotifyAction
	Hints      map[string]dbus.Variant
	// ExpireTimeout is as sent: -1 server default, 0 never, else ms.
	ExpireTimeout int32
}

// Action returns the action with the given key.
func (n Notification) Action(key string) (NotifyAction, bool) {
	for _, a := range n.Actions {
		if a.Key == key {
			return a, true
		}
	}
	return NotifyAction{}, false
}

// ActionLabels lists the labels of n's actions.
func (n Notification) ActionLabels() []string {
	out := make([]string, len(n.Actions))
	for i, a := range n.Actions {
		out[i] = a.Label
	}
	return out
}

// NotificationServer is a fake org.freedesktop.Notifications: it records
// every Notify call and invokes actions on request.
type NotificationServer struct {
	conn *dbus.Conn
	caps []string

	mu      sync.Mutex
	nextID  uint32
	calls   []Notification
	open    map[uint32]Notification
	changed chan struct{}
}

// NewNotificationServer claims org.freedesktop.Notifications on conn's bus
// with the given capabilities ("body" and "actions" when none are given).
// Close releases it.
func NewNotificationServer(conn *dbus.Conn, capabilities ...string) (*NotificationServer, error) {
	if len(capabilities) == 0 {
		capabilities = []string{"body", "actions"}
	}
	s := &NotificationServer{conn: conn, caps: capabilities, open: map[uint32]Notification{}, changed: make(chan struct{})}
	if err := conn.Export(notificationMethods{s}, NotificationsPath, notificationsIface); err != nil {
		return nil, fmt.Errorf("export notification server: %w", err)
	}
	node := &introspect.Node{Name: string(NotificationsPath), Interfaces: []introspect.Interface{
		introspect.IntrospectData,
		{Name: notificationsIface, Methods: introspect.Methods(notificationMethods{s})},
	}}
	if err := conn.Export(introspect.NewIntrospectable(node), NotificationsPath, "org.freedesktop.DBus.Introspectable"); err != nil {
		return nil, fmt.Errorf("export notification server introspection: %w", err)
	}
	reply, err := conn.RequestName(NotificationsName, dbus.NameFlagDoNotQueue)
	if err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		return nil, fmt.Errorf("claim %s: reply %v: %v", NotificationsName, reply, err)
	}
	return s, nil
}

type notificationMethods struct{ s *NotificationServer }

func (m notificationMethods) GetCapabilities() ([]string, *dbus.Error) {
	return append([]string(nil), m.s.caps...), nil
}

func (m notificationMethods) GetServerInformation() (name, vendor, version, specVersion string, err *dbus.Error) {
	return "patchring-dbustest", "patchring", "1", "1.2", nil
}

func (m notificationMethods) Notify(sender dbus.Sender, appName string, replacesID uint32, appIcon, summary, body string,
	actions []string, hints map[string]dbus.Variant, expireTimeout int32) (uint32, *dbus.Error) {
	if len(actions)%2 != 0 {
		return 0, dbus.MakeFailedError(fmt.Errorf("actions must come in key, label pairs, got %d strings", len(actions)))
	}
	s := m.s
	s.mu.Lock()
	defer s.mu.Unlock()
	id := replacesID
	if _, ok := s.open[id]; !ok || id == 0 {
		s.nextID++
		id = s.nextID
	}
	n := Notification{
		Seq: len(s.calls) + 1, ID: id, Sender: string(sender), AppName: appName, ReplacesID: replacesID,
		AppIcon: appIcon, Summary: summary, Body: body, Hints: hints, ExpireTimeout: expireTimeout,
	}
	for i := 0; i+1 < len(actions); i += 2 {
		n.Actions = append(n.Actions, NotifyAction{Key: actions[i], Label: actions[i+1]})
	}
	s.calls = append(s.calls, n)
	s.open[id] = n
	close(s.changed)
	s.changed = make(chan struct{})
	return id, nil
}

func (m notificationMethods) CloseNotification(id uint32) *dbus.Error {
	if err := m.s.close(id, ClosedByCall); err != nil {
		return dbus.MakeFailedError(err)
	}
	return nil
}

func (s *NotificationServer) close(id, reason uint32) error {
	s.mu.Lock()
	_, ok := s.open[id]
	delete(s.open, id)
	s.mu.Unlock()
	if !ok {
		return nil
	}
	return s.conn.Emit(NotificationsPath, notificationsIface+".NotificationClosed", id, reason)
}

// Notifications returns every Notify call so far, in order.
func (s *NotificationServer) Notifications() []Notification {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Notification(nil), s.calls...)
}

// IsOpen says whether notification id is still shown.
func (s *NotificationServer) IsOpen(id uint32) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.open[id]
	return ok
}

// WaitNotification waits for a Notify call that match accepts and returns
// the first one, in call order.
func (s *NotificationServer) WaitNotification(ctx context.Context, match func(Notification) bool) (Notification, error) {
	for {
		s.mu.Lock()
		for _, n := range s.calls {
			if match(n) {
				s.mu.Unlock()
				return n, nil
			}
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return Notification{}, fmt.Errorf("wait for a notification: %w", ctx.Err())
		}
	}
}

// InvokeAction does what a user clicking a notification's button causes:
// ActionInvoked(id, key), then NotificationClosed(id, dismissed). The
// notification must be open and carry that action.
func (s *NotificationServer) InvokeAction(id uint32, key string) error {
	s.mu.Lock()
	n, ok := s.open[id]
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("invoke %q on notification %d: not open", key, id)
	}
	if _, ok := n.Action(key); !ok {
		return fmt.Errorf("invoke %q on notification %d: it has actions %v", key, id, n.Actions)
	}
	if err := s.conn.Emit(NotificationsPath, notificationsIface+".ActionInvoked", id, key); err != nil {
		return fmt.Errorf("invoke %q on notification %d: %w", key, id, err)
	}
	return s.close(id, ClosedDismissed)
}

// Close releases the server's name.
func (s *NotificationServer) Close() error {
	_, err := s.conn.ReleaseName(NotificationsName)
	s.conn.Export(nil, NotificationsPath, notificationsIface)
	s.conn.Export(nil, NotificationsPath, "org.freedesktop.DBus.Introspectable")
	if err != nil {
		return fmt.Errorf("release %s: %w", NotificationsName, err)
	}
	return nil
}
