//go:build !windows

package detach

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"syscall"
)

// Start starts cmd as job name, detached, and returns once it started.
// It replaces what an earlier job of the same name left.
func (r *Runner) Start(ctx context.Context, name string, cmd Command) error {
	logPath, statusPath, err := r.paths(name)
	if err != nil {
		return err
	}
	return r.start(ctx, name, logPath, statusPath, argv(logPath, statusPath, cmd), cmd.Env)
}

// start runs args as job name, detached, with env.
func (r *Runner) start(ctx context.Context, name, logPath, statusPath string, args, env []string) error {
	if err := os.MkdirAll(r.Dir, 0o700); err != nil {
		return fmt.Errorf("detach: %w", err)
	}
	if err := clear(logPath, statusPath); err != nil {
		return err
	}
	if r.Systemd {
		// A transient unit of its own: stopping the agent's service
		// (its cgroup) does not stop it.
		sr := []string{"--unit=" + name, "--collect", "--quiet", "--no-block", "--service-type=exec"}
		for _, kv := range env {
			sr = append(sr, "--setenv="+kv)
		}
		sr = append(append(sr, "--"), args...)
		out, err := exec.CommandContext(ctx, "systemd-run", sr...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("detach: systemd-run %s: %w: %s", name, err, out)
		}
		return nil
	}
	c := exec.Command(args[0], args[1:]...) // not tied to ctx: it must outlive the caller
	c.Env = env
	c.Dir = "/"
	// A session of its own: no signal to the agent's process group or
	// terminal reaches it.
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := c.Start(); err != nil {
		return fmt.Errorf("detach: start %s: %w", name, err)
	}
	go c.Wait() // reap it while this process lives; init does after
	return nil
}

// SystemdAvailable reports whether systemd runs this machine and
// systemd-run is there to start transient units.
func SystemdAvailable() bool {
	if _, err := os.Stat("/run/systemd/system"); err != nil {
		return false
	}
	_, err := exec.LookPath("systemd-run")
	return err == nil
}
