package testutil

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// startFromEndingThread starts cmd (with Pdeathsig) by start from a
// goroutine that locks its thread and returns, so the Go runtime ends that
// thread; it waits until the thread is gone and returns a channel that
// receives cmd's end.
func startFromEndingThread(t *testing.T, cmd *exec.Cmd, start func(*exec.Cmd) error) <-chan error {
	t.Helper()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	type res struct {
		tid int
		err error
	}
	var r res
	for range 8 {
		ch := make(chan res, 1)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
			if tid := syscall.Gettid(); tid == os.Getpid() {
				// The main thread is kept (wedged), not ended: try another.
				ch <- res{tid: tid}
				return
			}
			ch <- res{syscall.Gettid(), start(cmd)}
		}()
		if r = <-ch; r.tid != os.Getpid() {
			break
		}
	}
	if r.tid == os.Getpid() {
		t.Fatal("no thread but the main one to start from")
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	done := make(chan error, 1)
	ended := make(chan struct{})
	go func() {
		done <- cmd.Wait()
		close(ended)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-ended
	})
	WaitFor(t, 10*time.Second, "the starting thread ends", func() error {
		if _, err := os.Stat(fmt.Sprintf("/proc/self/task/%d", r.tid)); err == nil {
			return errors.New("still there")
		}
		return nil
	})
	return done
}

// TestStartOutlivesTheCallersThread: a child with Pdeathsig that
// cmd.Start forked from a thread that then ends is killed; one started by
// Start from such a thread keeps running.
func TestStartOutlivesTheCallersThread(t *testing.T) {
	kept := startFromEndingThread(t, exec.Command("sleep", "60"), Start)
	killed := startFromEndingThread(t, exec.Command("sleep", "60"), (*exec.Cmd).Start)
	select {
	case <-killed:
	case <-time.After(10 * time.Second):
		t.Fatal("a child forked from an ended thread kept running: the kernel did not deliver its Pdeathsig")
	}
	select {
	case err := <-kept:
		t.Fatalf("the child started by Start ended with its caller's thread: %v", err)
	default:
	}
	if out, err := CombinedOutput(exec.Command("echo", "ok")); err != nil || string(out) != "ok\n" {
		t.Fatalf("CombinedOutput = %q, %v", out, err)
	}
}
