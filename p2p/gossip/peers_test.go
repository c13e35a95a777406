package gossip

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/patchring/patchring/internal/testutil"
)

// The site's only seed is its first node, which has no seed of its own (as
// when every agent's config names that one node). It restarts, as a
// self-update does: without the members it knew it would stay alone, and
// its health check ("gossip rejoined") would fail. It finds them in its
// peers file.
func TestRestartedOnlySeedRejoinsFromPeersFile(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "gossip-peers")
	nodes := startPool(t, 3, newKey(t), func(i int, c *Config) {
		if i == 0 {
			c.PeersFile = file
		}
	})
	testutil.WaitFor(t, 20*time.Second, "pool converges", allAlive(nodes, 3))
	seed := nodes[0]
	cfg := seed.cfg
	if len(cfg.Seeds) != 0 {
		t.Fatalf("the seed has seeds %v, want none", cfg.Seeds)
	}
	var want []string
	for _, n := range nodes[1:] {
		want = append(want, n.LocalAddr())
	}
	slices.Sort(want)
	// Written while the node runs (every 10 s at most), so that a node
	// killed without a clean stop has it too...
	testutil.WaitFor(t, 3*peersWriteEvery, "the peers file written while running", func() error {
		got, err := readPeersFile(file)
		if err != nil {
			return err
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("peers file holds %v, want %v", got, want)
		}
		return nil
	})
	// ...and once more at the stop.
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	seed.stop(t)

	got, err := readPeersFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("peers file holds %v, want the other members %v", got, want)
	}

	cfg.BindPort = 0
	back := startNode(t, cfg)
	testutil.WaitFor(t, 30*time.Second, "the restarted seed back in the pool", allAlive([]*node{back, nodes[1], nodes[2]}, 3))
}

// A damaged or hostile peers file is read within its bounds; what is not
// an address is ignored by AddSeeds.
func TestPeersFileBounds(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, []byte(strings.Repeat("1.2.3.4:7946\n", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readPeersFile(big); err == nil || !strings.Contains(err.Error(), big) {
		t.Fatalf("oversized peers file: %v, want an error naming it", err)
	}
	many := filepath.Join(dir, "many")
	if err := os.WriteFile(many, []byte("# comment\n"+strings.Repeat("10.0.0.1:7946\n", 100)+"not an address\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := readPeersFile(many)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != maxPeersKept {
		t.Fatalf("%d addresses read, want at most %d", len(got), maxPeersKept)
	}
	if _, err := readPeersFile(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("a missing peers file read without an error")
	}
}

// The file keeps the live members, then those declared dead within
// peersKeepDead (a loaded pool declares a live member dead and it refutes;
// a rebooting one comes back), never one that left or this node itself.
func TestPeersKeptForRejoin(t *testing.T) {
	now := time.Now()
	g := &Gossip{name: "me", members: map[string]*member{
		"me":     {known: true, addr: "10.0.0.9:7946", liveness: LivenessAlive},
		"alive":  {known: true, addr: "10.0.0.1:7946", liveness: LivenessAlive},
		"dead":   {known: true, addr: "10.0.0.2:7946", liveness: LivenessDead, changed: now.Add(-time.Minute)},
		"old":    {known: true, addr: "10.0.0.3:7946", liveness: LivenessDead, changed: now.Add(-2 * peersKeepDead)},
		"left":   {known: true, addr: "10.0.0.4:7946", liveness: LivenessLeft, changed: now},
		"rumour": {addr: "10.0.0.5:7946", liveness: LivenessUnknown},
		"noaddr": {known: true, liveness: LivenessAlive},
	}}
	got := g.livePeerAddrs()
	want := []string{"10.0.0.1:7946", "10.0.0.2:7946"}
	if !slices.Equal(got, want) {
		t.Fatalf("kept %v, want %v", got, want)
	}

	// Over the bound, the live members win and the newest deaths next.
	g.members = map[string]*member{}
	for i := range maxPeersKept {
		g.members[fmt.Sprint("a", i)] = &member{known: true, addr: fmt.Sprintf("10.1.0.%d:7946", i), liveness: LivenessAlive}
	}
	g.members["d"] = &member{known: true, addr: "10.2.0.1:7946", liveness: LivenessDead, changed: now}
	got = g.livePeerAddrs()
	if len(got) != maxPeersKept || slices.Contains(got, "10.2.0.1:7946") {
		t.Fatalf("kept %d addresses (dead member in: %v), want the %d live ones", len(got), slices.Contains(got, "10.2.0.1:7946"), maxPeersKept)
	}
	delete(g.members, "a0")
	delete(g.members, "a1")
	g.members["d2"] = &member{known: true, addr: "10.2.0.2:7946", liveness: LivenessDead, changed: now.Add(-time.Minute)}
	g.members["d3"] = &member{known: true, addr: "10.2.0.3:7946", liveness: LivenessDead, changed: now.Add(-time.Second)}
	got = g.livePeerAddrs()
	if !slices.Contains(got, "10.2.0.1:7946") || !slices.Contains(got, "10.2.0.3:7946") || slices.Contains(got, "10.2.0.2:7946") {
		t.Fatalf("kept %v, want the two newest deaths with the live members", got)
	}
}
