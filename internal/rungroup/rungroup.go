// Package rungroup runs a group of goroutines that live and die together:
// the agent's subsystems under daemon.Run, the parts of the site membership.
// The first member to fail ends the group: its context is cancelled, the
// others stop, and Stop reports that first failure. A member that returns
// nil is simply done; errors returned after the group was cancelled are the
// noise of stopping and are dropped.
package rungroup

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Group is a set of goroutines started with Go. Create it with New.
type Group struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu  sync.Mutex
	err error
}

// New returns a group whose members run under a context derived from ctx,
// and that context. It is cancelled when ctx is done, when a member fails,
// or by Stop.
func New(ctx context.Context) (*Group, context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	return &Group{ctx: ctx, cancel: cancel}, ctx
}

// Go runs f in a new goroutine with the group's context. If f returns an
// error while the group is still running, that error (prefixed with name)
// becomes the group's failure and the group is cancelled.
func (g *Group) Go(name string, f func(ctx context.Context) error) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		err := f(g.ctx)
		if err == nil {
			return
		}
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.err == nil && g.ctx.Err() == nil {
			g.err = fmt.Errorf("%s: %w", name, err)
			g.cancel()
		}
	}()
}

// Done is closed when the group ends: its parent context is done, a member
// failed, or Stop was called.
func (g *Group) Done() <-chan struct{} { return g.ctx.Done() }

// Err returns the first member's failure, or nil.
func (g *Group) Err() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}

// Stop cancels the group, waits for every member to return, and returns
// the first failure (nil when the group was only cancelled).
func (g *Group) Stop() error {
	g.cancel()
	g.wg.Wait()
	return g.Err()
}

// StopWithin is Stop with a limit on the wait: it also reports whether
// every member returned within grace. Members still running afterwards are left
// to finish on their own.
func (g *Group) StopWithin(grace time.Duration) (stopped bool, err error) {
	g.cancel()
	done := make(chan struct{})
	go func() { g.wg.Wait(); close(done) }()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-done:
		return true, g.Err()
	case <-t.C:
		return false, g.Err()
	}
}
