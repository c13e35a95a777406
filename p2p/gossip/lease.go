package gossip

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"
)

// Lease is an advisory, gossip-based semaphore: at most limit nodes of a
// group (a site, a tag group) hold it at once, e.g. to reboot headless hosts
// a few at a time. Each node announces its own claim, hold or release for a
// group in signed lease messages; a hold lasts until its expiry by the
// injected clock, also when the holder dies or reboots (a rebooting host
// looks dead), unless the holder releases it first.
//
// Acquiring: a node that sees fewer than limit unexpired holders announces a
// claim, waits Config.LeaseSettle for competing claims, then ranks the
// claims it has heard by (Lamport time, node ID); the first limit-minus-
// holders claimants take the slots. The guarantee holds when every claim
// reaches every claimant within half the settle time; see docs/GOSSIP.md.
type Lease struct{ g *Gossip }

// LeaseHolder is one node holding (or claiming) a lease.
type LeaseHolder struct {
	NodeID   string
	Expiry   time.Time
	Claiming bool // claim still settling, not a hold
	Local    bool
	Liveness Liveness
}

// Lease returns the node's lease handle.
func (g *Gossip) Lease() *Lease { return &Lease{g} }

func checkLeaseArgs(group string, limit int, ttl time.Duration) error {
	if group == "" {
		return fmt.Errorf("lease group is empty")
	}
	if err := checkString("lease group", group, maxShortLen); err != nil {
		return err
	}
	if limit < 1 {
		return fmt.Errorf("lease %s: limit %d, want at least 1", group, limit)
	}
	if ttl <= 0 {
		return fmt.Errorf("lease %s: ttl %v, want more than 0", group, ttl)
	}
	return nil
}

// TryAcquire tries to take one of limit slots of group for ttl. It returns
// true if this node holds the lease (also when it already did), false if
// the slots are taken or a competing claim won. It blocks for about
// Config.LeaseSettle when it makes a claim. If ctx ends meanwhile the claim
// is withdrawn and ctx's error returned.
func (l *Lease) TryAcquire(ctx context.Context, group string, limit int, ttl time.Duration) (bool, error) {
	if err := checkLeaseArgs(group, limit, ttl); err != nil {
		return false, err
	}
	g := l.g
	g.leaseMu.Lock()
	defer g.leaseMu.Unlock()
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if g.closed.Load() {
		return false, ErrClosed
	}
	g.mu.Lock()
	g.leaseTTL[group] = ttl
	now := g.clock.Now()
	self := g.members[g.name]
	if r := self.leases[group]; r != nil && r.phase == leaseHeld && r.expiry.After(now) {
		g.mu.Unlock()
		return true, nil
	}
	if len(g.holdersLocked(group, now)) >= limit {
		g.mu.Unlock()
		return false, nil
	}
	claim, err := g.announceLeaseLocked(group, leaseClaim, now.Add(ttl))
	if err != nil {
		g.mu.Unlock()
		return false, fmt.Errorf("claim lease %s: %w", group, err)
	}
	claimLT := self.leases[group].ltime
	g.mu.Unlock()
	g.sendDirect(claim)

	if !sleepCtx(ctx, g.cfg.LeaseSettle) {
		g.leaseAnnounce(group, leaseReleased, time.Time{})
		return false, ctx.Err()
	}

	g.mu.Lock()
	now = g.clock.Now()
	holders := g.holdersLocked(group, now)
	type claimant struct {
		ltime uint64
		name  string
	}
	claims := []claimant{{claimLT, g.name}}
	window := 2 * g.cfg.LeaseSettle
	for name, m := range g.members {
		r := m.leases[group]
		if name == g.name || r == nil || r.phase != leaseClaim || !r.until(ttl).After(now) || time.Since(r.heard) > window {
			continue
		}
		if !g.countsLocked(m) {
			continue // not admitted, or visiting from another site
		}
		if m.liveness == LivenessDead || m.liveness == LivenessLeft {
			continue
		}
		claims = append(claims, claimant{r.ltime, name})
	}
	slices.SortFunc(claims, func(a, b claimant) int {
		return cmp.Or(cmp.Compare(a.ltime, b.ltime), cmp.Compare(a.name, b.name))
	})
	rank := slices.IndexFunc(claims, func(c claimant) bool { return c.name == g.name })
	won := rank < limit-len(holders)
	phase, expiry := leaseReleased, time.Time{}
	if won {
		phase, expiry = leaseHeld, now.Add(ttl)
	}
	msg, err := g.announceLeaseLocked(group, phase, expiry)
	g.mu.Unlock()
	if err != nil {
		return false, fmt.Errorf("settle lease %s: %w", group, err)
	}
	g.sendDirect(msg)
	if won {
		g.log.Info("lease acquired", "group", group, "expiry", expiry)
	} else {
		g.log.Debug("lease claim lost", "group", group, "holders", len(holders), "claims", len(claims), "rank", rank)
	}
	return won, nil
}

