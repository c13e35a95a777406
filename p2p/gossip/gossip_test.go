package gossip

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/patchring/patchring/internal/testutil"
)

func TestConvergeAndPropagate(t *testing.T) {
	t.Parallel()
	nodes := startPool(t, 5, newKey(t), nil)
	content := NewContentIndex([][32]byte{{1}, {2}, {3}})
	for i, n := range nodes {
		err := n.SetLocal(State{
			Ring:          fmt.Sprintf("ring-%d", i),
			Tags:          []string{"desk", fmt.Sprintf("t%d", i)},
			Addrs:         []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", 4000+i)},
			PolicyVersion: 7,
			Updates:       UpdateSummary{Pending: i},
			Reboot:        RebootState{Required: i == 2, Since: time.Unix(1700000000, 0)},
			Content:       content,
			AgentVersion:  "1.0.0",
		})
		if err != nil {
			t.Fatalf("SetLocal: %v", err)
		}
	}
	sub := nodes[4].Subscribe(64)
	testutil.WaitFor(t, 20*time.Second, "pool converges", func() error {
		if err := allAlive(nodes, 5)(); err != nil {
			return err
		}
		for _, a := range nodes {
			for i, b := range nodes {
				err := sees(a.Gossip, b.NodeID(), func(m Member) bool {
					return m.State.Ring == fmt.Sprintf("ring-%d", i) && m.Hostname == fmt.Sprintf("host-%d", i) &&
						m.Site == "site-a" && m.State.Updates.Pending == i && m.State.Content.MayHave([32]byte{2}) &&
						len(m.State.Addrs) == 1 && m.State.Reboot.Required == (i == 2)
				})
				if err != nil {
					return err
				}
			}
		}
		return nil
	})

	// A state update propagates, and is heard as a policy hint.
	if err := nodes[1].SetLocal(State{Ring: "ring-1", PolicyVersion: 42}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "update propagates", func() error {
		for _, n := range nodes {
			if err := sees(n.Gossip, nodes[1].NodeID(), func(m Member) bool {
				return m.State.PolicyVersion == 42 && m.State.Content.Len() == 0
			}); err != nil {
				return err
			}
			if n != nodes[1] {
				if h := n.PolicyHint(); h.Version != 42 || h.From != nodes[1].NodeID() {
					return fmt.Errorf("%s: policy hint %+v", n.NodeID(), h)
				}
			}
		}
		return nil
	})
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev := <-sub.Events():
			if ev.Kind == EventPolicyVersion && ev.PolicyVersion == 42 {
				if ev.Member.NodeID != nodes[1].NodeID() {
					t.Fatalf("policy event from %s, want %s", ev.Member.NodeID, nodes[1].NodeID())
				}
				return
			}
		case <-deadline:
			t.Fatal("no policy-version event for 42")
		}
	}
}

func TestLeaveAndDeathAreMarked(t *testing.T) {
	t.Parallel()
	nodes := startPool(t, 4, newKey(t), nil)
	testutil.WaitFor(t, 20*time.Second, "pool converges", allAlive(nodes, 4))
	sub := nodes[0].Subscribe(16)
	leaver, victim := nodes[2], nodes[3]
	leaver.stop(t) // graceful: Run's context ends
	victim.kill(t) // abrupt: no leave message
	testutil.WaitFor(t, 20*time.Second, "leave and death marked", func() error {
		for _, n := range nodes[:2] {
			if err := sees(n.Gossip, leaver.NodeID(), func(m Member) bool { return m.Liveness == LivenessLeft }); err != nil {
				return err
			}
			if err := sees(n.Gossip, victim.NodeID(), func(m Member) bool {
				return m.Liveness == LivenessDead && !m.LastSeen.IsZero()
			}); err != nil {
				return err
			}
		}
		return nil
	})
	// A loaded machine may also let a live member be suspected, declared
	// dead and refute it (memberlist does so): that member's leave event
	// is true, so only the two wanted ones are counted.
	leaves := map[string]bool{}
	deadline := time.After(10 * time.Second)
	for !leaves[leaver.NodeID()] || !leaves[victim.NodeID()] {
		select {
		case ev := <-sub.Events():
			if ev.Kind == EventLeave {
				leaves[ev.Member.NodeID] = true
			}
		case <-deadline:
			t.Fatalf("leave events for %v, want %s (left) and %s (killed)", leaves, leaver.NodeID(), victim.NodeID())
		}
	}
}

