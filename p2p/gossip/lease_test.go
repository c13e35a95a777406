package gossip

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patchring/patchring/internal/testutil"
)

// acquireWithin retries TryAcquire until it succeeds or the deadline passes.
func acquireWithin(ctx context.Context, l *Lease, group string, limit int, ttl time.Duration, d time.Duration) error {
	var failed error // TryAcquire's error ends the wait at once
	err := testutil.PollEvery(d, 30*time.Millisecond, func() error {
		ok, err := l.TryAcquire(ctx, group, limit, ttl)
		switch {
		case err != nil:
			failed = err
		case !ok:
			return fmt.Errorf("lease %s not acquired within %v", group, d)
		}
		return nil
	})
	if failed != nil {
		return failed
	}
	return err
}

func TestLeaseTakeTurns(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	nodes := startPool(t, 3, newKey(t), func(_ int, c *Config) { c.Clock = clock })
	testutil.WaitFor(t, 20*time.Second, "pool converges", allAlive(nodes, 3))

	const group = "site-a/reboot"
	var (
		holding, most atomic.Int32
		mu            sync.Mutex
		order         []string
		wg            sync.WaitGroup
		errs          = make(chan error, len(nodes))
	)
	ctx := t.Context()
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := n.Lease()
			if err := acquireWithin(ctx, l, group, 1, time.Hour, 60*time.Second); err != nil {
				errs <- fmt.Errorf("%s: %w", n.NodeID(), err)
				return
			}
			h := holding.Add(1)
			for {
				m := most.Load()
				if h <= m || most.CompareAndSwap(m, h) {
					break
				}
			}
			mu.Lock()
			order = append(order, n.NodeID())
			mu.Unlock()
			// "Reboot" until every other node sees this node hold the lease,
			// so the others really had to wait for it.
			if err := testutil.Poll(20*time.Second, func() error {
				seen := 0
				for _, o := range nodes {
					hs := o.Lease().Holders(group)
					if len(hs) == 1 && hs[0].NodeID == n.NodeID() && !hs[0].Claiming {
						seen++
					}
				}
				if seen != len(nodes) {
					return fmt.Errorf("%d of %d nodes see it", seen, len(nodes))
				}
				return nil
			}); err != nil {
				errs <- fmt.Errorf("%s: others never saw its lease: %v", n.NodeID(), err)
			}
			holding.Add(-1)
			if err := l.Release(ctx, group); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if m := most.Load(); m != 1 {
		t.Fatalf("%d nodes held the lease at once, limit 1", m)
	}
	if len(order) != 3 {
		t.Fatalf("lease taken by %v, want all 3 nodes in turn", order)
	}
}

