package exchange

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"
)

// PeerLimits bound what one peer may ask of this node, so that a member
// that floods (the fleet key lets any member connect) takes no more than
// its share of the node's CPU and sessions: each peer has its own token
// buckets (golang.org/x/time/rate) for sessions (streams of every
// exchange protocol) and for requests within them. A peer within its
// rates is never held back by another's flood: the flooding peer's
// sessions wait for its own tokens, an honest peer's start at once.
type PeerLimits struct {
	// SessionRate is how many sessions per second a peer may open, after
	// a burst of SessionBurst. Default 100 a second, burst 100: an honest
	// peer opens one session per download and a few per metadata refresh.
	SessionRate  float64
	SessionBurst int
	// SessionWait is how long a session over the rate is held before it
	// starts (a tarpit: the flooding peer's next session comes later
	// too). A session that would have to wait longer, or that finds
	// MaxWaiting of its peer's sessions waiting already, is refused: its
	// stream is reset unread and counted as refused for "rate". Default
	// 1 s and 8.
	SessionWait time.Duration
	MaxWaiting  int
	// RequestRate paces a peer's requests within its sessions (have,
	// manifest, range), after a burst of RequestBurst; a request over the
	// rate waits for its token. Default 2,000 a second, burst 1,000: a
	// download asks for a range per piece.
	RequestRate  float64
	RequestBurst int
}

// WithDefaults returns l with every unset limit at its default.
func (l PeerLimits) WithDefaults() PeerLimits {
	if l.SessionRate <= 0 {
		l.SessionRate = 100
	}
	if l.SessionBurst <= 0 {
		l.SessionBurst = 100
	}
	if l.SessionWait <= 0 {
		l.SessionWait = time.Second
	}
	if l.MaxWaiting <= 0 {
		l.MaxWaiting = 8
	}
	if l.RequestRate <= 0 {
		l.RequestRate = 2000
	}
	if l.RequestBurst <= 0 {
		l.RequestBurst = 1000
	}
	return l
}

// errRate is why a session was refused: its peer is over its session rate.
var errRate = errors.New("over the peer's session rate")

// admission holds the per-peer buckets. Peers are fleet members (the
// allow-list), and a peer's entry is dropped once it has been idle long
// enough for its buckets to be full again, so the map stays small.
type admission struct {
	lim PeerLimits
	now func() time.Time

	mu    sync.Mutex
	peers map[peer.ID]*peerAdmission
}

type peerAdmission struct {
	sessions, requests *rate.Limiter
	waiting            int
	last               time.Time
}

func newAdmission(lim PeerLimits, now func() time.Time) *admission {
	return &admission{lim: lim.WithDefaults(), now: now, peers: map[peer.ID]*peerAdmission{}}
}

// pruneAfter is how many peers the table holds before idle ones are
// dropped, and idleFor how long a peer must have been idle.
const (
	pruneAfter = 256
	idleFor    = time.Minute
)

func (a *admission) peerLocked(p peer.ID, now time.Time) *peerAdmission {
	pa, ok := a.peers[p]
	if !ok {
		if len(a.peers) >= pruneAfter {
			for id, o := range a.peers {
				if o.waiting == 0 && now.Sub(o.last) > idleFor {
					delete(a.peers, id)
				}
			}
		}
		pa = &peerAdmission{
			sessions: rate.NewLimiter(rate.Limit(a.lim.SessionRate), a.lim.SessionBurst),
			requests: rate.NewLimiter(rate.Limit(a.lim.RequestRate), a.lim.RequestBurst),
		}
		a.peers[p] = pa
	}
	pa.last = now
	return pa
}

// session admits a new session of p: at once within its rate, after a
// wait (throttled) within SessionWait, else errRate. ctx ends a wait.
func (a *admission) session(ctx context.Context, p peer.ID) (throttled bool, err error) {
	now := a.now()
	a.mu.Lock()
	pa := a.peerLocked(p, now)
	r := pa.sessions.ReserveN(now, 1)
	d := r.DelayFrom(now)
	if d == 0 {
		a.mu.Unlock()
		return false, nil
	}
	if d > a.lim.SessionWait || pa.waiting >= a.lim.MaxWaiting {
		r.CancelAt(now)
		a.mu.Unlock()
		return false, errRate
	}
	pa.waiting++
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		pa.waiting--
		a.mu.Unlock()
	}()
	return true, waitReservation(ctx, r, d)
}

// request paces one request of p; it reports whether it had to wait.
func (a *admission) request(ctx context.Context, p peer.ID) (throttled bool, err error) {
	now := a.now()
	a.mu.Lock()
	pa := a.peerLocked(p, now)
	a.mu.Unlock()
	r := pa.requests.ReserveN(now, 1)
	d := r.DelayFrom(now)
	if d == 0 {
		return false, nil
	}
	return true, waitReservation(ctx, r, d)
}

// waitReservation waits d for reservation r, or gives it back when ctx
// ends first.
func waitReservation(ctx context.Context, r *rate.Reservation, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		r.Cancel()
		return ctx.Err()
	}
}