// Release gives the lease of group back (also one held before a restart
// and taken back from the pool). Releasing a lease not held is harmless.
func (l *Lease) Release(ctx context.Context, group string) error {
	if err := checkLeaseArgs(group, 1, 1); err != nil {
		return err
	}
	g := l.g
	g.leaseMu.Lock()
	defer g.leaseMu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	if g.closed.Load() {
		return ErrClosed
	}
	if err := g.leaseAnnounce(group, leaseReleased, time.Time{}); err != nil {
		return fmt.Errorf("release lease %s: %w", group, err)
	}
	g.log.Info("lease released", "group", group)
	return nil
}

// Holders lists the unexpired holds and live claims of group, by node ID.
func (l *Lease) Holders(group string) []LeaseHolder {
	g := l.g
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.clock.Now()
	ttl := g.leaseTTLLocked(group)
	var out []LeaseHolder
	for name, m := range g.members {
		r := m.leases[group]
		if r == nil || !r.until(ttl).After(now) || (r.phase != leaseHeld && r.phase != leaseClaim) {
			continue
		}
		if !g.countsLocked(m) {
			continue
		}
		lv := m.liveness
		if name == g.name {
			lv = LivenessAlive
		}
		out = append(out, LeaseHolder{NodeID: name, Expiry: r.until(ttl), Claiming: r.phase == leaseClaim, Local: name == g.name, Liveness: lv})
	}
	slices.SortFunc(out, func(a, b LeaseHolder) int { return cmp.Compare(a.NodeID, b.NodeID) })
	return out
}

// holdersLocked returns the other nodes holding an unexpired lease of
// group. A dead holder keeps its slot until expiry (a host rebooting under
// the lease looks exactly like a dead one), or until it has been dead for
// Config.LeaseDeadGrace if that is set.
func (g *Gossip) holdersLocked(group string, now time.Time) []string {
	ttl := g.leaseTTLLocked(group)
	var out []string
	for name, m := range g.members {
		if name == g.name {
			continue
		}
		r := m.leases[group]
		if r == nil || r.phase != leaseHeld || !r.until(ttl).After(now) {
			continue
		}
		if !g.countsLocked(m) {
			continue // not admitted (or no longer), or visiting from another site
		}
		if grace := g.cfg.LeaseDeadGrace; grace > 0 && m.liveness == LivenessDead && now.Sub(m.changed) >= grace {
			continue
		}
		out = append(out, name)
	}
	return out
}

// leaseTTLLocked returns the lease TTL of group: the one this node last
// asked for (the policy's), else Config.LeaseMaxTTL. A remote expiry
// counts at most that long after it arrived.
func (g *Gossip) leaseTTLLocked(group string) time.Duration {
	if ttl, ok := g.leaseTTL[group]; ok {
		return ttl
	}
	return g.cfg.LeaseMaxTTL
}

func (g *Gossip) leaseAnnounce(group string, phase leasePhase, expiry time.Time) error {
	g.mu.Lock()
	msg, err := g.announceLeaseLocked(group, phase, expiry)
	g.mu.Unlock()
	if err != nil {
		return err
	}
	g.sendDirect(msg)
	return nil
}

// sendDirect sends a lease message straight to every live member over UDP,
// besides queueing it for gossip, so claims reach competitors within about
// one round trip.
func (g *Gossip) sendDirect(msg []byte) {
	for _, n := range g.aliveNodes() {
		if err := g.ml.SendBestEffort(n, msg); err != nil {
			g.log.Debug("send lease message", "to", n.Name, "err", err)
		}
	}
}
