package apttest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// LockHolder is a real dpkg process that holds the sandbox's dpkg locks
// (lock-frontend and lock, fcntl record locks) while its package's preinst
// waits to be released. It is what another package manager running on the
// machine looks like.
type LockHolder struct {
	cmd     *exec.Cmd
	dir     string
	ready   *os.File
	release *os.File
	out     *bytes.Buffer
	waited  chan struct{}
	waitErr error

	once sync.Once
	err  error
}

// HoldLock starts `dpkg -i` of a small package whose preinst blocks, and
// returns once dpkg holds the sandbox's locks. Release lets it finish: the
// preinst then fails on purpose, so dpkg leaves no trace of the package.
func HoldLock(ctx context.Context, s *Sandbox) (*LockHolder, error) {
	dir, err := os.MkdirTemp(s.Path("tmp"), "lock-holder-")
	if err != nil {
		return nil, fmt.Errorf("hold dpkg lock: %w", err)
	}
	h := &LockHolder{dir: dir, out: &bytes.Buffer{}, waited: make(chan struct{})}
	if err := h.start(ctx, s); err != nil {
		h.closeFiles()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("hold dpkg lock: %w", err)
	}
	return h, nil
}

func (h *LockHolder) start(ctx context.Context, s *Sandbox) error {
	rel, err := filepath.Rel(s.Root, h.dir)
	if err != nil {
		return err
	}
	readyPath, releasePath := filepath.Join(h.dir, "ready"), filepath.Join(h.dir, "release")
	for _, p := range []string{readyPath, releasePath} {
		if err := syscall.Mkfifo(p, 0o600); err != nil {
			return fmt.Errorf("mkfifo %s: %w", p, err)
		}
	}
	// Both FIFOs are opened read-write here, so the script's opens never
	// block and a line written before the script reads is not lost.
	if h.ready, err = os.OpenFile(readyPath, os.O_RDWR, 0); err != nil {
		return err
	}
	if h.release, err = os.OpenFile(releasePath, os.O_RDWR, 0); err != nil {
		return err
	}
	deb, err := BuildDeb(h.dir, Package{
		Name:    "apttest-lock-holder",
		Version: "0",
		Preinst: `#!/bin/sh
echo ready > "$DPKG_ROOT/` + rel + `/ready"
read _ < "$DPKG_ROOT/` + rel + `/release" || true
echo "apttest-lock-holder: released, aborting this install on purpose" >&2
exit 1
`,
	})
	if err != nil {
		return err
	}
	h.cmd = exec.Command("dpkg", append(s.DpkgArgs(), "-i", deb)...)
	h.cmd.Env = s.Env()
	h.cmd.Stdout, h.cmd.Stderr = h.out, h.out
	h.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := h.cmd.Start(); err != nil {
		return fmt.Errorf("start dpkg: %w", err)
	}
	go func() {
		h.waitErr = h.cmd.Wait()
		close(h.waited)
	}()

	line := make(chan error, 1)
	go func() {
		_, err := bufio.NewReader(h.ready).ReadString('\n')
		line <- err
	}()
	select {
	case err := <-line:
		if err != nil {
			h.kill()
			return fmt.Errorf("read ready fifo: %w", err)
		}
		return nil
	case <-h.waited:
		h.ready.Close() // unblocks the reader goroutine
		<-line
		return fmt.Errorf("dpkg exited before taking the lock: %v\n%s", h.waitErr, h.out.String())
	case <-ctx.Done():
		h.kill()
		h.ready.Close()
		<-line
		return ctx.Err()
	}
}

// PID is the process ID of the dpkg process holding the locks.
func (h *LockHolder) PID() int { return h.cmd.Process.Pid }

// Release lets dpkg finish and waits for it to exit (killing its process
// group if it has not exited within 30 seconds), then removes the holder's
// files. It is idempotent.
func (h *LockHolder) Release() error {
	h.once.Do(func() {
		if _, err := h.release.Write([]byte("go\n")); err != nil {
			h.err = fmt.Errorf("release dpkg lock: %w", err)
		}
		select {
		case <-h.waited:
		case <-time.After(30 * time.Second):
			h.kill()
			h.err = fmt.Errorf("release dpkg lock: dpkg %d did not exit; killed\n%s", h.PID(), h.out.String())
		}
		h.closeFiles()
		if err := os.RemoveAll(h.dir); err != nil && h.err == nil {
			h.err = fmt.Errorf("release dpkg lock: %w", err)
		}
	})
	return h.err
}

// kill kills the dpkg process group (dpkg and its maintainer script) and
// waits for dpkg.
func (h *LockHolder) kill() {
	_ = syscall.Kill(-h.cmd.Process.Pid, syscall.SIGKILL)
	<-h.waited
}

func (h *LockHolder) closeFiles() {
	for _, f := range []*os.File{h.ready, h.release} {
		if f != nil {
			_ = f.Close()
		}
	}
}

// MustHoldLock is HoldLock for tests; the lock is released when the test
// ends if the test has not released it.
func MustHoldLock(t TB, s *Sandbox) *LockHolder {
	t.Helper()
	h, err := HoldLock(context.Background(), s)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() {
		if err := h.Release(); err != nil && !errors.Is(err, os.ErrClosed) {
			t.Fatalf("%v", err)
		}
	})
	return h
}
