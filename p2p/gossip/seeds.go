package gossip

import (
	"context"
	"net/netip"
	"slices"
	"time"
)

// Limits of the candidates offered by LAN discovery (AddSeeds).
const (
	// maxDiscovered bounds the candidates remembered; the one heard least
	// recently goes first.
	maxDiscovered = 64
	// discoveredTTL forgets a candidate nobody has offered for this long
	// (beacons repeat every few seconds while a node runs).
	discoveredTTL = 3 * time.Minute
	// maxDiscoverJoins bounds the candidates contacted in one join round.
	maxDiscoverJoins = 4
	// discoverRetry is how long a candidate that answered waits before it
	// may be contacted again (if it is not a live member by then).
	discoverRetry = 30 * time.Second
	// discoverBackoff and discoverBackoffMax bound the retries of a
	// candidate that did not answer or refused us (another fleet's key).
	discoverBackoff    = 5 * time.Second
	discoverBackoffMax = 5 * time.Minute
)

// discoveredSeed is a candidate seed offered by AddSeeds.
type discoveredSeed struct {
	heard time.Time // last offered
	next  time.Time // earliest next join attempt
	fails int       // failed attempts in a row
}

// AddSeeds offers addresses (host:port, a literal IP) found by LAN
// discovery. They are hints, not members: the join loop contacts those
// that are not live members of the pool (also when this node is not
// alone, so that separate pools of one site merge), at most a few per
// round, each with its own backoff, and memberlist's keyring decides
// whether a join succeeds. At most 64 candidates are remembered; one not
// offered again for 3 minutes is forgotten. Malformed addresses and this
// node's own address are ignored. AddSeeds never blocks on the network.
func (g *Gossip) AddSeeds(addrs ...string) {
	now := time.Now()
	wake := false
	g.seedMu.Lock()
	for _, a := range addrs {
		ap, err := netip.ParseAddrPort(a)
		if err != nil || ap.Port() == 0 || ap.Addr().IsUnspecified() || ap.Addr().Zone() != "" {
			continue
		}
		key := netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String()
		if key == g.localAddr {
			continue
		}
		if s, ok := g.discovered[key]; ok {
			s.heard = now
			wake = wake || !now.Before(s.next)
			continue
		}
		if len(g.discovered) >= maxDiscovered {
			g.evictDiscoveredLocked()
		}
		g.discovered[key] = &discoveredSeed{heard: now}
		wake = true
	}
	g.seedMu.Unlock()
	if wake {
		g.signal(g.seedCh)
	}
}

// evictDiscoveredLocked drops the candidate heard least recently.
func (g *Gossip) evictDiscoveredLocked() {
	oldest := ""
	var at time.Time
	for k, s := range g.discovered {
		if oldest == "" || s.heard.Before(at) {
			oldest, at = k, s.heard
		}
	}
	delete(g.discovered, oldest)
}

// seeds returns the configured seeds other than this node's own address.
func (g *Gossip) seeds() []string {
	self := g.LocalAddr()
	var out []string
	for _, s := range g.cfg.Seeds {
		if s != self {
			out = append(out, s)
		}
	}
	return out
}

func (g *Gossip) hasLeft() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.left
}

// joinLoop joins the configured seeds whenever this node is alone (with
// jittered exponential backoff while they fail) and the discovered
// candidates that are not live members. The first round waits a random
// time up to JoinJitter; later rounds are at least one probe interval
// apart, however fast candidates arrive.
func (g *Gossip) joinLoop(ctx context.Context) {
	if !sleepCtx(ctx, jitter(g.cfg.JoinJitter)) {
		return
	}
	base := max(g.cfg.ProbeInterval, 100*time.Millisecond)
	seeds := g.seeds()
	attempt := 0
	var nextSeeds time.Time // next look at the configured seeds
	for {
		if g.hasLeft() {
			return
		}
		now := time.Now()
		if len(seeds) > 0 && !now.Before(nextSeeds) {
			// Joined: look again after a while in case we end up alone.
			nextSeeds = now.Add(5*base + jitter(5*base))
			if g.live.Load() <= 1 {
				n, err := g.ml.Join(seeds)
				if n > 0 {
					g.log.Info("joined gossip pool", "seeds_reached", n, "members", g.live.Load())
					attempt = 0
				} else {
					attempt++
					g.log.Warn("join gossip pool failed, retrying", "seeds", seeds, "attempt", attempt, "err", err)
					// Full jitter: a whole site retrying does not move in step.
					d := min(g.cfg.JoinBackoffMax, base<<min(attempt, 16))
					nextSeeds = time.Now().Add(jitter(d) + base/2)
				}
			}
		}
		nextFound := g.joinDiscovered(ctx)
		wake := now.Add(5*base + jitter(5*base))
		if len(seeds) > 0 && nextSeeds.Before(wake) {
			wake = nextSeeds
		}
		if !nextFound.IsZero() && nextFound.Before(wake) {
			wake = nextFound
		}
		// Rate limit: one round per probe interval at most.
		if !sleepCtx(ctx, base) {
			return
		}
		if d := time.Until(wake); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-g.seedCh:
			case <-t.C:
			}
			t.Stop()
		}
	}
}

// joinDiscovered contacts up to maxDiscoverJoins due candidates that are
// not live members, most recently heard first, and returns when the next
// one is due (zero: none waiting).
func (g *Gossip) joinDiscovered(ctx context.Context) time.Time {
	g.seedMu.Lock()
	none := len(g.discovered) == 0
	g.seedMu.Unlock()
	if none {
		return time.Time{} // the usual case: no copy of the member table
	}
	members := make(map[string]bool)
	for _, n := range g.aliveNodes() {
		members[n.Address()] = true
	}
	now := time.Now()
	type cand struct {
		addr  string
		heard time.Time
	}
	var due []cand
	g.seedMu.Lock()
	for k, s := range g.discovered {
		switch {
		case now.Sub(s.heard) > discoveredTTL:
			delete(g.discovered, k)
		case members[k], now.Before(s.next):
		default:
			due = append(due, cand{k, s.heard})
		}
	}
	g.seedMu.Unlock()
	slices.SortFunc(due, func(a, b cand) int { return b.heard.Compare(a.heard) })
	for i, c := range due {
		if i == maxDiscoverJoins || ctx.Err() != nil || g.hasLeft() {
			break
		}
		n, err := g.ml.Join([]string{c.addr})
		done := time.Now()
		g.seedMu.Lock()
		if s := g.discovered[c.addr]; s != nil {
			if n > 0 {
				s.fails = 0
				s.next = done.Add(discoverRetry)
			} else {
				s.fails++
				d := min(discoverBackoffMax, discoverBackoff<<min(s.fails-1, 16))
				s.next = done.Add(d/2 + jitter(d/2))
			}
		}
		g.seedMu.Unlock()
		if n > 0 {
			g.log.Info("joined a gossip member found on the LAN", "addr", c.addr, "members", g.live.Load())
		} else {
			g.log.Debug("join of a discovered candidate failed", "addr", c.addr, "err", err)
		}
	}
	var next time.Time
	g.seedMu.Lock()
	for k, s := range g.discovered {
		if members[k] {
			continue
		}
		if next.IsZero() || s.next.Before(next) {
			next = s.next
		}
	}
	g.seedMu.Unlock()
	return next
}
