//go:build windows

package hookrun

import (
	"os"
	"os/exec"
)

var workDir = os.Getenv("SystemRoot")

// cleanEnv is only what Windows programs need to start, none of the
// daemon's own variables.
func cleanEnv() []string {
	root := os.Getenv("SystemRoot")
	return []string{"SystemRoot=" + root, "PATH=" + root + `\System32;` + root}
}

// ownProcessGroup: the deadline kills the process itself (its children
// are not tracked on Windows yet).
func ownProcessGroup(cmd *exec.Cmd) {}
