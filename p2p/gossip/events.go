package gossip

import (
	"sync"
	"sync/atomic"
)

// EventKind says what happened.
type EventKind uint8

// Event kinds.
const (
	EventJoin          EventKind = iota + 1 // a member joined (or came back)
	EventLeave                              // a member left or was declared dead
	EventUpdate                             // a member's state or liveness changed
	EventPolicyVersion                      // a higher policy version was heard (a hint)
)

func (k EventKind) String() string {
	switch k {
	case EventJoin:
		return "join"
	case EventLeave:
		return "leave"
	case EventUpdate:
		return "update"
	case EventPolicyVersion:
		return "policy-version"
	}
	return "unknown"
}

// Event is one notification. Member is a snapshot taken when the event is
// delivered, so a slow consumer sees the latest state.
type Event struct {
	Kind          EventKind
	Member        Member
	PolicyVersion uint64 // EventPolicyVersion only
}

// Subscription delivers events on a channel. Memberlist's callbacks never
// wait for it: while the consumer is behind, events about the same member
// are coalesced (a join followed by updates stays a join; the latest policy
// version wins), so memory stays bounded by the number of members.
type Subscription struct {
	g    *Gossip
	ch   chan Event
	wake chan struct{}
	done chan struct{}
	once sync.Once

	mu        sync.Mutex
	pending   map[string]pendingEvent
	order     []string
	coalesced atomic.Uint64
}

type pendingEvent struct {
	kind    EventKind
	node    string
	version uint64
}

const policyKey = "\x00policy"

// Subscribe returns a subscription whose channel has room for buffer events
// (at least 1). It is closed by Close or when the Gossip stops.
func (g *Gossip) Subscribe(buffer int) *Subscription {
	s := &Subscription{
		g:       g,
		ch:      make(chan Event, max(buffer, 1)),
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		pending: make(map[string]pendingEvent),
	}
	g.subsMu.Lock()
	defer g.subsMu.Unlock()
	if g.closed.Load() {
		close(s.done)
		close(s.ch)
		return s
	}
	g.subs[s] = struct{}{}
	g.wg.Add(1)
	go s.pump()
	return s
}

// Events is the channel of events; it is closed when the subscription ends.
func (s *Subscription) Events() <-chan Event { return s.ch }

// Coalesced counts events merged into a later one because the consumer
// was behind.
func (s *Subscription) Coalesced() uint64 { return s.coalesced.Load() }

// Close ends the subscription.
func (s *Subscription) Close() {
	s.g.subsMu.Lock()
	delete(s.g.subs, s)
	s.g.subsMu.Unlock()
	s.once.Do(func() { close(s.done) })
}

func (s *Subscription) add(ev pendingEvent) {
	key := ev.node
	if ev.kind == EventPolicyVersion {
		key = policyKey
	}
	s.mu.Lock()
	if old, ok := s.pending[key]; ok {
		s.coalesced.Add(1)
		switch {
		case ev.kind == EventPolicyVersion:
			ev.version = max(ev.version, old.version)
		case old.kind == EventJoin && ev.kind == EventUpdate:
			ev.kind = EventJoin
		}
	} else {
		s.order = append(s.order, key)
	}
	s.pending[key] = ev
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Subscription) next() (pendingEvent, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.order) == 0 {
		return pendingEvent{}, false
	}
	key := s.order[0]
	s.order = s.order[1:]
	ev := s.pending[key]
	delete(s.pending, key)
	return ev, true
}

func (s *Subscription) pump() {
	defer s.g.wg.Done()
	defer close(s.ch)
	for {
		select {
		case <-s.done:
			return
		case <-s.wake:
		}
		for {
			pe, ok := s.next()
			if !ok {
				break
			}
			ev := Event{Kind: pe.kind, PolicyVersion: pe.version}
			ev.Member, _ = s.g.Member(pe.node)
			if ev.Member.NodeID == "" {
				ev.Member.NodeID = pe.node
			}
			select {
			case s.ch <- ev:
			case <-s.done:
				return
			}
		}
	}
}

// emit hands an event to every subscription without blocking.
func (g *Gossip) emit(kind EventKind, node string, version uint64) {
	g.subsMu.Lock()
	defer g.subsMu.Unlock()
	for s := range g.subs {
		s.add(pendingEvent{kind: kind, node: node, version: version})
	}
}

// closeSubs ends every subscription and waits for their pumps.
func (g *Gossip) closeSubs() {
	g.subsMu.Lock()
	for s := range g.subs {
		s.once.Do(func() { close(s.done) })
		delete(g.subs, s)
	}
	g.subsMu.Unlock()
	g.wg.Wait()
}
