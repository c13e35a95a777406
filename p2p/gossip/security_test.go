package gossip

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/patchring/patchring/internal/testutil"
)

// barrier makes node from announce a fresh ring and waits until every
// observer has heard it: packets sent before it have had their chance.
func barrier(t *testing.T, from *node, observers []*node, ring string) {
	t.Helper()
	if err := from.SetLocal(State{Ring: ring}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 20*time.Second, "barrier "+ring, func() error {
		for _, o := range observers {
			if err := sees(o.Gossip, from.NodeID(), func(m Member) bool { return m.State.Ring == ring }); err != nil {
				return err
			}
		}
		return nil
	})
}

func TestOutsidersCannotJoinOrInject(t *testing.T) {
	t.Parallel()
	key := newKey(t)
	pool := startPool(t, 2, key, nil)
	testutil.WaitFor(t, 20*time.Second, "pool converges", allAlive(pool, 2))
	seed := pool[0].LocalAddr()

	for _, tc := range []struct {
		name  string
		tweak func(c *Config)
	}{
		{"wrong key", func(c *Config) { c.Keys = [][]byte{newKey(t)} }},
		{"other fleet label", func(c *Config) { c.Label = "another-fleet" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, 9, key)
			tc.tweak(&cfg)
			out, err := New(cfg, testutil.Logger(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = out.Close() })
			if n, err := out.ml.Join([]string{seed}); err == nil || n != 0 {
				t.Fatalf("outsider joined %d seeds (err %v)", n, err)
			}
			// Inject a signed state straight at the seed.
			if err := out.SetLocal(State{Ring: "evil", PolicyVersion: 1 << 40}); err != nil {
				t.Fatal(err)
			}
			out.mu.Lock()
			msg := out.members[out.name].stateMsg
			out.mu.Unlock()
			to := memberlist.Address{Addr: seed, Name: pool[0].NodeID()}
			if err := out.ml.SendToAddress(to, msg); err != nil {
				t.Fatal(err)
			}
			barrier(t, pool[1], pool[:1], "after-"+tc.name)
			for _, n := range pool {
				if _, ok := n.Member(out.NodeID()); ok {
					t.Fatalf("%s lists the outsider", n.NodeID())
				}
				n.mu.Lock()
				_, heard := n.members[out.NodeID()]
				n.mu.Unlock()
				if heard {
					t.Fatalf("%s accepted the outsider's state", n.NodeID())
				}
				if h := n.PolicyHint(); h.Version >= 1<<40 {
					t.Fatalf("%s took the outsider's policy hint %+v", n.NodeID(), h)
				}
			}
		})
	}
}

func TestLyingMemberOnlyChangesItself(t *testing.T) {
	t.Parallel()
	nodes := startPool(t, 3, newKey(t), nil)
	honest, observer, liar := nodes[0], nodes[1], nodes[2]
	if err := honest.SetLocal(State{Ring: "pilot", PolicyVersion: 5}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 20*time.Second, "honest state heard", func() error {
		return sees(observer.Gossip, honest.NodeID(), func(m Member) bool { return m.State.Ring == "pilot" })
	})
	before, _ := observer.Member(honest.NodeID())

	// 1. The liar lies about itself: that is what it looks like, nothing more.
	if err := liar.SetLocal(State{Ring: "lab", PolicyVersion: 1 << 50, Updates: UpdateSummary{Installed: 999999},
		Content: NewContentIndex([][32]byte{{0xaa}})}); err != nil {
		t.Fatal(err)
	}
	// 2. It forges a state for the honest node, signed with its own key.
	forged := stateBody{Hostname: "pwned", Site: "site-a", State: State{Ring: "broad", PolicyVersion: 1 << 51}}
	e := envelope{typ: msgState, node: honest.id, ltime: 1 << 20, body: forged.marshal()}
	sig, err := liar.priv.Sign(e.signingInput(liar.cfg.Label))
	if err != nil {
		t.Fatal(err)
	}
	e.sig = sig
	liar.stateQ.QueueBroadcast(&broadcast{name: "forged", msg: e.marshal()})
	// 3. It replays the honest node's genuine but older state.
	observer.mu.Lock()
	old := slices.Clone(observer.members[honest.name].stateMsg)
	observer.mu.Unlock()
	if err := honest.SetLocal(State{Ring: "pilot", PolicyVersion: 6}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 20*time.Second, "honest update heard", func() error {
		return sees(observer.Gossip, honest.NodeID(), func(m Member) bool { return m.State.PolicyVersion == 6 })
	})
	liar.stateQ.QueueBroadcast(&broadcast{name: "replay", msg: old})

	testutil.WaitFor(t, 20*time.Second, "forgery rejected and lie visible", func() error {
		if observer.Stats().BadSignature == 0 {
			return fmt.Errorf("forged message not seen yet: %+v", observer.Stats())
		}
		return sees(observer.Gossip, liar.NodeID(), func(m Member) bool {
			return m.State.Ring == "lab" && m.State.Updates.Installed == 999999 && m.State.Content.MayHave([32]byte{0xaa})
		})
	})
	barrier(t, liar, []*node{observer}, "after-lies") // the replay went out before this
	after, _ := observer.Member(honest.NodeID())
	if after.Hostname != before.Hostname || after.State.Ring != "pilot" || after.State.PolicyVersion != 6 {
		t.Fatalf("honest member changed by the liar: %+v", after)
	}
	// The liar's version claim is only a hint, attributed to the liar.
	if h := observer.PolicyHint(); h.Version != 1<<50 || h.From != liar.NodeID() {
		t.Fatalf("policy hint %+v, want the liar's claim attributed to it", h)
	}
}

