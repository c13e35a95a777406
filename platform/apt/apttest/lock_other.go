//go:build !linux

package apttest

import (
	"context"
	"errors"
)

// LockHolder is a real dpkg process holding the dpkg locks; only on Linux.
type LockHolder struct{}

var errNotLinux = errors.New("apttest: dpkg sandboxes are only available on Linux")

// HoldLock is only available on Linux.
func HoldLock(ctx context.Context, s *Sandbox) (*LockHolder, error) { return nil, errNotLinux }

// PID is only available on Linux.
func (h *LockHolder) PID() int { return 0 }

// Release is only available on Linux.
func (h *LockHolder) Release() error { return errNotLinux }

// MustHoldLock is only available on Linux.
func MustHoldLock(t TB, s *Sandbox) *LockHolder {
	t.Helper()
	t.Fatalf("%v", errNotLinux)
	return nil
}
