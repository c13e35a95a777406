package exchange

import (
	"bytes"
	"context"
	"crypto/rand"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/patchring/patchring/internal/testutil"
	"github.com/patchring/patchring/p2p/content"
)

// nodeTiming is fastTiming for real hosts on loopback.
var nodeTiming = Timing{
	RequestTimeout: 5 * time.Second,
	PieceGrace:     500 * time.Millisecond,
	MinRate:        1 << 20,
	PollInterval:   25 * time.Millisecond,
	RotateAfter:    300 * time.Millisecond,
}

// honestTiming is for tests whose peers are all honest: a piece may take
// as long as the product allows (a loaded CI machine once moved pieces
// among four local nodes slower than nodeTiming's 1 MiB/s, and the
// fetching nodes dropped every honest peer as a trickler).
var honestTiming = Timing{
	RequestTimeout: 10 * time.Second,
	PieceGrace:     2 * time.Second,
	MinRate:        256 << 10,
	PollInterval:   25 * time.Millisecond,
	RotateAfter:    300 * time.Millisecond,
}

func newTestNode(tb testing.TB, cfg Config) *Node {
	tb.Helper()
	if cfg.Store == nil {
		cfg.Store = openTestStore(tb)
	}
	cfg.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
	if cfg.Timing == (Timing{}) {
		cfg.Timing = nodeTiming
	}
	cfg.Logger = testutil.Logger(tb)
	n, err := New(cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(func() {
		if err := n.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return n
}

// mesh makes every node allow every other.
func mesh(nodes ...*Node) {
	var ids []peer.ID
	for _, n := range nodes {
		ids = append(ids, n.ID())
	}
	for _, n := range nodes {
		n.SetAllowed(ids)
	}
}

func infos(nodes ...*Node) []peer.AddrInfo {
	var out []peer.AddrInfo
	for _, n := range nodes {
		out = append(out, n.AddrInfo())
	}
	return out
}

func seedWith(tb testing.TB, n *Node, data []byte) content.Hash {
	tb.Helper()
	h := content.Sum(data)
	if err := n.srv.store.Put(context.Background(), h, int64(len(data)), bytes.NewReader(data)); err != nil {
		tb.Fatal(err)
	}
	return h
}

// asFake turns a node into a misbehaving peer: same host, same allow-list,
// but its protocol handler is a fakePeer.
func asFake(n *Node, fp *fakePeer) {
	for _, id := range []protocol.ID{ProtocolID, ProtocolIDv1} {
		n.h.SetStreamHandler(id, func(s network.Stream) {
			fp.serve(n.ctx, s)
		})
	}
}

func TestNodesShareAPayload(t *testing.T) {
	honest := Config{Timing: honestTiming}
	seed := newTestNode(t, honest)
	a, b, c := newTestNode(t, honest), newTestNode(t, honest), newTestNode(t, honest)
	mesh(seed, a, b, c)
	data := randPayload(t, 8<<20, 42)
	h := seedWith(t, seed, data)
	size := int64(len(data))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := map[peer.ID]error{}
	var mu sync.Mutex
	for _, n := range []*Node{a, b, c} {
		wg.Go(func() {
			err := n.Fetch(ctx, h, size, infos(seed, a, b, c), FetchOptions{})
			mu.Lock()
			errs[n.ID()] = err
			mu.Unlock()
		})
	}
	wg.Wait()
	multi := false
	for _, n := range []*Node{a, b, c} {
		if err := errs[n.ID()]; err != nil {
			t.Fatalf("fetch on %s: %v", n.ID(), err)
		}
		if !bytes.Equal(readBlob(t, n.srv.store, h), data) {
			t.Fatalf("payload on %s differs", n.ID())
		}
		sources := 0
		for _, ps := range n.Peers() {
			if ps.BytesIn > 0 {
				sources++
			}
		}
		if sources > 1 {
			multi = true
		}
		if tot := n.Totals(); tot.FromPeers < size || tot.FromOrigin != 0 || tot.BandwidthOptimization() != 100 {
			t.Errorf("totals on %s: %+v", n.ID(), tot)
		}
	}
	if !multi {
		t.Error("no node fetched from more than one peer")
	}
	if up := seed.Totals().ToPeers; up < size {
		t.Errorf("seed uploaded %d bytes, less than the payload", up)
	}
}

func TestNodeSurvivesBadPeers(t *testing.T) {
	// The seed's upload is capped so that the bad peers certainly get their
	// turn before the seed alone could finish.
	seed := newTestNode(t, Config{UploadRate: 4 << 20})
	corruptN, stopN, trickleN := newTestNode(t, Config{}), newTestNode(t, Config{}), newTestNode(t, Config{})
	me := newTestNode(t, Config{})
	mesh(seed, corruptN, stopN, trickleN, me)
	data := randPayload(t, 8<<20, 43)
	h := seedWith(t, seed, data)
	asFake(corruptN, &fakePeer{data: data, mode: corrupt})
	asFake(stopN, &fakePeer{data: data, mode: stall})
	asFake(trickleN, &fakePeer{data: data, mode: trickle})

	// Watch the store: nothing may appear under h before the fetch returns.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	watchDone := make(chan bool)
	fetchDone := make(chan struct{})
	go func() {
		early := false
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-fetchDone:
				watchDone <- early
				return
			case <-tick.C:
				if me.srv.store.Has(h) {
					select {
					case <-fetchDone:
					default:
						// Has may turn true just before Fetch returns;
						// what matters is it is the verified payload.
						if r, err := me.srv.store.Open(h); err == nil {
							var buf bytes.Buffer
							_, _ = buf.ReadFrom(r)
							_ = r.Close()
							if !bytes.Equal(buf.Bytes(), data) {
								early = true
							}
						}
					}
				}
			}
		}
	}()
	fetchStart := time.Now()
	err := me.Fetch(ctx, h, int64(len(data)), infos(corruptN, stopN, trickleN, seed), FetchOptions{})
	close(fetchDone)
	if bad := <-watchDone; bad {
		t.Fatal("unverified bytes were visible in the store")
	}
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	if !bytes.Equal(readBlob(t, me.srv.store, h), data) {
		t.Fatal("payload differs")
	}
	for _, tc := range []struct {
		name string
		n    *Node
		bad  bool
	}{
		{"corrupt", corruptN, true},
		{"stops mid-transfer", stopN, false},
		{"trickles", trickleN, false},
	} {
		// Avoided from its offence on: a failure's backoff (15 s) may
		// have passed by now when the fetch was slow (a loaded machine),
		// so the avoidance is checked to have begun during the fetch.
		ps, _ := me.Peer(tc.n.ID())
		if tc.bad && ps.BadData == 0 || !tc.bad && ps.Failures == 0 || !ps.AvoidUntil.After(fetchStart.Add(FailureBackoff)) {
			t.Errorf("%s peer: %+v, want it recorded and avoided", tc.name, ps)
		}
	}
	if ps, _ := me.Peer(seed.ID()); ps.BadData != 0 || ps.Failures != 0 {
		t.Errorf("honest seed blamed: %+v", ps)
	}
	if st := seed.UploadLimiter().Stats(); st.Tokens == 0 || st.Waited == 0 {
		t.Errorf("seed upload limiter not consulted: %+v", st)
	}
}

// TestPreviousReleasePeer: a node of the previous release speaks only
// /patchring/blob/1, which has no have-wait request. A newer node still
// fetches with it in its sessions, polls it instead of waiting, and does
// not count it as failing; and it can still open v1 sessions to newer nodes.
func TestPreviousReleasePeer(t *testing.T) {
	seed := newTestNode(t, Config{Timing: honestTiming})
	old := newTestNode(t, Config{Timing: honestTiming})
	me := newTestNode(t, Config{Timing: honestTiming})
	mesh(seed, old, me)
	old.h.RemoveStreamHandler(protocol.ID(ProtocolID))
	data := randPayload(t, 4<<20, 49)
	h := seedWith(t, seed, data)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// The old node holds nothing: my session to it waits for news, which a
	// v1 peer cannot be asked for.
	if err := me.Fetch(ctx, h, int64(len(data)), infos(old, seed), FetchOptions{}); err != nil {
		t.Fatalf("fetch: %v", err)
	}
	if !bytes.Equal(readBlob(t, me.srv.store, h), data) {
		t.Fatal("payload differs")
	}
	if ps, _ := me.Peer(old.ID()); ps.Failures != 0 || ps.BadData != 0 || me.f.sb.avoided(old.ID()) {
		t.Fatalf("v1 peer blamed: %+v", ps)
	}
	// A v1 client talks to a newer node.
	s, err := old.h.NewStream(ctx, me.ID(), protocol.ID(ProtocolIDv1))
	if err != nil {
		t.Fatal(err)
	}
	sess := newSession(s)
	defer sess.close()
	if !sess.v1 {
		t.Fatal("a v1 stream is not marked v1")
	}
	hv, err := sess.have(ctx, 5*time.Second, h, DefaultPieceSize(int64(len(data))))
	if err != nil || hv.Status != HaveFull {
		t.Fatalf("v1 have: %+v, %v", hv, err)
	}
}

func TestNonMemberCannotFetch(t *testing.T) {
	seed := newTestNode(t, Config{})
	member := newTestNode(t, Config{})
	outsider := newTestNode(t, Config{})
	mesh(seed, member)
	// The outsider allows everyone, but the fleet does not know it.
	outsider.SetAllowed([]peer.ID{seed.ID(), member.ID(), outsider.ID()})
	data := randPayload(t, 1<<20, 44)
	h := seedWith(t, seed, data)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if err := outsider.h.Connect(ctx, seed.AddrInfo()); err == nil {
		// The handshake may complete on the dialer's side before the seed's
		// gater closes the connection; a stream must still be impossible.
		if s, err := outsider.h.NewStream(ctx, seed.ID(), protocol.ID(ProtocolID)); err == nil {
			_ = s.Reset()
			t.Fatal("outsider opened a stream to a fleet member")
		}
	}
	err := outsider.Fetch(ctx, h, int64(len(data)), infos(seed), FetchOptions{StallTimeout: 3 * time.Second})
	if err == nil || outsider.srv.store.Has(h) {
		t.Fatalf("outsider fetched the payload: %v", err)
	}
	if err := member.Fetch(ctx, h, int64(len(data)), infos(seed), FetchOptions{}); err != nil {
		t.Fatalf("member fetch: %v", err)
	}
	// Dropping a member from the allow-list cuts it off.
	seed.SetAllowed([]peer.ID{seed.ID()})
	if c := seed.h.Network().ConnsToPeer(member.ID()); len(c) != 0 {
		t.Fatalf("%d connections to a removed member remain", len(c))
	}
	other := randPayload(t, 1<<20, 45)
	oh := seedWith(t, seed, other)
	if err := member.Fetch(ctx, oh, int64(len(other)), infos(seed), FetchOptions{StallTimeout: 3 * time.Second}); err == nil {
		t.Fatal("removed member still fetches")
	}
}

func TestPrivateNetworkKey(t *testing.T) {
	key := make([]byte, 32)
	other := make([]byte, 32)
	_, _ = rand.Read(key)
	_, _ = rand.Read(other)
	seed := newTestNode(t, Config{PSK: key})
	same := newTestNode(t, Config{PSK: key})
	wrong := newTestNode(t, Config{PSK: other})
	mesh(seed, same, wrong)
	data := randPayload(t, 512<<10, 46)
	h := seedWith(t, seed, data)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := same.Fetch(ctx, h, int64(len(data)), infos(seed), FetchOptions{}); err != nil {
		t.Fatalf("fetch with the fleet key: %v", err)
	}
	if err := wrong.h.Connect(ctx, seed.AddrInfo()); err == nil {
		t.Fatal("a node with another private-network key connected")
	}
	if _, err := New(Config{Store: openTestStore(t), PSK: []byte("short")}); err == nil {
		t.Fatal("a short PSK was accepted")
	}
}

func TestUploadRateLimit(t *testing.T) {
	const rate = 4 << 20
	seed := newTestNode(t, Config{UploadRate: rate, Timing: honestTiming})
	me := newTestNode(t, Config{Timing: honestTiming})
	mesh(seed, me)
	data := randPayload(t, 2<<20, 47)
	h := seedWith(t, seed, data)
	start := time.Now()
	if err := me.Fetch(context.Background(), h, int64(len(data)), infos(seed), FetchOptions{}); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	st := seed.UploadLimiter().Stats()
	if st.Tokens < int64(len(data)) {
		t.Fatalf("limiter admitted %d bytes, less than the %d uploaded: not consulted for every byte", st.Tokens, len(data))
	}
	// A token bucket can never be faster than (bytes - burst) / rate; this
	// lower bound holds however slow the machine is.
	floor := time.Duration(float64(st.Tokens-int64(st.Burst)) / rate * float64(time.Second))
	// (How long the limiter itself waited depends on how fast the machine
	// moved the bytes, so only the floor is asserted.)
	if elapsed < floor {
		t.Fatalf("uploaded %d bytes in %v (limiter waited %v); the cap allows no less than %v", st.Tokens, elapsed, st.Waited, floor)
	}
}

func TestFetchFromOriginWhenNoPeerHasIt(t *testing.T) {
	me := newTestNode(t, Config{WANRate: 8 << 20})
	empty := newTestNode(t, Config{})
	mesh(me, empty)
	data := randPayload(t, 1<<20, 48)
	h := content.Sum(data)
	o := &memOrigin{data: data}
	err := me.Fetch(context.Background(), h, int64(len(data)), infos(empty), FetchOptions{Origin: o.open})
	if err != nil {
		t.Fatal(err)
	}
	tot := me.Totals()
	if tot.FromOrigin != int64(len(data)) || tot.FromPeers != 0 || tot.BandwidthOptimization() != 0 {
		t.Fatalf("totals: %+v", tot)
	}
	if st := me.WANLimiter().Stats(); st.Tokens < int64(len(data)) {
		t.Fatalf("WAN limiter admitted %d bytes, want >= %d", st.Tokens, len(data))
	}
	if _, err := New(Config{}); err == nil {
		t.Fatal("New without a store succeeded")
	}
	if err := me.Fetch(context.Background(), h, int64(len(data)), nil, FetchOptions{}); err != nil {
		t.Fatal("fetch of a held payload failed")
	}
}

// TestOriginFirstWaitsForHolders: a fetcher told to use the origin at once
// (OriginFirst: it is the site's WAN fetcher, maybe taking over from a dead
// one) with a holder of the whole payload among its peers gets it all
// from the holder: the origin waits for the holder's answer instead of
// reading the first pieces across the WAN before it comes.
func TestOriginFirstWaitsForHolders(t *testing.T) {
	me, holder, seed := newTestNode(t, Config{}), newTestNode(t, Config{}), newTestNode(t, Config{})
	mesh(me, holder, seed)
	data := randPayload(t, 4<<20, 49)
	h := seedWith(t, seed, data)
	// The holder got it from a peer, so it shows every piece (a node that
	// brought a payload in shows a few at a time until the site has it).
	if err := holder.Fetch(context.Background(), h, int64(len(data)), infos(seed), FetchOptions{}); err != nil {
		t.Fatal(err)
	}
	o := &memOrigin{data: data}
	if err := me.Fetch(context.Background(), h, int64(len(data)), infos(holder), FetchOptions{Origin: o.open, OriginFirst: true}); err != nil {
		t.Fatal(err)
	}
	if tot := me.Totals(); tot.FromOrigin != 0 || tot.FromPeers != int64(len(data)) || o.calls.Load() != 0 {
		t.Fatalf("origin asked %d times; totals %+v; want everything from the holder", o.calls.Load(), tot)
	}
}