func TestKeyRotationKeepsPoolTogether(t *testing.T) {
	t.Parallel()
	oldKey, newKey := newKey(t), newKey(t)
	nodes := startPool(t, 3, oldKey, nil)
	testutil.WaitFor(t, 20*time.Second, "pool converges", allAlive(nodes, 3))
	step := func(name string, f func(*node) error, want KeyringInfo) {
		t.Helper()
		for _, n := range nodes {
			if err := f(n); err != nil {
				t.Fatalf("%s on %s: %v", name, n.NodeID(), err)
			}
		}
		testutil.WaitFor(t, 20*time.Second, name+" seen fleet-wide", func() error {
			if err := allAlive(nodes, 3)(); err != nil {
				return err
			}
			for _, o := range nodes {
				for _, m := range o.Members() {
					if m.Keyring.Primary != want.Primary || !slices.Equal(m.Keyring.Installed, want.Installed) {
						return fmt.Errorf("%s sees %s keyring %+v, want %+v", o.NodeID(), m.NodeID, m.Keyring, want)
					}
				}
			}
			return nil
		})
	}
	both := []string{KeyFingerprint(oldKey), KeyFingerprint(newKey)}
	slices.Sort(both)
	step("install", func(n *node) error { return n.InstallKey(newKey) },
		KeyringInfo{Primary: KeyFingerprint(oldKey), Installed: both})
	step("use", func(n *node) error { return n.UseKey(newKey) },
		KeyringInfo{Primary: KeyFingerprint(newKey), Installed: both})
	step("remove", func(n *node) error { return n.RemoveKey(oldKey) },
		KeyringInfo{Primary: KeyFingerprint(newKey), Installed: []string{KeyFingerprint(newKey)}})
	if err := nodes[0].RemoveKey(oldKey); err == nil {
		t.Fatal("removing a key twice succeeded")
	}
	if err := nodes[0].RemoveKey(newKey); err == nil {
		t.Fatal("removing the primary key succeeded")
	}

	// Gossip still flows, a node with the new key joins, one with the old
	// key cannot.
	barrier(t, nodes[2], nodes[:2], "after-rotation")
	joiner := startNode(t, testConfig(t, 5, newKey, nodes[0].LocalAddr()))
	testutil.WaitFor(t, 20*time.Second, "new-key node joins", allAlive(append(slices.Clone(nodes), joiner), 4))
	stale, err := New(testConfig(t, 6, oldKey), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stale.Close() })
	if n, err := stale.ml.Join([]string{nodes[0].LocalAddr()}); err == nil || n != 0 {
		t.Fatalf("old-key node joined (%d, %v)", n, err)
	}
}
