package gossip

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
)

// Lease is an advisory, gossip-based semaphore: at most limit nodes of a
// group (a site, a tag group) hold it at once, e.g. to reboot headless hosts
// a few at a time. Each node announces its own claim, hold or release for a
// group in signed lease messages; a hold lasts until its expiry by the
// injected clock, also when the holder dies or reboots (a rebooting host
// looks dead), unless the holder releases it first.
//
// Acquiring: a node that sees fewer than limit unexpired holders announces a
// claim and waits until every other member that counts has answered it with
// its state as of after the claim (at most Config.LeaseSettle, else the
// claim is withdrawn), then ranks the claims by (Lamport time, node ID); the
// first limit-minus-holders claimants take the slots. Lost or late messages
// withdraw claims, they do not grant extra holds; see docs/GOSSIP.md.
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
// the slots are taken, a competing claim won, or not every member answered
// the claim within Config.LeaseSettle (then the caller tries again later).
// If ctx ends meanwhile the claim is withdrawn and ctx's error returned.
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

	if err := g.awaitLeaseAnswers(ctx, group, claimLT, claim); err != nil {
		g.leaseAnnounce(group, leaseReleased, time.Time{})
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		g.log.Info("lease claim withdrawn", "group", group, "err", err)
		return false, nil
	}

	g.mu.Lock()
	now = g.clock.Now()
	holders := g.holdersLocked(group, now)
	type claimant struct {
		ltime uint64
		name  string
	}
	claims := []claimant{{claimLT, g.name}}
	for name, m := range g.members {
		r := m.leases[group]
		if name == g.name || r == nil || r.phase != leaseClaim || !r.until(ttl).After(now) {
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
// Config.LeaseDeadGrace if that is set. So does a member that died or left
// with an unexpired claim: it may have won and rebooted before its hold
// reached us, and counting it costs a delay where ignoring it could cost
// an extra reboot.
func (g *Gossip) holdersLocked(group string, now time.Time) []string {
	ttl := g.leaseTTLLocked(group)
	var out []string
	for name, m := range g.members {
		if name == g.name {
			continue
		}
		r := m.leases[group]
		if r == nil || !r.until(ttl).After(now) {
			continue
		}
		gone := m.liveness == LivenessDead || m.liveness == LivenessLeft
		if r.phase != leaseHeld && (r.phase != leaseClaim || !gone) {
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

// awaitLeaseAnswers waits until every other member whose lease counts here
// (admitted, this site, known to memberlist and not dead or gone) has told
// this node its state for group as of after our claim, made at Lamport time
// claimLT: a lease message newer than the claim, or a claim of its own
// still in progress (which is ranked with ours). Members answer a claim
// they receive with their own lease message for the group (leaseAnswerLocked);
// the claim is sent again to those that have not answered, every quarter of
// Config.LeaseSettle. It gives up after Config.LeaseSettle.
//
// With every competitor's state as of after our claim, the ranking needs no
// bound on delivery times: two claimants each learn the other's claim (or
// hold) before deciding, so they rank the same claims; see docs/GOSSIP.md.
func (g *Gossip) awaitLeaseAnswers(ctx context.Context, group string, claimLT uint64, claim []byte) error {
	deadline := time.Now().Add(g.cfg.LeaseSettle)
	step := max(g.cfg.LeaseSettle/20, time.Millisecond)
	resend := time.Now().Add(g.cfg.LeaseSettle / 4)
	for {
		missing := g.unanswered(group, claimLT)
		if len(missing) == 0 {
			return nil
		}
		if !time.Now().Before(deadline) {
			names := slices.Sorted(maps.Keys(missing))
			return fmt.Errorf("no answer to the claim from %d member(s) within %v: %s", len(names), g.cfg.LeaseSettle, strings.Join(names, ", "))
		}
		if !time.Now().Before(resend) {
			for name, n := range missing {
				if err := g.ml.SendBestEffort(n, claim); err != nil {
					g.log.Debug("resend lease claim", "to", name, "err", err)
				}
			}
			resend = time.Now().Add(g.cfg.LeaseSettle / 4)
		}
		if !sleepCtx(ctx, step) {
			return ctx.Err()
		}
	}
}

// unanswered returns the members awaitLeaseAnswers still waits for.
func (g *Gossip) unanswered(group string, claimLT uint64) map[string]*memberlist.Node {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.clock.Now()
	ttl := g.leaseTTLLocked(group)
	out := make(map[string]*memberlist.Node)
	for name, m := range g.members {
		if name == g.name || !m.known || !g.countsLocked(m) || m.liveness == LivenessDead || m.liveness == LivenessLeft {
			continue
		}
		r := m.leases[group]
		if r != nil && (r.ltime > claimLT || (r.phase == leaseClaim && r.until(ttl).After(now))) {
			continue
		}
		n := m.node
		out[name] = &n
	}
	return out
}

// leaseAnswerLocked returns this node's answer to member m's claim of group,
// made at Lamport time claimLT, or nil if m's claim does not count here
// (m not admitted, another site's, or dead to us: then m's claim goes
// unanswered and is withdrawn, as ours ignores it).
//
// An answer is newer than the claim, which shows the claimant that this
// node's state is as of after its claim: a claim of ours in progress is the
// one exception (it is ranked with the others). A hold is signed again with
// its expiry, anything else becomes a release. The Lamport clock has
// witnessed the claim, so a message signed now is newer. A new message is
// kept as this node's record but not gossiped: it changes nothing for the
// others.
func (g *Gossip) leaseAnswerLocked(m *member, group string, claimLT uint64) []byte {
	if !m.known || !g.countsLocked(m) || m.liveness == LivenessDead || m.liveness == LivenessLeft {
		return nil
	}
	self := g.members[g.name]
	r := self.leases[group]
	if r != nil && (r.ltime > claimLT || r.phase == leaseClaim) {
		return r.msg
	}
	body := leaseBody{Group: group, Phase: leaseReleased}
	if r != nil && r.phase == leaseHeld && r.expiry.After(g.clock.Now()) {
		body = leaseBody{Group: group, Phase: leaseHeld, Expiry: r.expiry}
	}
	raw, lt, err := g.sign(msgLease, body.marshal())
	if err != nil {
		g.log.Error("answer lease claim", "group", group, "err", err)
		return nil
	}
	if self.leases == nil {
		self.leases = make(map[string]*leaseRecord)
	}
	self.leases[group] = &leaseRecord{ltime: lt, phase: body.Phase, expiry: body.Expiry, msg: raw}
	return raw
}
