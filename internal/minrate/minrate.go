// Package minrate is the minimum-rate watchdog of downloads: a transfer
// that brings fewer than rate*window bytes in a window is cut off, so a
// source that trickles bytes (or sends none) cannot hold a download until
// its overall timeout. The trust client's metadata and target fetches
// (policy/trust) and the engine's payload downloads from their origin
// (daemon/engine) use it.
package minrate

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Guard watches one transfer. Count the bytes that arrive with Add and do
// the transfer under Context: the guard cancels it, with an error wrapping
// the slow error given to Watch as the cause, when a window passes with
// too few bytes (waiting for the first byte counts too). Stop ends the
// watch. A Guard is safe for concurrent use.
type Guard struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	slow   error
	n      atomic.Int64
	fired  atomic.Pointer[error]

	stopOnce sync.Once
	stop     chan struct{}
	wg       sync.WaitGroup
}

// Watch starts a guard for a transfer made under ctx that must bring at
// least minRate bytes per second, measured over each window. A minRate
// or a window of zero or less watches nothing: the guard then only counts
// and cancels its context on Stop. The cause the guard cancels with wraps
// slow (a sentinel the caller's callers test with errors.Is) and says how
// many bytes came in the window and how many were needed.
func Watch(ctx context.Context, minRate int64, window time.Duration, slow error) *Guard {
	gctx, cancel := context.WithCancelCause(ctx)
	g := &Guard{ctx: gctx, cancel: cancel, slow: slow, stop: make(chan struct{})}
	if minRate > 0 && window > 0 {
		need := max(int64(float64(minRate)*window.Seconds()), 1)
		g.wg.Add(1)
		go g.watch(need, window)
	}
	return g
}

func (g *Guard) watch(need int64, window time.Duration) {
	defer g.wg.Done()
	t := time.NewTicker(window)
	defer t.Stop()
	var last int64
	for {
		select {
		case <-g.stop:
			return
		case <-g.ctx.Done():
			return
		case <-t.C:
			n := g.n.Load()
			if got := n - last; got < need {
				err := fmt.Errorf("%w: %d bytes in %v, need %d", g.slow, got, window, need)
				g.fired.Store(&err)
				g.cancel(err)
				return
			}
			last = n
		}
	}
}

// Context is the context to make the transfer under.
func (g *Guard) Context() context.Context { return g.ctx }

// Add counts n bytes that arrived and returns the count so far.
func (g *Guard) Add(n int) int64 { return g.n.Add(int64(n)) }

// Bytes returns the bytes counted so far.
func (g *Guard) Bytes() int64 { return g.n.Load() }

// Slow returns the guard's cause (wrapping the slow error) if it cut the
// transfer off, else nil.
func (g *Guard) Slow() error {
	if p := g.fired.Load(); p != nil {
		return *p
	}
	return nil
}

// Done ends the watch without cancelling the context: the transfer
// brought everything, and reading what is left must not be cut.
// Idempotent.
func (g *Guard) Done() {
	g.stopOnce.Do(func() { close(g.stop) })
	g.wg.Wait()
}

// Stop ends the watch, waits for the watchdog and cancels the context.
// Idempotent; call it when the transfer is over, however it ended.
func (g *Guard) Stop() {
	g.Done()
	g.cancel(nil)
}
