package exchange

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

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
		_, err := c.get(ctx, h, size, MinPieceSize+int64(i), compute)
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
		if _, err := c.get(ctx, h, size, 2*MinPieceSize+int64(i), busy); !errors.Is(err, errBusy) {
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
