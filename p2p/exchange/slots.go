package exchange

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// errBusy is why a request found no upload slot.
var errBusy = errors.New("upload slots busy")

// slotPool hands out a fixed number of upload slots, at most one per peer
// at a time: a peer cannot take two slots, so a slow or hostile one holds
// at most one, for one transfer deadline.
type slotPool struct {
	slots chan struct{}

	mu   sync.Mutex
	held map[peer.ID]bool
}

func newSlotPool(n int) *slotPool {
	return &slotPool{slots: make(chan struct{}, n), held: map[peer.ID]bool{}}
}

// size returns the number of slots.
func (sp *slotPool) size() int { return cap(sp.slots) }

// take takes a slot for p, queueing at most wait for one. It fails with an
// error wrapping errBusy when p already holds one or none is free in time.
// Call release once the transfer ends.
func (sp *slotPool) take(ctx context.Context, p peer.ID, wait time.Duration) (release func(), err error) {
	sp.mu.Lock()
	if sp.held[p] {
		sp.mu.Unlock()
		return nil, errPeerBusy
	}
	sp.held[p] = true
	sp.mu.Unlock()
	if !sp.takeSlot(ctx, wait) {
		sp.drop(p)
		return nil, errAllBusy
	}
	return func() {
		<-sp.slots
		sp.drop(p)
	}, nil
}

// Refusals of take, both wrapping errBusy.
var (
	errPeerBusy = &busyError{"one transfer per peer at a time"}
	errAllBusy  = &busyError{"all upload slots busy"}
)

type busyError struct{ msg string }

func (e *busyError) Error() string { return e.msg }
func (e *busyError) Unwrap() error { return errBusy }

func (sp *slotPool) drop(p peer.ID) {
	sp.mu.Lock()
	delete(sp.held, p)
	sp.mu.Unlock()
}

func (sp *slotPool) takeSlot(ctx context.Context, wait time.Duration) bool {
	select {
	case sp.slots <- struct{}{}:
		return true
	default:
	}
	if wait <= 0 {
		return false
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case sp.slots <- struct{}{}:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

// ServerStats counts how the inbound sessions of a node ended and what it
// refused, for both protocols (blob: /patchring/blob/1 and /2; file:
// /patchring/meta/1). Every session ends in exactly one of Clean, Malformed,
// TimedOut and Broken (a blob session) or Clean, Malformed, TimedOut and
// Broken (a file request); a hostile peer's session shows up in one of the
// last three, or as a refusal.
type ServerStats struct {
	Blob, File SessionStats
}

// SessionStats counts the sessions of one protocol.
type SessionStats struct {
	Sessions  int64 // started
	Clean     int64 // ended by the client's close, or by this node stopping
	Malformed int64 // ended by a malformed frame or a message out of place
	TimedOut  int64 // cut: idle, or a transfer over its deadline
	Broken    int64 // ended by a reset or an I/O error
	// Refusals by reason.
	RefusedBusy       int64 // all slots busy
	RefusedPeerBusy   int64 // the peer already holds a slot
	RefusedBadRequest int64 // a range or piece geometry this node does not serve
	RefusedNotFound   int64 // not held (or not on offer yet)
	RefusedRate       int64 // a session over its peer's session rate, or a manifest over the payload's rehash cap
	RefusedOther      int64
	// Throttled counts sessions and requests that waited for their peer's
	// tokens (PeerLimits) before they were served.
	ThrottledSessions, ThrottledRequests int64
}

type serverCounters struct {
	sessions, clean, malformed, timedOut, broken     atomic.Int64
	busy, peerBusy, badRequest, notFound, otherRefus atomic.Int64
	rate, throttledSessions, throttledRequests       atomic.Int64
}

// ended counts how a session ended.
func (c *serverCounters) ended(err error, timedOut bool) {
	switch {
	case timedOut || errors.Is(err, errTimeout):
		c.timedOut.Add(1)
	case err == nil || errors.Is(err, context.Canceled):
		c.clean.Add(1)
	case errors.Is(err, ErrFrame) || errors.Is(err, errProtocol):
		c.malformed.Add(1)
	default:
		c.broken.Add(1)
	}
}

// refused counts a refusal.
func (c *serverCounters) refused(code ErrorCode) {
	switch code {
	case CodeBusy:
		c.busy.Add(1)
	case CodeBadRequest:
		c.badRequest.Add(1)
	case CodeNotFound:
		c.notFound.Add(1)
	default:
		c.otherRefus.Add(1)
	}
}

// refusedErr counts a refusal for a slot error.
func (c *serverCounters) refusedErr(err error) {
	if errors.Is(err, errPeerBusy) {
		c.peerBusy.Add(1)
		return
	}
	c.busy.Add(1)
}

func (c *serverCounters) snapshot() SessionStats {
	return SessionStats{
		Sessions: c.sessions.Load(), Clean: c.clean.Load(), Malformed: c.malformed.Load(),
		TimedOut: c.timedOut.Load(), Broken: c.broken.Load(),
		RefusedBusy: c.busy.Load(), RefusedPeerBusy: c.peerBusy.Load(), RefusedBadRequest: c.badRequest.Load(),
		RefusedNotFound: c.notFound.Load(), RefusedRate: c.rate.Load(), RefusedOther: c.otherRefus.Load(),
		ThrottledSessions: c.throttledSessions.Load(), ThrottledRequests: c.throttledRequests.Load(),
	}
}