func TestRestartedNodeIsHeardAgain(t *testing.T) {
	t.Parallel()
	key := newKey(t)
	nodes := startPool(t, 3, key, nil)
	for i := 0; i < 5; i++ { // push node 2's Lamport time up
		if err := nodes[2].SetLocal(State{Ring: "old", PolicyVersion: uint64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	testutil.WaitFor(t, 20*time.Second, "old state heard", func() error {
		return sees(nodes[0].Gossip, nodes[2].NodeID(), func(m Member) bool { return m.State.PolicyVersion == 4 })
	})
	cfg := nodes[2].cfg
	nodes[2].kill(t)
	cfg.BindPort = 0
	cfg.Seeds = []string{nodes[0].LocalAddr()}
	restarted := startNode(t, cfg) // fresh Lamport clock, same identity
	if err := restarted.SetLocal(State{Ring: "new", PolicyVersion: 1}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 20*time.Second, "new state wins over the pre-restart one", func() error {
		for _, n := range nodes[:2] {
			if err := sees(n.Gossip, restarted.NodeID(), func(m Member) bool {
				return m.State.Ring == "new" && m.Liveness == LivenessAlive
			}); err != nil {
				return err
			}
		}
		return nil
	})
}

func TestRunTwiceAndClose(t *testing.T) {
	t.Parallel()
	n := startNode(t, testConfig(t, 0, newKey(t)))
	testutil.WaitFor(t, 5*time.Second, "running", func() error {
		if !n.running.Load() {
			return errNotYet
		}
		return nil
	})
	if err := n.Run(context.Background()); err != ErrAlreadyRunning {
		t.Fatalf("second Run: %v, want ErrAlreadyRunning", err)
	}
	n.kill(t)
	if err := n.SetLocal(State{}); err != ErrClosed {
		t.Fatalf("SetLocal after Close: %v, want ErrClosed", err)
	}
	if _, err := n.Lease().TryAcquire(context.Background(), "g", 1, time.Minute); err != ErrClosed {
		t.Fatalf("TryAcquire after Close: %v, want ErrClosed", err)
	}
}

// TestMissedStateIsPulled: a state update whose broadcast never left its
// node (the queue dropped it) reaches a member that saw the newer state
// announced in the node's meta: it asks the node for it once the pull is
// due, without waiting for a push/pull.
func TestMissedStateIsPulled(t *testing.T) {
	t.Parallel()
	nodes := startPool(t, 2, newKey(t), func(i int, c *Config) {
		c.PushPullInterval = time.Hour // only the join's exchange
		if i == 0 {
			// The updating node gossips slowly, so its broadcast is
			// still queued when the test drops it.
			c.GossipInterval, c.ProbeInterval, c.ProbeTimeout = time.Second, time.Second, 500*time.Millisecond
		}
	})
	a, b := nodes[0], nodes[1]
	testutil.WaitFor(t, 20*time.Second, "pool converges", allAlive(nodes, 2))
	if err := a.SetLocal(State{Ring: "ring-a", PolicyVersion: 9}); err != nil {
		t.Fatal(err)
	}
	a.stateQ.Reset()
	testutil.WaitFor(t, 15*time.Second, "state pulled", func() error {
		return sees(b.Gossip, a.NodeID(), func(m Member) bool { return m.State.PolicyVersion == 9 })
	})
}

// TestPolicyVersionPushed: gossip rounds, probes and push/pull are an hour
// apart, so a new policy version can reach the others only by the push
// each node makes when it first learns one. Six nodes, every one seeded
// with all before it (so each knows all others from its joins): the push
// fan-out (7 in a pool of 6) covers every other node.
func TestPolicyVersionPushed(t *testing.T) {
	t.Parallel()
	key := newKey(t)
	var nodes []*node
	for i := range 6 {
		var seeds []string
		for _, n := range nodes {
			seeds = append(seeds, n.LocalAddr())
		}
		cfg := testConfig(t, i, key, seeds...)
		cfg.GossipInterval, cfg.ProbeInterval, cfg.ProbeTimeout, cfg.PushPullInterval = time.Hour, time.Hour, time.Minute, time.Hour
		nodes = append(nodes, startNode(t, cfg))
	}
	testutil.WaitFor(t, 30*time.Second, "every node knows the others from its joins", allAlive(nodes, len(nodes)))

	if err := nodes[0].SetLocal(State{PolicyVersion: 42}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 30*time.Second, "the policy version is pushed to every node", func() error {
		for _, n := range nodes[1:] {
			if h := n.PolicyHint(); h.Version != 42 || h.From != nodes[0].NodeID() {
				return fmt.Errorf("%s: policy hint %+v", n.NodeID(), h)
			}
		}
		return nil
	})
	if s := nodes[0].Stats(); s.Pushed != 5 {
		t.Errorf("origin pushed %d messages, want 5 (every other node: pushFanout(6) = %d)", s.Pushed, pushFanout(6))
	}
	// A state change that keeps the policy version is not pushed.
	before := nodes[0].Stats().Pushed
	if err := nodes[0].SetLocal(State{PolicyVersion: 42, Ring: "pilot"}); err != nil {
		t.Fatal(err)
	}
	if got := nodes[0].Stats().Pushed; got != before {
		t.Errorf("a state change without a new policy version pushed %d messages", got-before)
	}
}

func TestPushFanout(t *testing.T) {
	for _, c := range []struct{ n, want int }{{0, 5}, {1, 5}, {6, 7}, {20, 8}, {200, 11}, {1000, 12}, {10000, 15}} {
		if got := pushFanout(c.n); got != c.want {
			t.Errorf("pushFanout(%d) = %d, want %d", c.n, got, c.want)
		}
	}
}

// TestPullsCapped: when many members' metas show states newer than the
// ones gossip has brought (a whole site starting at once), a pull round
// asks at most maxPullsPerRound of them, and the others wait one more
// delay, so that gossip can bring theirs meanwhile; a member whose state
// arrived is not asked.
func TestPullsCapped(t *testing.T) {
	g, err := New(testConfig(t, 0, newKey(t)), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	const members = 10
	now := time.Now()
	delay := 2 * time.Second
	g.mu.Lock()
	defer g.mu.Unlock()
	for i := range members {
		name := fmt.Sprintf("m%02d", i)
		g.members[name] = &member{name: name, known: true, admitted: true, liveness: LivenessAlive, meta: nodeMeta{stateLTime: 5}, stateLT: 1}
		g.pulls[name] = now.Add(-delay)
	}
	asked := map[string]bool{}
	pulls, next := g.duePullsLocked(now, delay)
	if len(pulls) != maxPullsPerRound || !next.Equal(now.Add(delay)) {
		t.Fatalf("first round: %d pulls, next at %v; want %d, next one delay on", len(pulls), next.Sub(now), maxPullsPerRound)
	}
	for _, p := range pulls {
		asked[p] = true
	}
	// Before the delay is over nothing more is due.
	if pulls, _ := g.duePullsLocked(now.Add(delay/2), delay); len(pulls) != 0 {
		t.Fatalf("pulls %v before the deferred ones are due", pulls)
	}
	// Gossip brings one of the waiting states meanwhile.
	var arrived string
	for name := range g.pulls {
		arrived = name
		break
	}
	g.members[arrived].stateLT = 5
	pulls, _ = g.duePullsLocked(now.Add(delay), delay)
	if len(pulls) != maxPullsPerRound {
		t.Fatalf("second round: %d pulls, want %d", len(pulls), maxPullsPerRound)
	}
	for _, p := range pulls {
		if asked[p] || p == arrived {
			t.Fatalf("second round asks %s again (or one whose state arrived)", p)
		}
		asked[p] = true
	}
	pulls, next = g.duePullsLocked(now.Add(2*delay), delay)
	if len(pulls) != members-2*maxPullsPerRound-1 || !next.IsZero() || len(g.pulls) != 0 {
		t.Fatalf("last round: %d pulls (want %d), next %v, %d left waiting", len(pulls), members-2*maxPullsPerRound-1, next, len(g.pulls))
	}
}
