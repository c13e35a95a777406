package dbustest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"
)

// TB is the part of testing.TB the helpers use.
type TB interface {
	Helper()
	Cleanup(func())
	Fatalf(format string, args ...any)
}

// Bus is a private dbus-daemon. Its configuration allows everything and has
// no service directories, so no real desktop service is ever activated on
// it.
type Bus struct {
	// Address is the bus address for DBUS_SESSION_BUS_ADDRESS.
	Address string

	dir       string
	cmd       *exec.Cmd
	waitErr   chan error
	closeOnce sync.Once
}

const busConfig = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir=%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
`

// StartBus starts a private bus: dbus-daemon --config-file=... --nofork
// --print-address. Close stops it.
func StartBus(ctx context.Context) (*Bus, error) {
	bin, err := exec.LookPath("dbus-daemon")
	if err != nil {
		return nil, fmt.Errorf("start private D-Bus: %w (install the Debian package dbus-daemon)", err)
	}
	dir, err := os.MkdirTemp("", "patchring-dbus-")
	if err != nil {
		return nil, fmt.Errorf("start private D-Bus: %w", err)
	}
	conf := filepath.Join(dir, "bus.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, busConfig, dir), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start private D-Bus: %w", err)
	}
	cmd := exec.Command(bin, "--config-file="+conf, "--nofork", "--print-address=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start private D-Bus: %w", err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start private D-Bus: %w", err)
	}
	b := &Bus{dir: dir, cmd: cmd, waitErr: make(chan error, 1)}
	addr := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		addr <- strings.TrimSpace(line)
	}()
	go func() { b.waitErr <- cmd.Wait() }()
	select {
	case a := <-addr:
		if a == "" {
			b.Close()
			return nil, fmt.Errorf("start private D-Bus: dbus-daemon printed no address: %s", stderr.String())
		}
		b.Address = a
		return b, nil
	case <-ctx.Done():
		b.Close()
		return nil, fmt.Errorf("start private D-Bus: %w", ctx.Err())
	}
}

// NewBus starts a private bus that t's cleanup stops.
func NewBus(t TB) *Bus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := StartBus(ctx)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// Env is the environment entry that points a process at the bus.
func (b *Bus) Env() string { return "DBUS_SESSION_BUS_ADDRESS=" + b.Address }

// Connect opens a new connection to the bus.
func (b *Bus) Connect() (*dbus.Conn, error) {
	conn, err := dbus.Connect(b.Address)
	if err != nil {
		return nil, fmt.Errorf("connect to private D-Bus %s: %w", b.Address, err)
	}
	return conn, nil
}

// Conn opens a connection that t's cleanup closes.
func (b *Bus) Conn(t TB) *dbus.Conn {
	t.Helper()
	conn, err := b.Connect()
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// Close stops the dbus-daemon and removes its directory.
func (b *Bus) Close() error {
	var err error
	b.closeOnce.Do(func() {
		if b.cmd.Process != nil {
			if kerr := b.cmd.Process.Kill(); kerr != nil && !errors.Is(kerr, os.ErrProcessDone) {
				err = fmt.Errorf("stop private D-Bus: %w", kerr)
			}
			<-b.waitErr
		}
		if rerr := os.RemoveAll(b.dir); rerr != nil && err == nil {
			err = fmt.Errorf("stop private D-Bus: %w", rerr)
		}
	})
	return err
}
