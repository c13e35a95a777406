package tray

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/godbus/dbus/v5"
)

var ran atomic.Bool

// ErrAlreadyRan says Run was called before in this process;
// fyne.io/systray's state is process-wide and cannot be set up twice.
var ErrAlreadyRan = errors.New("tray: Run was already called in this process")

// Run shows the tray until ctx ends or the user picks Quit, and returns nil
// then. It needs a D-Bus session bus; it returns an error when there is
// none. A daemon that cannot be reached is no error: the tray shows
// "Disconnected from patchringd" and retries with backoff.
func Run(ctx context.Context, d Daemon, opts Options) error {
	if d == nil {
		return errors.New("tray: no daemon")
	}
	if !ran.CompareAndSwap(false, true) {
		return ErrAlreadyRan
	}
	opts = opts.withDefaults()
	conn, err := connectSessionBus()
	if err != nil {
		return fmt.Errorf("tray: connect to the D-Bus session bus (the tray runs in a desktop session, with DBUS_SESSION_BUS_ADDRESS set or $XDG_RUNTIME_DIR/bus present): %w", err)
	}
	defer conn.Close()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	n := opts.Notifier
	if n == nil {
		dn := newDBusNotifier(conn, "patchring")
		sigs, err := dn.subscribe(ctx)
		if err != nil {
			return fmt.Errorf("tray: %w", err)
		}
		n = dn
		wg.Go(func() {
			if err := dn.run(ctx, sigs); err != nil {
				opts.Log.Warn("notification actions stopped", "err", err)
			}
		})
	}
	h, visible, err := startSNIHost(ctx, conn, opts.Log)
	if err != nil {
		cancel()
		wg.Wait()
		return fmt.Errorf("tray: %w", err)
	}
	err = newLoop(d, opts, h, n, visible).run(ctx)
	cancel()
	h.close()
	wg.Wait()
	return err
}

// connectSessionBus opens a private connection to the session bus without
// starting one (dbus-launch) when there is none: a bus nobody's desktop
// listens on would show nothing.
func connectSessionBus() (*dbus.Conn, error) {
	conn, err := dbus.SessionBusPrivateNoAutoStartup()
	if err != nil {
		return nil, err
	}
	if err := conn.Auth(nil); err != nil {
		conn.Close()
		return nil, err
	}
	if err := conn.Hello(); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}
