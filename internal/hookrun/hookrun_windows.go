//go:build windows

package hookrun

import (
	"os"
	"os/exec"
)

var workDir = os.Getenv("SystemRoot")

func cleanEnv() []string {
	return []string{"SystemRoot=" + os.Getenv("SystemRoot"), "PATH=" + os.Getenv("SystemRoot") + `\System32`}
}

// ownProcessGroup: the deadline kills the process itself (its children
// are not tracked on Windows yet).
func ownProcessGroup(cmd *exec.Cmd) {}
