package exchange

import (
	"sync"
	"sync/atomic"
	"time"
)

// A range's bytes are written into its stream long before they are on the
// wire: yamux queues up to 64 frames per connection and the kernel a socket
// buffer of megabytes. On an upload slower than the node writes, a slot
// released when the last byte is written lets every request in: all of them
// then share the link, each piece takes as long as all of them together,
// and none can be passed on sooner (24 nodes on 10 Mbit/s links, 128 KiB
// pieces: 1.62 x the bound with slots released at once, 1.36-1.47 x with
// slots held until the piece arrived; docs/P2P.md). So a session keeps the
// slot of the range it just sent until the client's next frame, which an
// honest client sends as soon as it holds the piece, or until the linger
// passes (a client with nothing more to ask sends nothing).

// minLinger is the least a slot is held: a client that asks again before it
// could have received the piece (it pipelines) teaches the clock nothing.
const minLinger = 5 * time.Millisecond

// lingerClock learns how long the node's pieces take to reach their
// clients and holds a sent range's slot for twice that, at most max.
type lingerClock struct {
	max  time.Duration // <= 0: slots are released as soon as the bytes are written
	ewma atomic.Int64  // nanoseconds from the end of a write to the client's next frame; 0: none yet
}

func newLingerClock(max time.Duration) *lingerClock { return &lingerClock{max: max} }

// linger is how long the next sent range keeps its slot at most.
func (l *lingerClock) linger() time.Duration {
	e := time.Duration(l.ewma.Load())
	if e <= 0 {
		return l.max
	}
	return min(l.max, max(2*e, minLinger))
}

// observe records that a client asked again d after its piece was written.
func (l *lingerClock) observe(d time.Duration) {
	d = min(d, l.max)
	for {
		old := l.ewma.Load()
		next := int64(d)
		if old > 0 {
			next = old + (int64(d)-old)/8
		}
		if l.ewma.CompareAndSwap(old, next) {
			return
		}
	}
}

// heldSlot is the upload slot of the last range a session sent.
type heldSlot struct {
	free  func() // releases the slot, once
	timer *time.Timer
	since time.Time
}

// hold keeps release's slot for at most the current linger; nil when the
// clock holds nothing (a nil clock, or max <= 0: release was called).
func (l *lingerClock) hold(release func()) *heldSlot {
	if l == nil || l.max <= 0 {
		release()
		return nil
	}
	free := sync.OnceFunc(release)
	return &heldSlot{free: free, timer: time.AfterFunc(l.linger(), free), since: time.Now()}
}

// answered releases the slot because the client sent its next frame, and
// teaches the clock how long the piece took to arrive.
func (h *heldSlot) answered(l *lingerClock) {
	h.drop()
	l.observe(time.Since(h.since))
}

// drop releases the slot (the session ended).
func (h *heldSlot) drop() {
	h.timer.Stop()
	h.free()
}
