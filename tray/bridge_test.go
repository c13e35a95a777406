package tray_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/godbus/dbus/v5"

	"github.com/patchring/patchring/daemon/apitypes"
	"github.com/patchring/patchring/tray"
	"github.com/patchring/patchring/tray/dbustest"
)

// The tray runs in a child process (fyne.io/systray works once per
// process); its daemon is a tray.FakeDaemon in the test process, reached
// over the private bus through this bridge. Stopping the bridge makes the
// daemon vanish from the bus as a stopped patchringd vanishes from its
// socket.
const (
	bridgeName  = "org.patchring.TestDaemon"
	bridgePath  = dbus.ObjectPath("/org/patchring/TestDaemon")
	bridgeIface = "org.patchring.TestDaemon"
	bridgeError = "org.patchring.TestDaemon.Error"
)

// bridge serves a FakeDaemon on the bus.
type bridge struct {
	bus *dbustest.Bus
	d   *tray.FakeDaemon

	mu     sync.Mutex
	conn   *dbus.Conn
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type bridgeMethods struct{ d *tray.FakeDaemon }

func statusReply(st apitypes.RebootStatus, err error) (string, *dbus.Error) {
	if err != nil {
		return "", dbus.NewError(bridgeError, []any{err.Error()})
	}
	b, _ := json.Marshal(st)
	return string(b), nil
}

func (m bridgeMethods) RebootStatus() (string, *dbus.Error) {
	return statusReply(m.d.RebootStatus(context.Background()))
}

func (m bridgeMethods) Defer(choice string) (string, *dbus.Error) {
	return statusReply(m.d.Defer(context.Background(), choice))
}

func (m bridgeMethods) Refuse() (string, *dbus.Error) {
	return statusReply(m.d.Refuse(context.Background()))
}

func (m bridgeMethods) RestartNow() *dbus.Error {
	if err := m.d.RestartNow(context.Background()); err != nil {
		return dbus.NewError(bridgeError, []any{err.Error()})
	}
	return nil
}

// up puts the daemon on the bus.
func (b *bridge) up() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	conn, err := b.bus.Connect()
	if err != nil {
		return err
	}
	if err := conn.Export(bridgeMethods{b.d}, bridgePath, bridgeIface); err != nil {
		conn.Close()
		return fmt.Errorf("export test daemon: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	events, err := b.d.Events(ctx)
	if err != nil {
		cancel()
		conn.Close()
		return err
	}
	if reply, err := conn.RequestName(bridgeName, dbus.NameFlagDoNotQueue); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		cancel()
		conn.Close()
		return fmt.Errorf("claim %s: %v %v", bridgeName, reply, err)
	}
	b.wg.Go(func() {
		for ev := range events {
			raw, _ := json.Marshal(ev)
			conn.Emit(bridgePath, bridgeIface+".Event", string(raw))
		}
	})
	b.conn, b.cancel = conn, cancel
	return nil
}

// down takes the daemon off the bus.
func (b *bridge) down() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conn == nil {
		return
	}
	b.cancel()
	b.wg.Wait()
	b.conn.Close()
	b.conn = nil
}

// bridgeClient is the tray.Daemon the child process uses.
type bridgeClient struct{ conn *dbus.Conn }

var _ tray.Daemon = (*bridgeClient)(nil)

func (c *bridgeClient) call(ctx context.Context, method string, args ...any) (apitypes.RebootStatus, error) {
	var raw string
	if err := c.conn.Object(bridgeName, bridgePath).CallWithContext(ctx, bridgeIface+"."+method, 0, args...).Store(&raw); err != nil {
		return apitypes.RebootStatus{}, bridgeErr(method, err)
	}
	var st apitypes.RebootStatus
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		return apitypes.RebootStatus{}, fmt.Errorf("%s: decode: %w", method, err)
	}
	return st, nil
}

func bridgeErr(method string, err error) error {
	var derr dbus.Error
	if errors.As(err, &derr) && derr.Name == bridgeError && len(derr.Body) == 1 {
		return fmt.Errorf("%s", derr.Body[0])
	}
	return fmt.Errorf("%s: %w", method, err)
}

func (c *bridgeClient) RebootStatus(ctx context.Context) (apitypes.RebootStatus, error) {
	return c.call(ctx, "RebootStatus")
}

func (c *bridgeClient) Defer(ctx context.Context, choice string) (apitypes.RebootStatus, error) {
	return c.call(ctx, "Defer", choice)
}

func (c *bridgeClient) Refuse(ctx context.Context) (apitypes.RebootStatus, error) {
	return c.call(ctx, "Refuse")
}

func (c *bridgeClient) RestartNow(ctx context.Context) error {
	if err := c.conn.Object(bridgeName, bridgePath).CallWithContext(ctx, bridgeIface+".RestartNow", 0).Err; err != nil {
		return bridgeErr("RestartNow", err)
	}
	return nil
}

// Events follows the daemon's Event signals until its connection leaves
// the bus or ctx ends.
func (c *bridgeClient) Events(ctx context.Context) (<-chan apitypes.Event, error) {
	matches := [][]dbus.MatchOption{
		{dbus.WithMatchSender(bridgeName), dbus.WithMatchInterface(bridgeIface), dbus.WithMatchMember("Event")},
		{dbus.WithMatchSender("org.freedesktop.DBus"), dbus.WithMatchMember("NameOwnerChanged"), dbus.WithMatchArg(0, bridgeName)},
	}
	for _, m := range matches {
		if err := c.conn.AddMatchSignalContext(ctx, m...); err != nil {
			return nil, err
		}
	}
	sigs := make(chan *dbus.Signal, 64)
	c.conn.Signal(sigs)
	var owner string
	if err := c.conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.GetNameOwner", 0, bridgeName).Store(&owner); err != nil {
		c.conn.RemoveSignal(sigs)
		return nil, fmt.Errorf("patchringd is not running: %w", err)
	}
	out := make(chan apitypes.Event, 16)
	go func() {
		defer close(out)
		defer c.conn.RemoveSignal(sigs)
		for {
			select {
			case <-ctx.Done():
				return
			case sig, ok := <-sigs:
				if !ok {
					return
				}
				switch {
				case sig.Name == "org.freedesktop.DBus.NameOwnerChanged" && len(sig.Body) == 3 && sig.Body[0] == bridgeName && sig.Body[2] != owner:
					return
				case sig.Name == bridgeIface+".Event" && sig.Sender == owner && len(sig.Body) == 1:
					raw, _ := sig.Body[0].(string)
					var ev apitypes.Event
					if json.Unmarshal([]byte(raw), &ev) != nil {
						continue
					}
					select {
					case out <- ev:
					case <-ctx.Done():
						return
					}
				}
			}
		}
	}()
	return out, nil
}
