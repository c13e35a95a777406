package testutil

import (
	"bytes"
	"os/exec"
	"runtime"
	"sync"
)

// Linux delivers a child's Pdeathsig when the OS thread that forked it
// ends, not when the process does. The Go runtime ends a thread whenever
// a goroutine that locked it (to enter a network namespace, say) returns
// without unlocking, so a child started from an arbitrary thread can be
// killed at a random moment by an unrelated test. Start forks every child
// from one thread locked to a goroutine that never returns.
var (
	spawnOnce sync.Once
	spawnReq  chan spawnRequest
)

type spawnRequest struct {
	cmd  *exec.Cmd
	done chan error
}

func spawner() {
	spawnReq = make(chan spawnRequest)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread lives as long as the process
		for r := range spawnReq {
			r.done <- r.cmd.Start()
		}
	}()
}

// Start is cmd.Start from a thread that lives as long as the test process,
// so a Pdeathsig set in cmd.SysProcAttr fires only when the test process
// ends. Use it for every child that sets Pdeathsig.
func Start(cmd *exec.Cmd) error {
	spawnOnce.Do(spawner)
	done := make(chan error, 1)
	spawnReq <- spawnRequest{cmd, done}
	return <-done
}

// CombinedOutput is cmd.CombinedOutput with the child started by Start.
func CombinedOutput(cmd *exec.Cmd) ([]byte, error) {
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	if err := Start(cmd); err != nil {
		return nil, err
	}
	err := cmd.Wait()
	return b.Bytes(), err
}
