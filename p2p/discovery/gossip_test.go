package discovery

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/patchring/patchring/internal/testutil"
	"github.com/patchring/patchring/p2p/gossip"
)

var _ Sink = (*gossip.Gossip)(nil)

// startGossip runs a gossip node without seeds on 127.0.0.x and a beacon
// beside it that announces it to targets.
func startGossip(t testing.TB, x, port int, key []byte, targets []netip.Addr) (*gossip.Gossip, *Beacon) {
	t.Helper()
	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ip := netip.AddrFrom4([4]byte{127, 0, 0, byte(x)})
	g, err := gossip.New(gossip.Config{
		Identity: priv, Hostname: fmt.Sprintf("host-%d", x), Site: "site-a",
		BindAddr: ip.String(), Keys: [][]byte{key}, Label: testLabel,
		ProbeInterval: 100 * time.Millisecond, ProbeTimeout: 50 * time.Millisecond,
		GossipInterval: 20 * time.Millisecond, PushPullInterval: time.Second, JoinJitter: time.Millisecond,
	}, nil)
	if err != nil {
		t.Fatalf("gossip.New: %v", err)
	}
	gaddr, err := netip.ParseAddrPort(g.LocalAddr())
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Config{
		NodeID: g.NodeID(), Label: testLabel, Keys: func() [][]byte { return [][]byte{key} },
		Gossip: gaddr, Port: port, ListenAddr: ip, Targets: targets, Interval: 50 * time.Millisecond, Sink: g,
	}, nil)
	if err != nil {
		g.Close()
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() { done <- g.Run(ctx) }()
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		for range 2 {
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	})
	return g, b
}

// TestBeaconsFormOnePool: gossip nodes without any seed form one pool from
// each other's beacons; a node of another fleet (another key) beaconing
// on the same port is never offered and never becomes a member.
func TestBeaconsFormOnePool(t *testing.T) {
	port := freeUDPPort(t)
	var targets []netip.Addr
	for x := 1; x <= 4; x++ {
		targets = append(targets, netip.AddrFrom4([4]byte{127, 0, 0, byte(x)}))
	}
	var nodes []*gossip.Gossip
	var beacons []*Beacon
	for x := 1; x <= 3; x++ {
		g, b := startGossip(t, x, port, testKey, targets)
		nodes, beacons = append(nodes, g), append(beacons, b)
	}
	outsider, _ := startGossip(t, 4, port, otherKey, targets)

	testutil.WaitFor(t, 15*time.Second, "every node seeing 3 alive", func() error {
		for _, g := range nodes {
			alive := 0
			for _, m := range g.Members() {
				if m.Liveness == gossip.LivenessAlive {
					alive++
				}
			}
			if alive != 3 {
				return fmt.Errorf("%s sees %d alive", g.NodeID(), alive)
			}
		}
		return nil
	})
	for i, g := range nodes {
		if _, ok := g.Member(outsider.NodeID()); ok {
			t.Errorf("node %d lists the outsider", i)
		}
		if st := beacons[i].Stats(); st.BadAuth == 0 || st.Accepted == 0 {
			t.Errorf("node %d beacon stats %+v", i, st)
		}
	}
	if n := len(outsider.Members()); n != 1 {
		t.Errorf("the outsider lists %d members", n)
	}
}
