// Package hookrun runs a command the signed policy names (a reboot hook,
// the engine's health check):
// argv without a shell, a deadline after which its whole process group is
// killed, a clean environment, no stdin, and only the tail of its output
// kept.
package hookrun

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"sync"
	"time"
)

// ErrTimeout marks a command killed at its deadline.
var ErrTimeout = errors.New("timed out")

// waitDelay is how long the output pipes may stay open after the command
// exited or was killed (a daemonized child holding them).
const waitDelay = 5 * time.Second

// Result is what a run produced.
type Result struct {
	Err     error  // nil: exit status 0
	Output  string // the last limit bytes of stdout and stderr
	Dropped int64  // output bytes not kept
	Took    time.Duration
}

// Run runs argv with env added to a minimal clean environment, killing it
// (and everything in its process group) after timeout, and keeps the last
// limit bytes of its output.
func Run(ctx context.Context, argv, env []string, timeout time.Duration, limit int) Result {
	if len(argv) == 0 || argv[0] == "" {
		return Result{Err: errors.New("run hook: no command")}
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(cctx, argv[0], argv[1:]...)
	cmd.Env = append(cleanEnv(), env...)
	cmd.Dir = workDir
	out := &tailBuffer{limit: max(limit, 1)}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = waitDelay
	ownProcessGroup(cmd)
	start := time.Now()
	err := cmd.Run()
	if err != nil && errors.Is(cctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("%w after %s (killed): %w", ErrTimeout, timeout, err)
	}
	return Result{Err: err, Output: out.String(), Dropped: out.dropped(), Took: time.Since(start)}
}

// tailBuffer keeps the last limit bytes written to it.
type tailBuffer struct {
	mu    sync.Mutex
	limit int
	buf   []byte
	total int64
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.total += int64(len(p))
	if len(p) >= b.limit {
		b.buf = append(b.buf[:0], p[len(p)-b.limit:]...)
		return len(p), nil
	}
	if over := len(b.buf) + len(p) - b.limit; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

func (b *tailBuffer) dropped() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.total - int64(len(b.buf))
}
