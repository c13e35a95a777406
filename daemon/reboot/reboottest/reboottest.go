// Package reboottest holds test doubles for the reboot orchestration: a
// fake clock (shaped like the reboot and tray clocks), a shared table of
// restart leases with time-to-live, and a Rebooter that records instead of
// restarting.
package reboottest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/patchring/patchring/daemon/reboot"
)

// Clock is a fake clock: time moves only by Advance or Set.
type Clock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
	changed chan struct{} // closed and replaced when a waiter is added
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

var _ reboot.Clock = (*Clock)(nil)

// NewClock returns a clock at start.
func NewClock(start time.Time) *Clock {
	return &Clock{now: start, changed: make(chan struct{})}
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// After sends the clock's time once it has moved d ahead.
func (c *Clock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, waiter{at: c.now.Add(d), ch: ch})
	close(c.changed)
	c.changed = make(chan struct{})
	return ch
}

// Advance moves the clock d ahead and fires the waiters that are due.
func (c *Clock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

// Set moves the clock to t (never back) and fires the waiters that are due.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.After(c.now) {
		c.now = t
	}
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if w.at.After(c.now) {
			kept = append(kept, w)
			continue
		}
		w.ch <- c.now
	}
	c.waiters = kept
}

// Waiters returns how many After calls wait for a future time.
func (c *Clock) Waiters() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiters)
}

// WaitForWaiters blocks until at least n After calls wait, or ctx ends.
func (c *Clock) WaitForWaiters(ctx context.Context, n int) error {
	for {
		c.mu.Lock()
		got, ch := len(c.waiters), c.changed
		c.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for %d clock waiters (have %d): %w", n, got, ctx.Err())
		}
	}
}

// Leases is a shared table of restart leases, the test double of the
// fleet-wide lease: each node gets its Lease with For. A slot expires ttl
// after it was taken, on the table's clock.
type Leases struct {
	now func() time.Time

	mu      sync.Mutex
	holders map[string]map[string]time.Time // group -> node -> expiry
	max     map[string]int                  // most holders ever seen per group
}

// NewLeases returns an empty table whose clock is now (nil: time.Now,
// which is the fake time inside a testing/synctest bubble).
func NewLeases(now func() time.Time) *Leases {
	if now == nil {
		now = time.Now
	}
	return &Leases{now: now, holders: map[string]map[string]time.Time{}, max: map[string]int{}}
}

// For returns node's view of the table.
func (l *Leases) For(node string) reboot.Lease { return &nodeLease{l: l, node: node} }

// Holders lists the nodes holding a live slot of group, sorted.
func (l *Leases) Holders(group string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expireLocked(group)
	var out []string
	for n := range l.holders[group] {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// MaxHolders is the most nodes that held a slot of group at once.
func (l *Leases) MaxHolders(group string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.max[group]
}

func (l *Leases) expireLocked(group string) {
	now := l.now()
	for n, exp := range l.holders[group] {
		if !now.Before(exp) {
			delete(l.holders[group], n)
		}
	}
}

type nodeLease struct {
	l    *Leases
	node string
}

var _ reboot.Lease = (*nodeLease)(nil)

func (n *nodeLease) TryAcquire(ctx context.Context, group string, limit int, ttl time.Duration) (bool, error) {
	l := n.l
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expireLocked(group)
	hs := l.holders[group]
	if hs == nil {
		hs = map[string]time.Time{}
		l.holders[group] = hs
	}
	if _, ok := hs[n.node]; !ok && len(hs) >= limit {
		return false, nil
	}
	hs[n.node] = l.now().Add(ttl)
	l.max[group] = max(l.max[group], len(hs))
	return true, nil
}

func (n *nodeLease) Release(ctx context.Context, group string) error {
	n.l.mu.Lock()
	defer n.l.mu.Unlock()
	delete(n.l.holders[group], n.node)
	return nil
}

// Rebooter records restarts instead of doing them.
type Rebooter struct {
	// OnReboot, when set, runs inside Reboot (e.g. to check the leases).
	OnReboot func(message string)

	mu    sync.Mutex
	calls []string
	fail  error
	ch    chan string
}

var _ reboot.Rebooter = (*Rebooter)(nil)

// NewRebooter returns a recording Rebooter.
func NewRebooter() *Rebooter { return &Rebooter{ch: make(chan string, 64)} }

// FailWith makes the following calls fail with err (nil: succeed).
func (r *Rebooter) FailWith(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fail = err
}

// Reboot records the call.
func (r *Rebooter) Reboot(ctx context.Context, message string) error {
	if r.OnReboot != nil {
		r.OnReboot(message)
	}
	r.mu.Lock()
	r.calls = append(r.calls, message)
	err := r.fail
	r.mu.Unlock()
	select {
	case r.ch <- message:
	default:
	}
	return err
}

// Calls returns the messages of the calls so far.
func (r *Rebooter) Calls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// Called delivers the message of each call (the first 64 calls).
func (r *Rebooter) Called() <-chan string { return r.ch }

// Wait returns the message of the next call, or an error when ctx ends
// first.
func (r *Rebooter) Wait(ctx context.Context) (string, error) {
	select {
	case m := <-r.ch:
		return m, nil
	case <-ctx.Done():
		return "", errors.New("no restart happened: " + ctx.Err().Error())
	}
}
