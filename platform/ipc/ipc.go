// Package ipc is the local transport of patchringd's API: a unix socket
// whose server learns each client's credentials from the kernel.
package ipc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Cred is what the kernel says about the process at the other end of a
// local connection.
type Cred struct {
	UID int
	GID int
	PID int
}

// ErrNoCred is returned where the OS cannot tell who the peer is.
var ErrNoCred = errors.New("peer credentials are not available on this OS")

// Listen creates the socket at path, replacing a stale socket file that no
// server answers on, and refusing to take over one that is live.
// The socket is world-connectable: authorization happens per request from
// the peer's credentials.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	if _, err := os.Lstat(path); err == nil {
		c, err := net.DialTimeout("unix", path, 500*time.Millisecond)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("listen %s: another patchringd is already serving this socket", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("listen %s: remove stale socket: %w", path, err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		ln.Close()
		return nil, fmt.Errorf("listen %s: chmod: %w", path, err)
	}
	return ln, nil
}

// Dial connects to the socket at path.
func Dial(ctx context.Context, path string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "unix", path)
}
