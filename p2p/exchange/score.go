package exchange

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// PeerStats is what this node knows about one peer: traffic both ways and
// its record as a source. It feeds `patchring peers` and the metrics.
type PeerStats struct {
	ID peer.ID
	// BytesIn counts payload bytes received from the peer (verified or not);
	// BytesOut payload bytes sent to it.
	BytesIn, BytesOut int64
	// BadData counts offences proved against the peer: pieces that
	// contradicted its own manifest or the verified payload.
	BadData int
	// Failures counts truncated transfers, timeouts, trickling and protocol
	// errors.
	Failures int
	// AvoidUntil is when the peer may be used as a source again (zero: now).
	AvoidUntil time.Time
	LastError  string
}

// Totals sums this node's payload traffic.
type Totals struct {
	FromPeers  int64 // payload bytes received from peers
	FromOrigin int64 // payload bytes received from the origin (WAN)
	ToPeers    int64 // payload bytes sent to peers
}

// BandwidthOptimization is the share of received payload bytes that came
// from peers rather than the origin, in percent (Delivery Optimization's
// "bandwidth optimization %"). It is 0 when nothing was received.
func (t Totals) BandwidthOptimization() float64 {
	all := t.FromPeers + t.FromOrigin
	if all == 0 {
		return 0
	}
	return 100 * float64(t.FromPeers) / float64(all)
}

// offence kinds
type offence int

const (
	offenceFailure offence = iota // timeout, truncation, protocol error
	offenceBadData                // proved corrupt data
)

// Penalties. A proved liar is avoided for BadDataBan; other failures back
// off exponentially from FailureBackoff up to MaxFailureBackoff.
const (
	BadDataBan        = time.Hour
	FailureBackoff    = 15 * time.Second
	MaxFailureBackoff = 10 * time.Minute
)

type peerRecord struct {
	st PeerStats
}

// scoreboard tracks peers across downloads. Safe for concurrent use.
type scoreboard struct {
	now func() time.Time

	mu    sync.Mutex
	peers map[peer.ID]*peerRecord

	fromPeers, fromOrigin, toPeers atomic.Int64
}

func newScoreboard(now func() time.Time) *scoreboard {
	return &scoreboard{now: now, peers: map[peer.ID]*peerRecord{}}
}

func (s *scoreboard) recLocked(p peer.ID) *peerRecord {
	r, ok := s.peers[p]
	if !ok {
		r = &peerRecord{st: PeerStats{ID: p}}
		s.peers[p] = r
	}
	return r
}

func (s *scoreboard) addIn(p peer.ID, n int64) {
	if n <= 0 {
		return
	}
	s.fromPeers.Add(n)
	s.mu.Lock()
	s.recLocked(p).st.BytesIn += n
	s.mu.Unlock()
}

func (s *scoreboard) addOut(p peer.ID, n int64) {
	if n <= 0 {
		return
	}
	s.toPeers.Add(n)
	s.mu.Lock()
	s.recLocked(p).st.BytesOut += n
	s.mu.Unlock()
}

func (s *scoreboard) addOrigin(n int64) {
	if n > 0 {
		s.fromOrigin.Add(n)
	}
}

// punish records an offence and returns until when the peer is avoided.
func (s *scoreboard) punish(p peer.ID, kind offence, err error) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.recLocked(p)
	if err != nil {
		r.st.LastError = err.Error()
	}
	now := s.now()
	var d time.Duration
	switch kind {
	case offenceBadData:
		r.st.BadData++
		d = BadDataBan
	default:
		r.st.Failures++
		d = FailureBackoff
		for i := 1; i < r.st.Failures && d < MaxFailureBackoff; i++ {
			d *= 2
		}
		d = min(d, MaxFailureBackoff)
	}
	if until := now.Add(d); until.After(r.st.AvoidUntil) {
		r.st.AvoidUntil = until
	}
	return r.st.AvoidUntil
}

func (s *scoreboard) avoided(p peer.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.peers[p]
	return ok && s.now().Before(r.st.AvoidUntil)
}

func (s *scoreboard) stats() []PeerStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]PeerStats, 0, len(s.peers))
	for _, r := range s.peers {
		out = append(out, r.st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (s *scoreboard) peerStats(p peer.ID) (PeerStats, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.peers[p]
	if !ok {
		return PeerStats{ID: p}, false
	}
	return r.st, true
}

func (s *scoreboard) totals() Totals {
	return Totals{FromPeers: s.fromPeers.Load(), FromOrigin: s.fromOrigin.Load(), ToPeers: s.toPeers.Load()}
}
