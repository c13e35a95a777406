package engine

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/patchring/patchring/internal/hookrun"
	"github.com/patchring/patchring/policy"
)

// Health check limits. The command comes from the signed policy, but it
// runs as root after every install, so what it can cost is bounded: it
// gets a deadline (the policy's timeout, else DefaultHealthTimeout), a
// clean environment (not the daemon's), no stdin, its own process group
// that is killed whole at the deadline, and only the last
// HealthOutputLimit bytes of its output are kept.
const (
	DefaultHealthTimeout = time.Minute
	HealthOutputLimit    = 64 << 10
)

// healthCheck runs the health check the policy sets for this node's ring.
// Without a usable policy the install cannot be confirmed: an install only
// starts under a usable policy, so this is a policy that expired during the
// transaction or a crashed transaction recovered without one; the caller
// rolls back.
func (e *Engine) healthCheck(ctx context.Context) error {
	p, version := e.cfg.Policy()
	if err := installRefusal(p, version, e.cfg.Now()); err != nil {
		return fmt.Errorf("cannot confirm the install: %w", err)
	}
	ring, _ := policy.RingFor(p, e.cfg.Facts())
	hc := p.HealthCheckFor(ring)
	if hc == nil || len(hc.Command) == 0 {
		return nil
	}
	timeout := time.Duration(hc.Timeout)
	if timeout <= 0 {
		timeout = DefaultHealthTimeout
	}
	res := runHealthCheck(ctx, hc.Command, e.cfg.HealthEnv, timeout)
	if res.err == nil {
		return nil
	}
	e.cfg.Log.Warn("engine: health check failed", "command", strings.Join(hc.Command, " "), "err", res.err,
		"output", res.output, "output_dropped_bytes", res.dropped)
	return fmt.Errorf("%s: %w: %s", strings.Join(hc.Command, " "), res.err, tail([]byte(res.output), 400))
}

// healthResult is what a health check run produced.
type healthResult struct {
	err     error
	output  string // the last HealthOutputLimit bytes of stdout and stderr
	dropped int64  // output bytes not kept
}

// runHealthCheck runs argv with env (plus a minimal clean environment) and
// the deadline, keeping the tail of its output. It is internal/hookrun's
// bounded runner, the one the reboot hooks use too.
func runHealthCheck(ctx context.Context, argv, env []string, timeout time.Duration) healthResult {
	res := hookrun.Run(ctx, argv, env, timeout, HealthOutputLimit)
	return healthResult{err: res.Err, output: res.Output, dropped: res.Dropped}
}

func tail(b []byte, n int) string {
	s := strings.TrimSpace(string(b))
	if len(s) > n {
		s = "..." + s[len(s)-n:]
	}
	return s
}
