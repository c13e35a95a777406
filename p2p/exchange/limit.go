package exchange

import (
	"context"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Limiter caps a byte rate (upload per node, WAN per node) with a token
// bucket from golang.org/x/time/rate and counts how it was used, so that
// tests and metrics can see that it was consulted and how long callers
// waited. The zero rate means unlimited. It is safe for concurrent use.
type Limiter struct {
	lim    atomic.Pointer[rate.Limiter] // nil: unlimited
	tokens atomic.Int64                 // bytes that passed through WaitN
	waited atomic.Int64                 // nanoseconds spent waiting
}

// LimiterStats counts a Limiter's use.
type LimiterStats struct {
	BytesPerSec int64
	Burst       int
	Tokens      int64         // bytes that were admitted
	Waited      time.Duration // total time callers were held back
}

// NewLimiter returns a Limiter of bytesPerSec (0: unlimited).
func NewLimiter(bytesPerSec int64) *Limiter {
	l := &Limiter{}
	l.SetRate(bytesPerSec)
	return l
}

// waitQuantum is how many bytes a transfer passes before it pays the
// limiter. Waiting per 32 KiB chunk means a sleep of a few milliseconds per
// chunk, and on coarse-timer machines (VMs) the oversleep cuts the rate by a
// third; paying per 128 KiB keeps the cap and the throughput.
const waitQuantum = 128 << 10

// meter pays a Limiter for bytes in quanta.
type meter struct {
	l    *Limiter
	owed int
}

// add records n bytes and, once a quantum is owed, waits for it.
func (m *meter) add(ctx context.Context, n int) error {
	m.owed += n
	if m.owed < waitQuantum {
		return nil
	}
	return m.flush(ctx)
}

// flush waits for whatever is owed.
func (m *meter) flush(ctx context.Context) error {
	if m.owed == 0 {
		return nil
	}
	n := m.owed
	m.owed = 0
	return m.l.WaitN(ctx, n)
}

// burstFor is the bucket size for a rate: a twentieth of a second of
// traffic, at least two wait quanta and at most 1 MiB. Small enough that
// the cap holds over a fraction of a second, large enough not to split
// quanta.
func burstFor(bytesPerSec int64) int {
	return int(min(max(bytesPerSec/20, 2*waitQuantum), 1<<20))
}

// SetRate changes the rate (0: unlimited), e.g. when policy changes.
func (l *Limiter) SetRate(bytesPerSec int64) {
	if bytesPerSec <= 0 {
		l.lim.Store(nil)
		return
	}
	l.lim.Store(rate.NewLimiter(rate.Limit(bytesPerSec), burstFor(bytesPerSec)))
}

// WaitN blocks until n bytes may pass, or ctx is done.
func (l *Limiter) WaitN(ctx context.Context, n int) error {
	lim := l.lim.Load()
	if lim == nil {
		l.tokens.Add(int64(n))
		return nil
	}
	start := time.Now()
	for n > 0 {
		c := min(n, lim.Burst())
		if err := lim.WaitN(ctx, c); err != nil {
			l.waited.Add(int64(time.Since(start)))
			return err
		}
		l.tokens.Add(int64(c))
		n -= c
	}
	l.waited.Add(int64(time.Since(start)))
	return nil
}

// Stats returns the limiter's counters.
func (l *Limiter) Stats() LimiterStats {
	st := LimiterStats{Tokens: l.tokens.Load(), Waited: time.Duration(l.waited.Load())}
	if lim := l.lim.Load(); lim != nil {
		st.BytesPerSec = int64(lim.Limit())
		st.Burst = lim.Burst()
	}
	return st
}