func TestLeaseOfDeadHolderExpiresAfterTTL(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	nodes := startPool(t, 3, newKey(t), func(_ int, c *Config) { c.Clock = clock })
	testutil.WaitFor(t, 20*time.Second, "pool converges", allAlive(nodes, 3))
	const group = "site-a/reboot"
	ctx := t.Context()
	holder, other := nodes[2], nodes[1]
	if err := acquireWithin(ctx, holder.Lease(), group, 1, 10*time.Minute, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "hold is visible", func() error {
		if len(other.Lease().Holders(group)) != 1 {
			return errNotYet
		}
		return nil
	})
	holder.kill(t) // dies (or reboots) without releasing
	testutil.WaitFor(t, 20*time.Second, "holder marked dead", func() error {
		return sees(other.Gossip, holder.NodeID(), func(m Member) bool { return m.Liveness == LivenessDead })
	})
	if ok, err := other.Lease().TryAcquire(ctx, group, 1, time.Minute); err != nil || ok {
		t.Fatalf("TryAcquire while the dead holder's lease runs: %v, %v; want false", ok, err)
	}
	clock.Advance(10*time.Minute + time.Second)
	if ok, err := other.Lease().TryAcquire(ctx, group, 1, time.Minute); err != nil || !ok {
		t.Fatalf("TryAcquire after the TTL: %v, %v; want true", ok, err)
	}
	// A second node cannot take the only slot now.
	if ok, err := nodes[0].Lease().TryAcquire(ctx, group, 1, time.Minute); err != nil || ok {
		t.Fatalf("TryAcquire of a taken slot: %v, %v; want false", ok, err)
	}
	// limit 2 leaves room for one more.
	if err := acquireWithin(ctx, nodes[0].Lease(), group, 2, time.Minute, 20*time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestLeaseDeadGraceFreesSlotBeforeTTL(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	nodes := startPool(t, 2, newKey(t), func(_ int, c *Config) {
		c.Clock = clock
		c.LeaseDeadGrace = time.Minute
	})
	testutil.WaitFor(t, 20*time.Second, "pool converges", allAlive(nodes, 2))
	const group = "g"
	ctx := t.Context()
	holder, other := nodes[1], nodes[0]
	if err := acquireWithin(ctx, holder.Lease(), group, 1, time.Hour, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "hold is visible", func() error {
		if len(other.Lease().Holders(group)) != 1 {
			return errNotYet
		}
		return nil
	})
	holder.kill(t)
	testutil.WaitFor(t, 20*time.Second, "holder marked dead", func() error {
		return sees(other.Gossip, holder.NodeID(), func(m Member) bool { return m.Liveness == LivenessDead })
	})
	if ok, err := other.Lease().TryAcquire(ctx, group, 1, time.Minute); err != nil || ok {
		t.Fatalf("TryAcquire within the grace: %v, %v; want false", ok, err)
	}
	clock.Advance(time.Minute + time.Second) // far from the hour-long TTL
	if ok, err := other.Lease().TryAcquire(ctx, group, 1, time.Minute); err != nil || !ok {
		t.Fatalf("TryAcquire after the grace: %v, %v; want true", ok, err)
	}
}

func TestLeaseSurvivesHolderRestart(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	key := newKey(t)
	nodes := startPool(t, 2, key, func(_ int, c *Config) { c.Clock = clock })
	testutil.WaitFor(t, 20*time.Second, "pool converges", allAlive(nodes, 2))
	const group = "g"
	ctx := t.Context()
	if err := acquireWithin(ctx, nodes[1].Lease(), group, 1, time.Hour, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	// The hold itself, not the claim before it: a claim heard without its
	// hold is released by the restarted node (it cannot know it had won).
	testutil.WaitFor(t, 10*time.Second, "hold is visible", func() error {
		if hs := nodes[0].Lease().Holders(group); len(hs) != 1 || hs[0].Claiming {
			return fmt.Errorf("holders seen by the other node: %+v", hs)
		}
		return nil
	})
	cfg := nodes[1].cfg
	nodes[1].kill(t) // reboots under the lease
	cfg.BindPort = 0
	cfg.Seeds = []string{nodes[0].LocalAddr()}
	back := startNode(t, cfg)
	testutil.WaitFor(t, time.Minute, "restarted holder takes its lease back", func() error {
		hs := back.Lease().Holders(group)
		if len(hs) != 1 || !hs[0].Local {
			return fmt.Errorf("holders seen by the restarted node: %+v", hs)
		}
		return nil
	})
	if err := back.Lease().Release(ctx, group); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 20*time.Second, "release is heard", func() error {
		if hs := nodes[0].Lease().Holders(group); len(hs) != 0 {
			return fmt.Errorf("holders: %+v", hs)
		}
		return nil
	})
}

// A node wins the lease, but its hold never reaches the other (lost, or it
// rebooted at once), so the other saw only its claim. Once the winner is
// dead its claim keeps the slot until the TTL, as a hold would: ignoring
// it let a second node take the lease while the first rebooted under it.
func TestLeaseClaimOfGoneWinnerKeepsSlot(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	nodes := startPool(t, 2, newKey(t), func(_ int, c *Config) { c.Clock = clock })
	testutil.WaitFor(t, 20*time.Second, "pool converges", allAlive(nodes, 2))
	const group = "g"
	ctx := t.Context()
	winner, other := nodes[1], nodes[0]
	winnerID := winner.id
	holdLost := func(p *parsedMsg) bool {
		return p.env.typ == msgLease && p.env.node == winnerID && p.lease.Phase == leaseHeld
	}
	other.testDrop.Store(&holdLost)
	if err := acquireWithin(ctx, winner.Lease(), group, 1, time.Hour, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	hs := other.Lease().Holders(group)
	if len(hs) != 1 || !hs[0].Claiming {
		t.Fatalf("holders seen by the other node: %+v; want the winner's claim only", hs)
	}
	winner.kill(t)
	testutil.WaitFor(t, 20*time.Second, "winner marked dead", func() error {
		return sees(other.Gossip, winner.NodeID(), func(m Member) bool { return m.Liveness == LivenessDead })
	})
	if ok, err := other.Lease().TryAcquire(ctx, group, 1, time.Hour); err != nil || ok {
		t.Fatalf("TryAcquire while the dead winner's claim is unexpired: %v, %v; want false", ok, err)
	}
	clock.Advance(time.Hour + time.Second)
	if ok, err := other.Lease().TryAcquire(ctx, group, 1, time.Hour); err != nil || !ok {
		t.Fatalf("TryAcquire after the TTL: %v, %v; want true", ok, err)
	}
}

func TestLeaseArgs(t *testing.T) {
	t.Parallel()
	g, err := New(testConfig(t, 0, newKey(t)), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	for _, tc := range []struct {
		name  string
		group string
		limit int
		ttl   time.Duration
	}{
		{"empty group", "", 1, time.Minute},
		{"long group", string(make([]byte, 65)), 1, time.Minute},
		{"zero limit", "g", 0, time.Minute},
		{"zero ttl", "g", 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := g.Lease().TryAcquire(t.Context(), tc.group, tc.limit, tc.ttl); err == nil {
				t.Fatal("TryAcquire accepted bad arguments")
			}
		})
	}
}

// A member holding the fleet key announces a hold that expires in a
// century, then goes away. The others count it only for the lease TTL
// (issue 11, finding 9): before the cap, the slot stayed taken for good. (A
// liar that stays answers each claim with its hold signed again, a new
// message each time, and keeps the slot as long as it does, as it could by
// announcing its hold again every TTL.)
func TestLeaseRemoteExpiryCappedAtTTL(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	nodes := startPool(t, 2, newKey(t), func(_ int, c *Config) { c.Clock = clock })
	testutil.WaitFor(t, 20*time.Second, "pool converges", allAlive(nodes, 2))
	const group = "site-a/reboot"
	const ttl = 10 * time.Minute
	ctx := t.Context()
	liar, other := nodes[0], nodes[1]
	if err := liar.leaseAnnounce(group, leaseHeld, clock.Now().Add(100*365*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "hold is visible", func() error {
		if len(other.Lease().Holders(group)) != 1 {
			return errNotYet
		}
		return nil
	})
	if hs := other.Lease().Holders(group); hs[0].Expiry.After(clock.Now().Add(time.Hour)) {
		t.Errorf("remote hold counts until %v, want at most the default cap of 1h from %v", hs[0].Expiry, clock.Now())
	}
	liar.kill(t)
	testutil.WaitFor(t, 20*time.Second, "liar marked dead", func() error {
		return sees(other.Gossip, liar.NodeID(), func(m Member) bool { return m.Liveness == LivenessDead })
	})
	if ok, err := other.Lease().TryAcquire(ctx, group, 1, ttl); err != nil || ok {
		t.Fatalf("TryAcquire while the remote hold is within its TTL: %v, %v; want false", ok, err)
	}
	if hs := other.Lease().Holders(group); len(hs) != 1 || hs[0].Expiry.After(clock.Now().Add(ttl)) {
		t.Errorf("holders %+v, want the remote hold capped at now + %v", hs, ttl)
	}
	clock.Advance(ttl + time.Second)
	if ok, err := other.Lease().TryAcquire(ctx, group, 1, ttl); err != nil || !ok {
		t.Fatalf("TryAcquire once the TTL has passed since the remote hold arrived: %v, %v; want true", ok, err)
	}
}

// Two nodes claim the lease at once while every lease message from a to b
// is lost (a lossy link, or one slow beyond any settle time). Before claims
// were answered, b saw only its own claim and took the lease, and a, seeing
// both claims, took it too when its claim ranked first. Now b, without a's
// answer, withdraws, and a takes the lease only if its claim ranks first;
// once the link heals, exactly one holds it.
func TestLeaseSafeWhenClaimsAreLost(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	nodes := startPool(t, 2, newKey(t), func(_ int, c *Config) { c.Clock = clock; c.LeaseSettle = 500 * time.Millisecond })
	testutil.WaitFor(t, 20*time.Second, "pool converges", allAlive(nodes, 2))
	a, b := nodes[0], nodes[1]
	aID := a.id
	lossy := func(p *parsedMsg) bool { return p.env.typ == msgLease && p.env.node == aID }
	ctx := t.Context()
	for round := range 4 {
		group := fmt.Sprintf("site-a/round-%d", round)
		b.testDrop.Store(&lossy)
		var (
			wg  sync.WaitGroup
			won [2]bool
			err [2]error
		)
		for i, n := range []*node{a, b} {
			wg.Go(func() { won[i], err[i] = n.Lease().TryAcquire(ctx, group, 1, time.Hour) })
		}
		wg.Wait()
		if err[0] != nil || err[1] != nil {
			t.Fatalf("round %d: TryAcquire: %v, %v", round, err[0], err[1])
		}
		if won[0] && won[1] {
			t.Fatalf("round %d: both nodes took the lease (limit 1) while a's claims were lost on the way to b", round)
		}

		b.testDrop.Store(nil)
		holders := 0
		for _, n := range []*node{a, b} {
			if err := acquireWithin(ctx, n.Lease(), group, 1, time.Hour, 2*time.Second); err == nil {
				holders++
			}
		}
		if holders != 1 {
			t.Fatalf("round %d: %d nodes took the lease once the link healed, want 1", round, holders)
		}
	}
}
