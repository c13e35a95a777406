package apt

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// lockFiles are dpkg's locks in the order frontends take them.
var lockFiles = []string{"lock-frontend", "lock"}

// LockHolder returns who holds the dpkg frontend lock or the dpkg database
// lock, or nil when both are free. dpkg and apt hold them as fcntl record
// locks; the holder is found with F_OFD_GETLK, which also sees the locks of
// this process and never takes a lock itself. PID is 0 when the holder is
// not visible from this PID namespace or holds an open file description
// lock.
//
// Closing a file releases the calling process's POSIX locks on it, so a
// process that itself holds dpkg's locks with F_SETLK must not call this.
func (b *Backend) LockHolder() (*LockedError, error) {
	for _, name := range lockFiles {
		p := filepath.Join(b.paths.AdminDir, name)
		pid, held, err := lockOwner(p)
		if err != nil {
			return nil, fmt.Errorf("check dpkg lock: %w", err)
		}
		if held {
			return &LockedError{Path: p, PID: pid, Command: processCommand(pid)}, nil
		}
	}
	return nil, nil
}

// lockOwner tests for a write lock on the whole file at p.
func lockOwner(p string) (pid int, held bool, err error) {
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	defer f.Close()
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 0, Len: 0}
	err = unix.FcntlFlock(f.Fd(), unix.F_OFD_GETLK, &lk)
	if errors.Is(err, unix.EINVAL) { // kernels before 3.15
		lk = unix.Flock_t{Type: unix.F_WRLCK}
		err = unix.FcntlFlock(f.Fd(), unix.F_GETLK, &lk)
	}
	if err != nil {
		return 0, false, fmt.Errorf("fcntl %s: %w", p, err)
	}
	if lk.Type == unix.F_UNLCK {
		return 0, false, nil
	}
	if lk.Pid > 0 {
		pid = int(lk.Pid)
	}
	return pid, true, nil
}

// processCommand is the command line of pid from /proc, or "" if unknown.
func processCommand(pid int) string {
	if pid <= 0 {
		return ""
	}
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err == nil && len(data) > 0 {
		return strings.TrimSpace(strings.ReplaceAll(string(data), "\x00", " "))
	}
	data, err = os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err == nil {
		return strings.TrimSpace(string(data))
	}
	return ""
}

// WaitLock waits until neither dpkg lock is held, polling, for at most
// timeout (zero: check once). When the time is up it returns a
// *LockedError naming the holder's PID and command. It does not take the
// lock: apt-get and dpkg take it themselves, and Install's apt-get also
// waits Options.LockTimeout for it.
func (b *Backend) WaitLock(ctx context.Context, timeout time.Duration) error {
	start := time.Now()
	interval := 50 * time.Millisecond
	logged := false
	for {
		h, err := b.LockHolder()
		if err != nil {
			return err
		}
		if h == nil {
			return nil
		}
		waited := time.Since(start)
		if waited >= timeout {
			h.Waited = waited
			return h
		}
		if !logged {
			b.log.InfoContext(ctx, "waiting for dpkg lock", "path", h.Path, "pid", h.PID, "command", h.Command, "timeout", timeout)
			logged = true
		}
		t := time.NewTimer(min(interval, timeout-waited))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("wait for dpkg lock held by %d: %w", h.PID, ctx.Err())
		case <-t.C:
		}
		interval = min(interval*2, 500*time.Millisecond)
	}
}

// FreeSpace returns the bytes available to unprivileged users on the file
// system holding path.
func FreeSpace(path string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, fmt.Errorf("free space of %s: %w", path, err)
	}
	return st.Bavail * uint64(st.Bsize), nil
}
