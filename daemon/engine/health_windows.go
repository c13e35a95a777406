package engine

import (
	"os"
	"os/exec"
)

// healthDir is the health check's working directory.
var healthDir = os.Getenv("SystemRoot")

// cleanHealthEnv is the environment a health check starts from: only what
// Windows programs need to start, none of the daemon's own variables.
func cleanHealthEnv() []string {
	root := os.Getenv("SystemRoot")
	return []string{"SystemRoot=" + root, "PATH=" + root + `\system32;` + root}
}

// ownProcessGroup is a no-op on Windows: the deadline kills the process
// (exec's default) and WaitDelay bounds the wait for its output pipes.
func ownProcessGroup(*exec.Cmd) {}
