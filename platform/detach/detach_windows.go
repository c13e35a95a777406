package detach

import (
	"context"
	"errors"
)

// Start is not supported on Windows yet.
func (r *Runner) Start(ctx context.Context, name string, cmd Command) error {
	return errors.New("detach: not supported on Windows")
}

// SystemdAvailable is false on Windows.
func SystemdAvailable() bool { return false }

func (r *Runner) start(ctx context.Context, name, logPath, statusPath string, args, env []string) error {
	return errors.New("detach: not supported on Windows")
}

// Stop is not supported on Windows yet.
func (r *Runner) Stop(ctx context.Context, name string) error {
	return errors.New("detach: not supported on Windows")
}
