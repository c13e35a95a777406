package gossip

import (
	"fmt"
	"testing"
	"time"

	"github.com/patchring/patchring/internal/testutil"
)

// TestAddSeedsJoinsAndMergesPools: nodes without configured seeds join
// candidates offered by discovery; two pools formed separately merge when
// a member of one hears of a member of the other; a node with another
// fleet key is offered but never joins, and the offering node backs off.
func TestAddSeedsJoinsAndMergesPools(t *testing.T) {
	key := newKey(t)
	var nodes []*node
	for i := range 4 {
		nodes = append(nodes, startNode(t, testConfig(t, i, key)))
	}
	outsider := startNode(t, testConfig(t, 9, newKey(t)))
	a, b, c, d := nodes[0], nodes[1], nodes[2], nodes[3]

	a.AddSeeds(b.LocalAddr())
	d.AddSeeds(c.LocalAddr())
	testutil.WaitFor(t, 10*time.Second, "two pools of two", allAlive(nodes, 2))

	// a is not alone, yet it contacts a candidate that is not a member.
	a.AddSeeds(c.LocalAddr(), outsider.LocalAddr())
	testutil.WaitFor(t, 15*time.Second, "one pool of four", allAlive(nodes, 4))

	testutil.WaitFor(t, 10*time.Second, "a backs off from the outsider", func() error {
		a.seedMu.Lock()
		defer a.seedMu.Unlock()
		s := a.discovered[outsider.LocalAddr()]
		if s == nil || s.fails == 0 || !s.next.After(time.Now()) {
			return fmt.Errorf("outsider candidate: %+v", s)
		}
		return nil
	})
	for _, n := range append(nodes, outsider) {
		for _, m := range n.Members() {
			if (n == outsider) != (m.NodeID == outsider.NodeID()) {
				t.Errorf("%s lists %s (outsider %s)", n.NodeID(), m.NodeID, outsider.NodeID())
			}
		}
	}
}

func TestAddSeedsIsBounded(t *testing.T) {
	g, err := New(testConfig(t, 0, newKey(t)), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })

	g.AddSeeds("not an address", "10.0.0.1", "10.0.0.1:0", "0.0.0.0:7946", "[fe80::1%eth0]:7946", g.LocalAddr())
	if n := len(g.discovered); n != 0 {
		t.Fatalf("kept %d of only invalid or own addresses: %v", n, g.discovered)
	}
	g.AddSeeds("[::ffff:10.0.0.1]:7946", "10.0.0.1:7946")
	if _, ok := g.discovered["10.0.0.1:7946"]; !ok || len(g.discovered) != 1 {
		t.Fatalf("mapped and plain IPv4 address: want one entry 10.0.0.1:7946, got %v", g.discovered)
	}
	for i := range 3 * maxDiscovered {
		g.AddSeeds(fmt.Sprintf("10.1.%d.%d:7946", i/250, i%250+1))
	}
	if n := len(g.discovered); n != maxDiscovered {
		t.Fatalf("remembered %d candidates, want the cap %d", n, maxDiscovered)
	}
	last := fmt.Sprintf("10.1.%d.%d:7946", (3*maxDiscovered-1)/250, (3*maxDiscovered-1)%250+1)
	if _, ok := g.discovered[last]; !ok {
		t.Errorf("the newest candidate %s was evicted", last)
	}
}
