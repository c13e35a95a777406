package exchange

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/patchring/patchring/internal/testutil"
	"github.com/patchring/patchring/p2p/content"
)

// TestAdmissionSessions: within its burst a peer's sessions start at
// once; over the rate they wait for their own tokens (the tarpit) while
// another peer's start at once; past MaxWaiting or SessionWait they are
// refused with errRate.
func TestAdmissionSessions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := newAdmission(PeerLimits{SessionRate: 10, SessionBurst: 2, SessionWait: time.Second, MaxWaiting: 3}, time.Now)
		ctx := context.Background()
		flood, honest := peer.ID("flood"), peer.ID("honest")
		for i := range 2 {
			if th, err := a.session(ctx, flood); th || err != nil {
				t.Fatalf("session %d in the burst: throttled %v, %v", i, th, err)
			}
		}
		start := time.Now()
		if th, err := a.session(ctx, flood); !th || err != nil {
			t.Fatalf("session over the burst: throttled %v, %v; want a wait", th, err)
		}
		if took := time.Since(start); took != 100*time.Millisecond {
			t.Errorf("waited %v, want 100ms (one token at 10/s)", took)
		}

		// The flooder fills its waiting room; the honest peer is not held
		// back, and a further flooding session is refused.
		var wg sync.WaitGroup
		results := make(chan error, 3)
		for range 3 {
			wg.Go(func() { _, err := a.session(ctx, flood); results <- err })
		}
		synctest.Wait() // all three wait
		if th, err := a.session(ctx, honest); th || err != nil {
			t.Fatalf("honest session during the flood: throttled %v, %v", th, err)
		}
		if _, err := a.session(ctx, flood); !errors.Is(err, errRate) {
			t.Fatalf("a fourth waiting session: %v, want errRate", err)
		}
		wg.Wait()
		close(results)
		for err := range results {
			if err != nil {
				t.Errorf("a waiting session: %v", err)
			}
		}

		// A wait longer than SessionWait is refused at once.
		a = newAdmission(PeerLimits{SessionRate: 0.5, SessionBurst: 1, SessionWait: time.Second, MaxWaiting: 8}, time.Now)
		if _, err := a.session(ctx, flood); err != nil {
			t.Fatal(err)
		}
		start = time.Now()
		if _, err := a.session(ctx, flood); !errors.Is(err, errRate) || time.Since(start) != 0 {
			t.Fatalf("session due in 2s: %v after %v, want errRate at once", err, time.Since(start))
		}
		// The refusal did not take the token: the next is due at 2 s.
		time.Sleep(2 * time.Second)
		if th, err := a.session(ctx, flood); th || err != nil {
			t.Fatalf("after the interval: throttled %v, %v", th, err)
		}
	})
}

// TestAdmissionRequests: requests over the burst are paced at the rate,
// and a cancelled wait ends at once.
func TestAdmissionRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := newAdmission(PeerLimits{RequestRate: 100, RequestBurst: 10}, time.Now)
		p := peer.ID("p")
		start := time.Now()
		throttled := 0
		for range 110 {
			th, err := a.request(context.Background(), p)
			if err != nil {
				t.Fatal(err)
			}
			if th {
				throttled++
			}
		}
		if took := time.Since(start); took != time.Second {
			t.Errorf("110 requests at 100/s after a burst of 10 took %v, want 1s", took)
		}
		if throttled != 100 {
			t.Errorf("%d requests waited, want 100", throttled)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := a.request(ctx, p); !errors.Is(err, context.Canceled) {
			t.Errorf("request with a cancelled context: %v", err)
		}
	})
}

