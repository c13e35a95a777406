//go:build !linux

package apttest

import (
	"context"
	"errors"
	"os/exec"
)

var errChrootNotLinux = errors.New("apttest: Debian test roots are only available on Linux")

// RootImage is only available on Linux.
func RootImage(ctx context.Context, opts ChrootOptions) (string, error) {
	return "", errChrootNotLinux
}

// NewChroot is only available on Linux.
func NewChroot(ctx context.Context, opts ChrootOptions) (*Chroot, error) {
	return nil, errChrootNotLinux
}

// MustChroot is only available on Linux.
func MustChroot(t TB, opts ChrootOptions) *Chroot {
	t.Helper()
	t.Fatalf("%v", errChrootNotLinux)
	return nil
}

// Env is only available on Linux.
func (c *Chroot) Env() []string { return nil }

// Command is only available on Linux: the command it returns fails.
func (c *Chroot) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Err = errChrootNotLinux
	return cmd
}

// Run is only available on Linux.
func (c *Chroot) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	return nil, errChrootNotLinux
}

// DpkgInstall is only available on Linux.
func (c *Chroot) DpkgInstall(ctx context.Context, debs ...string) error { return errChrootNotLinux }

// InstalledVersion is only available on Linux.
func (c *Chroot) InstalledVersion(ctx context.Context, pkg string) (version, status string, err error) {
	return "", "", errChrootNotLinux
}

// Audit is only available on Linux.
func (c *Chroot) Audit(ctx context.Context) (string, error) { return "", errChrootNotLinux }

// RouteTools is only available on Linux.
func (c *Chroot) RouteTools(t EnvTB) {
	t.Helper()
	t.Fatalf("%v", errChrootNotLinux)
}

// Close is only available on Linux.
func (c *Chroot) Close() error { return nil }
