// Package testutil holds the helpers that tests across patchring share:
// polling with a deadline (WaitFor), a test logger, a buffer safe for a
// child process's output, a Go command built once per test process, and
// running a process as another user. It is imported by tests only.
package testutil

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"
)

// PollInterval is how often WaitFor checks its condition.
const PollInterval = 20 * time.Millisecond

// WaitFor polls cond until it returns nil, and fails t (naming what and
// cond's last error) if that has not happened within timeout. Use it where
// a real process or network is involved; use testing/synctest or an
// injected clock for time itself.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	if err := Poll(timeout, cond); err != nil {
		t.Fatalf("%s: not reached within %v: %v", what, timeout, err)
	}
}

// Poll is WaitFor without a test: it returns nil as soon as cond does, or
// cond's last error once timeout has passed (cond is always called at least
// once, and once more at the deadline).
func Poll(timeout time.Duration, cond func() error) error {
	return PollEvery(timeout, PollInterval, cond)
}

// PollEvery is Poll checking every interval, for a condition that costs
// something to check (many processes asked over their APIs).
func PollEvery(timeout, interval time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		<-tick.C
	}
}

// Logger returns a logger for t: debug and up to stderr, tagged with the
// test's name, when tests run with -v; discarded otherwise.
func Logger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// SyncBuffer is a bytes.Buffer that a child process (or any goroutine) may
// write while the test reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// SocketDir returns a new directory for a test's unix socket, removed when
// the test ends: short (under os.TempDir, where t.TempDir's path can be
// longer than a socket's ~100 bytes allow) and reachable by other uids
// (mode 0755; t.TempDir's parent is private to its owner), so a client
// run as another user can connect.
func SocketDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "patchring-sock-*")
	if err != nil {
		t.Fatalf("socket dir: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("socket dir: %v", err)
	}
	return dir
}
