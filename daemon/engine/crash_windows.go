package engine

import "os"

// killSelf ends the process at once, without running deferred code.
func killSelf() {
	p, _ := os.FindProcess(os.Getpid())
	p.Kill()
	select {}
}
