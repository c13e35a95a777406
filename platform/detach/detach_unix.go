//go:build !windows

package detach

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
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
	// The PID is the job's session (and process group) ID: Stop ends the
	// whole job by it.
	pid := filepath.Join(r.Dir, name+".pid")
	if err := os.WriteFile(pid, []byte(strconv.Itoa(c.Process.Pid)+"\n"), 0o600); err != nil {
		return fmt.Errorf("detach: start %s: %w", name, err)
	}
	return nil
}

// Stop ends job name if it still runs: the transient unit, or every
// process of the session the job was started in. A job that ended, or
// was never started, is left alone.
func (r *Runner) Stop(ctx context.Context, name string) error {
	if _, _, err := r.paths(name); err != nil {
		return err
	}
	if r.Systemd {
		out, err := exec.CommandContext(ctx, "systemctl", "stop", name).CombinedOutput()
		if err != nil && !strings.Contains(string(out), "not loaded") {
			return fmt.Errorf("detach: stop %s: %w: %s", name, err, out)
		}
		return nil
	}
	pidPath := filepath.Join(r.Dir, name+".pid")
	b, err := os.ReadFile(pidPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("detach: stop %s: %w", name, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return fmt.Errorf("detach: stop %s: %s holds %q, not a PID", name, pidPath, strings.TrimSpace(string(b)))
	}
	if sessionLeader(pid) {
		// Its session may hold children (the install, sleep): all go.
		if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("detach: stop %s (session %d): %w", name, pid, err)
		}
	}
	return os.Remove(pidPath)
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
