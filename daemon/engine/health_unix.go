//go:build !windows

package engine

import (
	"os/exec"
	"syscall"
)

// healthDir is the health check's working directory.
const healthDir = "/"

// cleanHealthEnv is the environment a health check starts from: none of
// the daemon's own variables.
func cleanHealthEnv() []string {
	return []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8", "HOME=/"}
}

// ownProcessGroup runs cmd in a process group of its own and makes the
// deadline kill the whole group, so children it started die with it.
func ownProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		if cmd.Process == nil {
			return nil
		}
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
