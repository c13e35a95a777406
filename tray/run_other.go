//go:build !linux

package tray

import (
	"context"
	"errors"
	"fmt"
	"runtime"
)

// ErrAlreadyRan says Run was called before in this process.
var ErrAlreadyRan = errors.New("tray: Run was already called in this process")

// Run is not implemented on this system yet: the tray is Linux-only for now
// (StatusNotifierItem and org.freedesktop.Notifications over D-Bus).
func Run(ctx context.Context, d Daemon, opts Options) error {
	return fmt.Errorf("tray on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}
