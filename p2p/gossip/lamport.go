package gossip

import "sync/atomic"

// lamportClock is a Lamport clock (as in Serf's lamport.go): every message a
// node makes carries the next tick, and every message it hears moves the
// clock past the time it carries, so a newer message about a node always
// has a larger time than an older one, also across the node's restarts
// (it witnesses its own old messages when it rejoins).
type lamportClock struct {
	counter atomic.Uint64
}

// Time returns the current value.
func (l *lamportClock) Time() uint64 { return l.counter.Load() }

// Increment advances the clock and returns the new value.
func (l *lamportClock) Increment() uint64 { return l.counter.Add(1) }

// Witness moves the clock past v if it is behind.
func (l *lamportClock) Witness(v uint64) {
	for {
		cur := l.counter.Load()
		if v < cur {
			return
		}
		if l.counter.CompareAndSwap(cur, v+1) {
			return
		}
	}
}