// TestManifestRehashCap: a flood of manifest requests costs at most
// maxRehash hashes of a payload in odd piece sizes per window, one in its
// default size however often it is asked for, and the cap does not touch
// the default size.
func TestManifestRehashCap(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	c := newManifestCache(manifestCacheBytes)
	c.now = func() time.Time { return now }
	h := content.Sum([]byte("payload"))
	const size = 16 << 20
	computed := 0
	compute := func(context.Context) ([]content.Hash, error) {
		computed++
		return make([]content.Hash, 4), nil
	}
	ctx := context.Background()
	refused := 0
	for i := range 100 {
		_, err := c.get(ctx, h, size, MinPieceSize+1+int64(i), compute)
		switch {
		case errors.Is(err, errRehash):
			refused++
		case err != nil:
			t.Fatal(err)
		}
	}
	if computed != maxRehash || refused != 100-maxRehash {
		t.Errorf("100 odd piece sizes: %d hashes, %d refused; want %d and %d", computed, refused, maxRehash, 100-maxRehash)
	}
	computed = 0
	for range 100 {
		if _, err := c.get(ctx, h, size, DefaultPieceSize(size), compute); err != nil {
			t.Fatalf("default piece size after the flood: %v", err)
		}
	}
	if computed != 1 {
		t.Errorf("100 asks in the default piece size: %d hashes, want 1", computed)
	}
	// A computation that got no slot hashed nothing and is not counted.
	computed = 0
	now = now.Add(rehashWindow)
	busy := func(context.Context) ([]content.Hash, error) { return nil, errAllBusy }
	for i := range 10 {
		if _, err := c.get(ctx, h, size, 2*MinPieceSize+1+int64(i), busy); !errors.Is(err, errBusy) {
			t.Fatalf("busy computation: %v", err)
		}
	}
	for i := range maxRehash {
		if _, err := c.get(ctx, h, size, 3*MinPieceSize+int64(i), compute); err != nil {
			t.Fatalf("after the window and busy refusals: %v", err)
		}
	}
	if computed != maxRehash {
		t.Errorf("after the window: %d hashes, want %d", computed, maxRehash)
	}
}

// TestFloodingPeerWaitsHonestPeerDoesNot: over real hosts, a member that
// opens sessions faster than its rate has them held (then refused once
// its waiting room is full, counted as refused for rate), while an
// honest member's download from the same node, started during the flood,
// has none of its sessions throttled and completes.
func TestFloodingPeerWaitsHonestPeerDoesNot(t *testing.T) {
	// One token every 5 s after a burst of 4: the flood's waiting sessions
	// wait 5, 10 and 15 s, long enough to watch them.
	victim := newTestNode(t, Config{PeerLimits: PeerLimits{SessionRate: 0.2, SessionBurst: 4, SessionWait: 30 * time.Second, MaxWaiting: 3}})
	flood := newTestNode(t, Config{})
	honest := newTestNode(t, Config{})
	mesh(victim, flood, honest)
	data := make([]byte, 1<<20)
	rand.Read(data)
	h := seedWith(t, victim, data)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := flood.h.Connect(ctx, victim.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	// The flood: 10 sessions at once, each with a have request.
	req := frame(&HaveRequest{Hash: h, PieceSize: DefaultPieceSize(int64(len(data)))})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var streams []network.Stream
	defer func() {
		// Reset the flood's streams (the victim's waiting sessions end
		// when it closes) and wait for its goroutines.
		mu.Lock()
		for _, s := range streams {
			_ = s.Reset()
		}
		mu.Unlock()
		wg.Wait()
	}()
	for range 10 {
		wg.Go(func() {
			s, err := flood.h.NewStream(ctx, victim.ID(), protocol.ID(ProtocolID))
			if err != nil {
				return
			}
			mu.Lock()
			streams = append(streams, s)
			mu.Unlock()
			defer s.Reset()
			if _, err := s.Write(req); err != nil {
				return
			}
			var one [1]byte
			_, _ = s.Read(one[:])
		})
	}
	testutil.WaitFor(t, 20*time.Second, "the flooder fills its waiting room and is refused", func() error {
		st := victim.ServerStats().Blob
		victim.adm.mu.Lock()
		defer victim.adm.mu.Unlock()
		pa := victim.adm.peers[flood.ID()]
		if pa == nil || pa.waiting != 3 || st.RefusedRate != 3 {
			return fmt.Errorf("refused for rate %d, flood sessions waiting %v", st.RefusedRate, pa)
		}
		return nil
	})
	before := victim.ServerStats().Blob
	if err := honest.Fetch(ctx, h, int64(len(data)), infos(victim), FetchOptions{}); err != nil {
		t.Fatalf("honest fetch during the flood: %v", err)
	}
	after := victim.ServerStats().Blob
	if after.ThrottledSessions != before.ThrottledSessions {
		t.Errorf("the honest member's sessions were throttled (%d -> %d)", before.ThrottledSessions, after.ThrottledSessions)
	}
	victim.adm.mu.Lock()
	waiting := victim.adm.peers[flood.ID()].waiting
	victim.adm.mu.Unlock()
	t.Logf("flood sessions still waiting after the honest fetch: %d of 3", waiting)
	if after.RefusedRate != 3 {
		t.Errorf("refused for rate: %d, want 3 (10 sessions, burst 4, waiting room 3)", after.RefusedRate)
	}
}

func frame(m Message) []byte {
	var b bytes.Buffer
	if err := WriteFrame(&b, m); err != nil {
		panic(err)
	}
	return b.Bytes()
}
