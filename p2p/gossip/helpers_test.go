package gossip

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/patchring/patchring/internal/testutil"
)

// fakeClock is a settable clock shared by the nodes of a test.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newKey(t testing.TB) []byte {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func newIdentity(t testing.TB) crypto.PrivKey {
	t.Helper()
	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

// testConfig is a fast LAN-like config on loopback.
func testConfig(t testing.TB, i int, key []byte, seeds ...string) Config {
	t.Helper()
	return Config{
		Identity:         newIdentity(t),
		Hostname:         fmt.Sprintf("host-%d", i),
		Site:             "site-a",
		BindAddr:         "127.0.0.1",
		Seeds:            seeds,
		Keys:             [][]byte{key},
		Label:            "fleet-test",
		ProbeInterval:    100 * time.Millisecond,
		ProbeTimeout:     50 * time.Millisecond,
		GossipInterval:   20 * time.Millisecond,
		PushPullInterval: time.Second,
		SuspicionMult:    2,
		JoinJitter:       time.Millisecond,
		LeaseSettle:      time.Second,
	}
}

// node is a running Gossip in a test.
type node struct {
	*Gossip
	cancel context.CancelFunc
	done   chan error
}

// stop cancels Run (a graceful leave) and waits for it.
func (n *node) stop(t testing.TB) {
	t.Helper()
	n.cancel()
	select {
	case err := <-n.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("Run of %s did not return", n.NodeID())
	}
	n.done = nil
}

// kill stops the node abruptly (no leave message) and waits for Run.
func (n *node) kill(t testing.TB) {
	t.Helper()
	if err := n.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	select {
	case <-n.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("Run of %s did not return after Close", n.NodeID())
	}
	n.done = nil
}

func startNode(t testing.TB, cfg Config) *node {
	t.Helper()
	g, err := New(cfg, testutil.Logger(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &node{Gossip: g, cancel: cancel, done: make(chan error, 1)}
	go func() { n.done <- g.Run(ctx) }()
	t.Cleanup(func() {
		if n.done != nil {
			n.kill(t)
		}
		cancel()
	})
	return n
}

// startPool starts count nodes; all but the first use the first as seed.
func startPool(t testing.TB, count int, key []byte, tweak func(i int, c *Config)) []*node {
	t.Helper()
	var nodes []*node
	for i := range count {
		var seeds []string
		if i > 0 {
			seeds = []string{nodes[0].LocalAddr()}
		}
		cfg := testConfig(t, i, key, seeds...)
		if tweak != nil {
			tweak(i, &cfg)
		}
		nodes = append(nodes, startNode(t, cfg))
	}
	return nodes
}

// sees reports whether g sees member id alive with a state satisfying ok.
func sees(g *Gossip, id string, ok func(Member) bool) error {
	m, found := g.Member(id)
	if !found {
		return fmt.Errorf("%s does not know %s", g.NodeID(), id)
	}
	if ok != nil && !ok(m) {
		return fmt.Errorf("%s sees %s as %+v", g.NodeID(), id, m)
	}
	return nil
}

func allAlive(nodes []*node, count int) func() error {
	return func() error {
		for _, n := range nodes {
			alive := 0
			for _, m := range n.Members() {
				if m.Liveness == LivenessAlive {
					alive++
				}
			}
			if alive != count {
				return fmt.Errorf("%s sees %d alive members, want %d", n.NodeID(), alive, count)
			}
			if live := n.LiveMembers(); live != count {
				return fmt.Errorf("%s counts %d live members, lists %d", n.NodeID(), live, count)
			}
		}
		return nil
	}
}

var errNotYet = errors.New("not yet")
