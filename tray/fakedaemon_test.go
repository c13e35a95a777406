package tray

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/patchring/patchring/daemon/apitypes"
)

// ErrFakeDown is what a FakeDaemon answers while it is "not running".
var ErrFakeDown = errors.New("patchringd is not running")

// FakeDaemon is a Daemon for tests that keeps the daemon's reboot rules:
// deferrals are counted and refused when none are left, refusing is refused
// where the policy does not allow it, and every change is streamed to the
// event subscribers. It is exported to the package's external tests.
type FakeDaemon struct {
	now func() time.Time

	mu    sync.Mutex
	st    apitypes.RebootStatus
	calls []string
	subs  map[chan apitypes.Event]struct{}
	down  bool
	tries int // Events calls, also failed ones
	// changed is closed and replaced on every call, for WaitCalls.
	changed chan struct{}
}

var _ Daemon = (*FakeDaemon)(nil)

// NewFakeDaemon returns a daemon in state st; now is its clock (nil:
// time.Now).
func NewFakeDaemon(st apitypes.RebootStatus, now func() time.Time) *FakeDaemon {
	if now == nil {
		now = time.Now
	}
	return &FakeDaemon{now: now, st: st, subs: map[chan apitypes.Event]struct{}{}, changed: make(chan struct{})}
}

// record notes a call; the caller holds mu.
func (f *FakeDaemon) record(call string) {
	f.calls = append(f.calls, call)
	close(f.changed)
	f.changed = make(chan struct{})
}

// RebootStatus implements Daemon.
func (f *FakeDaemon) RebootStatus(ctx context.Context) (apitypes.RebootStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return apitypes.RebootStatus{}, ErrFakeDown
	}
	f.record("status")
	return clone(f.st), nil
}

// Defer implements Daemon with the server's checks.
func (f *FakeDaemon) Defer(ctx context.Context, choice string) (apitypes.RebootStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return apitypes.RebootStatus{}, ErrFakeDown
	}
	f.record("defer " + choice)
	if !f.st.Required {
		return apitypes.RebootStatus{}, errors.New("no restart is pending")
	}
	i := slices.IndexFunc(f.st.Choices, func(c apitypes.DeferChoice) bool { return c.Duration == choice })
	if i < 0 {
		return apitypes.RebootStatus{}, fmt.Errorf("deferral %q is not one the policy offers", choice)
	}
	if f.st.DeferralsLeft <= 0 {
		return apitypes.RebootStatus{}, fmt.Errorf("no deferrals left (%d used)", f.st.DeferralsUsed)
	}
	f.st.DeferralsUsed++
	f.st.DeferralsLeft--
	until := f.now().Add(time.Duration(f.st.Choices[i].Seconds) * time.Second)
	if !f.st.EffectiveDeadline.IsZero() && until.After(f.st.EffectiveDeadline) {
		until = f.st.EffectiveDeadline
	}
	f.st.DeferredUntil, f.st.NextAutomatic = until, until
	f.broadcast(apitypes.EventRebootStatus)
	return clone(f.st), nil
}

// Refuse implements Daemon with the server's checks.
func (f *FakeDaemon) Refuse(ctx context.Context) (apitypes.RebootStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return apitypes.RebootStatus{}, ErrFakeDown
	}
	f.record("refuse")
	if !f.st.CanRefuse {
		return apitypes.RebootStatus{}, errors.New("the policy does not let you decline this restart")
	}
	f.st.Refused = true
	f.broadcast(apitypes.EventRebootStatus)
	return clone(f.st), nil
}

// RestartNow implements Daemon: the state becomes "rebooting".
func (f *FakeDaemon) RestartNow(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return ErrFakeDown
	}
	f.record("restart")
	f.st.State = apitypes.RebootStateRebooting
	f.broadcast(apitypes.EventRebooting)
	return nil
}

// Events implements Daemon.
func (f *FakeDaemon) Events(ctx context.Context) (<-chan apitypes.Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tries++
	if f.down {
		return nil, ErrFakeDown
	}
	ch := make(chan apitypes.Event, 64)
	f.subs[ch] = struct{}{}
	go func() {
		<-ctx.Done()
		f.mu.Lock()
		defer f.mu.Unlock()
		if _, ok := f.subs[ch]; ok {
			delete(f.subs, ch)
			close(ch)
		}
	}()
	return ch, nil
}

// broadcast sends the current status to the subscribers; the caller holds
// mu.
func (f *FakeDaemon) broadcast(typ string) {
	st := clone(f.st)
	for ch := range f.subs {
		select {
		case ch <- apitypes.Event{Type: typ, Reboot: &st, Time: f.now()}:
		default: // a stuck subscriber misses events, as with the real stream
		}
	}
}

// Update changes the status as the daemon would and streams it as an event
// of type typ.
func (f *FakeDaemon) Update(typ string, change func(*apitypes.RebootStatus)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	change(&f.st)
	f.broadcast(typ)
}

// Disconnect makes the daemon unreachable, as when patchringd stops: event
// streams end and calls fail until Reconnect.
func (f *FakeDaemon) Disconnect() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = true
	for ch := range f.subs {
		delete(f.subs, ch)
		close(ch)
	}
}

// Reconnect makes the daemon reachable again.
func (f *FakeDaemon) Reconnect() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = false
}

// Tries counts the attempts to subscribe to events, also failed ones.
func (f *FakeDaemon) Tries() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tries
}

// Status returns the daemon's status for assertions.
func (f *FakeDaemon) Status() apitypes.RebootStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return clone(f.st)
}

// Calls lists the calls that reached the daemon: "status", "defer 4h",
// "refuse", "restart".
func (f *FakeDaemon) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// WaitCall waits until call reached the daemon.
func (f *FakeDaemon) WaitCall(ctx context.Context, call string) error {
	for {
		f.mu.Lock()
		ok := slices.Contains(f.calls, call)
		ch := f.changed
		f.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for daemon call %q (calls: %q): %w", call, f.Calls(), ctx.Err())
		}
	}
}

func clone(st apitypes.RebootStatus) apitypes.RebootStatus {
	st.Packages = slices.Clone(st.Packages)
	st.Choices = slices.Clone(st.Choices)
	return st
}

// PendingRestart is a typical status for tests: a security update needs a
// restart by deadline, three deferral choices, left deferrals remaining.
func PendingRestart(now, deadline time.Time, left int, canRefuse bool) apitypes.RebootStatus {
	return apitypes.RebootStatus{
		Required:          true,
		Since:             now.Add(-time.Hour),
		Reason:            "Security updates to openssl and the kernel need a restart",
		Packages:          []string{"openssl 3.0.17-1~deb12u2", "linux-image-amd64 6.1.140-1"},
		Deadline:          deadline,
		EffectiveDeadline: deadline,
		DeferralsUsed:     3 - left,
		DeferralsLeft:     left,
		Choices: []apitypes.DeferChoice{
			{Label: "1 hour", Duration: "1h", Seconds: 3600},
			{Label: "4 hours", Duration: "4h", Seconds: 4 * 3600},
			{Label: "until tomorrow", Duration: "tomorrow", Seconds: 18 * 3600},
		},
		CanRefuse:     canRefuse,
		NextAutomatic: deadline,
		ActiveHours:   "08:00-18:00",
		State:         apitypes.RebootStateRestartRequired,
	}
}
