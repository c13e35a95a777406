package dbustest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/patchring/patchring/internal/testutil"
)

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestWatcherRecordsItems(t *testing.T) {
	t.Parallel()
	bus := NewBus(t)
	ctx := testContext(t)
	w, err := NewWatcher(bus.Conn(t), false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })

	app, err := bus.Connect()
	if err != nil {
		t.Fatal(err)
	}
	watcher := app.Object(WatcherName, WatcherPath)
	var host bool
	if v, err := watcher.GetProperty(watcherIface + ".IsStatusNotifierHostRegistered"); err != nil || v.Value() != false {
		t.Fatalf("IsStatusNotifierHostRegistered = %v, %v; want false", v, err)
	}
	// By path (KDE, fyne.io/systray) and by bus name (libappindicator).
	if err := watcher.CallWithContext(ctx, watcherIface+".RegisterStatusNotifierItem", 0, "/StatusNotifierItem").Err; err != nil {
		t.Fatal(err)
	}
	if err := watcher.CallWithContext(ctx, watcherIface+".RegisterStatusNotifierItem", 0, "org.example.App").Err; err != nil {
		t.Fatal(err)
	}
	want := []Item{{Service: app.Names()[0], Path: "/StatusNotifierItem"}, {Service: "org.example.App", Path: "/StatusNotifierItem"}}
	if got := w.Items(); !slices.Equal(got, want) {
		t.Fatalf("items %v, want %v", got, want)
	}
	if err := w.SetHostRegistered(true); err != nil {
		t.Fatal(err)
	}
	v, err := watcher.GetProperty(watcherIface + ".IsStatusNotifierHostRegistered")
	if err == nil {
		host, _ = v.Value().(bool)
	}
	if !host {
		t.Errorf("IsStatusNotifierHostRegistered after SetHostRegistered(true): %v, %v", v, err)
	}
	// The application leaves the bus: its items go.
	app.Close()
	testutil.WaitFor(t, 20*time.Second, "the application's items go when it leaves the bus", func() error {
		if items := w.Items(); len(items) != 1 || items[0].Service != "org.example.App" {
			return fmt.Errorf("items %v", items)
		}
		return nil
	})
}

func TestNotificationServer(t *testing.T) {
	t.Parallel()
	bus := NewBus(t)
	ctx := testContext(t)
	s, err := NewNotificationServer(bus.Conn(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	app := bus.Conn(t)
	if err := app.AddMatchSignal(dbus.WithMatchInterface(notificationsIface)); err != nil {
		t.Fatal(err)
	}
	sigs := make(chan *dbus.Signal, 8)
	app.Signal(sigs)
	obj := app.Object(NotificationsName, NotificationsPath)
	var id uint32
	err = obj.CallWithContext(ctx, notificationsIface+".Notify", 0, "app", uint32(0), "", "Hello", "Body",
		[]string{"ok", "OK", "later", "Later"}, map[string]dbus.Variant{}, int32(-1)).Store(&id)
	if err != nil {
		t.Fatal(err)
	}
	n, err := s.WaitNotification(ctx, func(n Notification) bool { return n.Summary == "Hello" })
	if err != nil {
		t.Fatal(err)
	}
	if n.ID != id || n.Sender != app.Names()[0] || !slices.Equal(n.ActionLabels(), []string{"OK", "Later"}) {
		t.Errorf("recorded %+v", n)
	}
	if err := s.InvokeAction(id, "nope"); err == nil {
		t.Errorf("invoking an action the notification lacks succeeded")
	}
	if err := s.InvokeAction(id, "later"); err != nil {
		t.Fatal(err)
	}
	var got []string
	for len(got) < 2 {
		select {
		case sig := <-sigs:
			got = append(got, sig.Name)
		case <-ctx.Done():
			t.Fatalf("signals %q", got)
		}
	}
	if want := []string{notificationsIface + ".ActionInvoked", notificationsIface + ".NotificationClosed"}; !slices.Equal(got, want) {
		t.Errorf("signals %q, want %q", got, want)
	}
	if s.IsOpen(id) {
		t.Errorf("notification still open after its action")
	}
	// A bad actions list is refused.
	if err := obj.CallWithContext(ctx, notificationsIface+".Notify", 0, "app", uint32(0), "", "Odd", "",
		[]string{"ok"}, map[string]dbus.Variant{}, int32(-1)).Err; err == nil {
		t.Errorf("Notify with an odd actions list succeeded")
	}
}

func TestBusClose(t *testing.T) {
	t.Parallel()
	b, err := StartBus(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := b.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := conn.BusObject().Call("org.freedesktop.DBus.GetId", 0).Err; err == nil {
		t.Errorf("bus still answers after Close")
	}
	if _, err := b.Connect(); err == nil {
		t.Errorf("connected to a closed bus")
	}
}
