package site

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func members(ids ...string) []Member {
	var out []Member
	for _, id := range ids {
		out = append(out, Member{ID: id})
	}
	return out
}

func TestRankAgreesAndSpreads(t *testing.T) {
	ms := members("n0", "n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8", "n9")
	reversed := slices.Clone(ms)
	slices.Reverse(reversed)
	count := map[string]int{}
	const keys = 2000
	for k := range keys {
		key := fmt.Sprintf("sha256:%d", k)
		a, b := Rank(key, ms), Rank(key, reversed)
		if !slices.Equal(a, b) {
			t.Fatalf("rank of %s depends on member order: %v vs %v", key, a, b)
		}
		count[a[0].ID]++
		// Removing a non-chosen member never changes the choice; removing
		// the chosen one hands over to the second.
		without := slices.DeleteFunc(slices.Clone(ms), func(m Member) bool { return m == a[1] })
		if c, _ := Choose(key, without); c != a[0] {
			t.Fatalf("%s: removing %s moved the choice from %s to %s", key, a[1].ID, a[0].ID, c.ID)
		}
		without = slices.DeleteFunc(slices.Clone(ms), func(m Member) bool { return m == a[0] })
		if c, _ := Choose(key, without); c != a[1] {
			t.Fatalf("%s: chosen %s left, got %s, want next %s", key, a[0].ID, c.ID, a[1].ID)
		}
	}
	for _, m := range ms {
		// Expect keys/10 = 200 each; allow a wide margin.
		if n := count[m.ID]; n < 120 || n > 280 {
			t.Errorf("member %s chosen for %d of %d keys", m.ID, n, keys)
		}
	}
	if _, ok := Choose("k", nil); ok {
		t.Error("Choose of no members succeeded")
	}
	if got := Rank("k", members("a", "a", "b")); len(got) != 2 {
		t.Errorf("duplicates kept: %v", got)
	}
}

// world is a fake site: members, who holds the payload, and WAN downloads.
type world struct {
	mu      sync.Mutex
	live    map[string]bool
	holders []string
	wan     []string // nodes that fetched from the origin
	peers   []string // nodes that fetched from peers
	// stuck nodes start a WAN download that never finishes.
	stuck map[string]bool
	// originDown fails every origin fetch.
	originDown bool
	// progress is what each node announced it got so far (Config.Progress).
	progress map[string]int
	// wanAt is when each WAN fetch started.
	wanAt map[string]time.Time
	// wanTime is how long a WAN fetch takes; default 10 s.
	wanTime time.Duration
}

func (w *world) progressOf(id string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.progress[id]
}

func (w *world) members() []Member {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []Member
	for id, ok := range w.live {
		if ok {
			out = append(out, Member{ID: id})
		}
	}
	return out
}

func (w *world) holdersOf(string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.holders)
}

type node struct {
	w  *world
	id string
}

func (n *node) FromOrigin(ctx context.Context) error {
	n.w.mu.Lock()
	stuck, down := n.w.stuck[n.id], n.w.originDown
	n.w.mu.Unlock()
	if down {
		return errors.New("origin unreachable")
	}
	if n.w.wanAt != nil {
		n.w.mu.Lock()
		n.w.wanAt[n.id] = time.Now()
		n.w.mu.Unlock()
	}
	if stuck {
		<-ctx.Done()
		return ctx.Err()
	}
	d := n.w.wanTime
	if d == 0 {
		d = 10 * time.Second
	}
	time.Sleep(d) // the WAN transfer, in fake time
	n.w.mu.Lock()
	defer n.w.mu.Unlock()
	n.w.wan = append(n.w.wan, n.id)
	n.w.holders = append(n.w.holders, n.id)
	return nil
}

func (n *node) FromPeers(ctx context.Context, holders []string) error {
	n.w.mu.Lock()
	defer n.w.mu.Unlock()
	for _, h := range holders {
		if n.w.live[h] {
			n.w.peers = append(n.w.peers, n.id)
			n.w.holders = append(n.w.holders, n.id)
			return nil
		}
	}
	return errors.New("holders gone")
}

func newCoord(tb testing.TB, w *world, id string) *Coordinator {
	tb.Helper()
	c, err := New(Config{Self: id, Members: w.members, Holders: w.holdersOf, Poll: time.Second, WaitTimeout: time.Minute})
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func TestCoordinator(t *testing.T) {
	const key = "payload-1"
	ids := []string{"a", "b", "c", "d", "e"}
	ranked := Rank(key, members(ids...))
	first, second := ranked[0].ID, ranked[1].ID
	tests := []struct {
		name string
		// during runs in the bubble while the nodes work.
		during     func(w *world)
		stuck      []string
		originDown bool
		wantWAN    []string
		wantVia    map[string]Via // for some nodes
		wantErr    bool
	}{
		{
			name:    "one WAN fetch, the rest from peers",
			wantWAN: []string{first},
			wantVia: map[string]Via{first: ViaOrigin, second: ViaPeers},
		},
		{
			name: "chosen node leaves: next takes over",
			// The chosen node's WAN download hangs; then it leaves the site.
			stuck: []string{first},
			during: func(w *world) {
				time.Sleep(5 * time.Second)
				w.mu.Lock()
				w.live[first] = false
				w.mu.Unlock()
			},
			wantWAN: []string{second},
			wantVia: map[string]Via{second: ViaOrigin},
		},
		{
			name: "chosen node leaves late: the others give its successor the whole wait again",
			// It leaves just before the others' patience ends; the
			// second needs 10 s to fetch. Counting from the start, the
			// third would fall back to the origin at 60 s.
			stuck: []string{first},
			during: func(w *world) {
				time.Sleep(55 * time.Second)
				w.mu.Lock()
				w.live[first] = false
				w.mu.Unlock()
			},
			wantWAN: []string{second},
			wantVia: map[string]Via{second: ViaOrigin, ranked[2].ID: ViaPeers, ranked[3].ID: ViaPeers},
		},
		{
			name: "chosen node hangs but stays: one fallback after the wait timeout",
			// The second in rank falls back first; the others, staggered,
			// find it holding the payload.
			stuck:   []string{first},
			wantWAN: []string{second},
			wantVia: map[string]Via{second: ViaOriginFallback, ranked[2].ID: ViaPeers},
		},
		{
			name:       "origin down: nobody gets it",
			originDown: true,
			wantErr:    true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := &world{live: map[string]bool{}, stuck: map[string]bool{}, originDown: tc.originDown}
				for _, id := range ids {
					w.live[id] = true
				}
				for _, id := range tc.stuck {
					w.stuck[id] = true
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
				defer cancel()
				var wg sync.WaitGroup
				var mu sync.Mutex
				via := map[string]Via{}
				errs := map[string]error{}
				for _, id := range ids {
					c := newCoord(t, w, id)
					nctx := ctx
					if w.stuck[id] {
						var ncancel context.CancelFunc
						nctx, ncancel = context.WithTimeout(ctx, 3*time.Minute)
						defer ncancel()
					}
					wg.Go(func() {
						v, err := c.Obtain(nctx, key, &node{w: w, id: id})
						mu.Lock()
						via[id], errs[id] = v, err
						mu.Unlock()
					})
				}
				if tc.during != nil {
					tc.during(w)
				}
				wg.Wait()
				for _, id := range ids {
					if w.stuck[id] {
						continue
					}
					if (errs[id] != nil) != tc.wantErr {
						t.Errorf("node %s: err %v, want error=%v", id, errs[id], tc.wantErr)
					}
				}
				if tc.wantWAN != nil && !slices.Equal(w.wan, tc.wantWAN) {
					t.Errorf("WAN fetches by %v, want %v", w.wan, tc.wantWAN)
				}
				for id, v := range tc.wantVia {
					if via[id] != v {
						t.Errorf("node %s obtained via %v, want %v", id, via[id], v)
					}
				}
			})
		})
	}
}

// TestCoordinatorFollowsASlowFetcher: files asked for on demand (apt's)
// with a short patience. The fetcher is slow to ask for the key itself (its
// own apt run is behind this node's) but announces progress meanwhile; the
// others wait for it while it progresses, and fall back to the origin after
// the patience when it shows nothing new, or after MaxWait when it
// progresses but never gets to the key.
func TestCoordinatorFollowsASlowFetcher(t *testing.T) {
	const (
		key      = "apt-file"
		patience = 4 * time.Second
		maxWait  = 30 * time.Second
	)
	ids := []string{"a", "b", "c", "d", "e"}
	ranked := Rank(key, members(ids...))
	first, second, third := ranked[0].ID, ranked[1].ID, ranked[2].ID
	tests := []struct {
		name string
		// fixed leaves Config.Progress out: the patience counts from the
		// start alone (the coordinator before it followed progress).
		fixed bool
		// asksAt is when the fetcher asks for the key (0: never), after
		// announcing progress every second until then (or until busyFor).
		asksAt, busyFor time.Duration
		wantWAN         []string
		wantWANAt       time.Duration // when the first WAN fetch started
		wantVia         map[string]Via
	}{
		{
			name:   "slow fetcher, progressing: waited for, one WAN copy",
			asksAt: 5 * time.Second, wantWAN: []string{first}, wantWANAt: 5 * time.Second,
			wantVia: map[string]Via{first: ViaOrigin, second: ViaPeers, third: ViaPeers},
		},
		{
			name:   "slow fetcher with a fixed patience: fetched twice",
			fixed:  true,
			asksAt: 5 * time.Second, wantWAN: []string{second, first}, wantWANAt: patience,
			wantVia: map[string]Via{first: ViaOrigin, second: ViaOriginFallback},
		},
		{
			name:    "fetcher does not want it and shows nothing new: the second falls back after the patience",
			wantWAN: []string{second}, wantWANAt: patience,
			wantVia: map[string]Via{second: ViaOriginFallback, third: ViaPeers},
		},
		{
			name:    "fetcher progresses elsewhere and never asks: the second falls back at MaxWait",
			busyFor: 5 * time.Minute, wantWAN: []string{second}, wantWANAt: maxWait,
			wantVia: map[string]Via{second: ViaOriginFallback, third: ViaPeers},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				t0 := time.Now()
				// A WAN fetch (1.5 s) ends before the next rank's patience.
				w := &world{live: map[string]bool{}, stuck: map[string]bool{}, progress: map[string]int{}, wanAt: map[string]time.Time{},
					wanTime: 1500 * time.Millisecond}
				for _, id := range ids {
					w.live[id] = true
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
				defer cancel()
				var wg sync.WaitGroup
				var mu sync.Mutex
				via := map[string]Via{}
				errs := map[string]error{}
				for _, id := range ids {
					cfg := Config{Self: id, Members: w.members, Holders: w.holdersOf, Poll: 500 * time.Millisecond,
						WaitTimeout: patience, Stagger: patience / 2, MaxWait: maxWait}
					if !tc.fixed {
						cfg.Progress = w.progressOf
					}
					c, err := New(cfg)
					if err != nil {
						t.Fatal(err)
					}
					wg.Go(func() {
						if id == first {
							// The fetcher's own run: progress every
							// second until it asks for the key, if ever.
							until := max(tc.asksAt, tc.busyFor)
							for time.Since(t0) < until {
								time.Sleep(time.Second)
								w.mu.Lock()
								w.progress[id]++
								w.mu.Unlock()
							}
							if tc.asksAt == 0 {
								return
							}
						}
						v, err := c.Obtain(ctx, key, &node{w: w, id: id})
						mu.Lock()
						via[id], errs[id] = v, err
						mu.Unlock()
					})
				}
				wg.Wait()
				for id, err := range errs {
					if err != nil {
						t.Errorf("node %s: %v", id, err)
					}
				}
				if !slices.Equal(w.wan, tc.wantWAN) {
					t.Errorf("WAN fetches by %v, want %v", w.wan, tc.wantWAN)
				}
				if len(tc.wantWAN) > 0 {
					// Within one poll of the expected moment.
					got := w.wanAt[tc.wantWAN[0]].Sub(t0)
					if got < tc.wantWANAt || got > tc.wantWANAt+time.Second {
						t.Errorf("%s started its WAN fetch at %v, want %v", tc.wantWAN[0], got, tc.wantWANAt)
					}
				}
				for id, v := range tc.wantVia {
					if via[id] != v {
						t.Errorf("node %s obtained via %v, want %v", id, via[id], v)
					}
				}
			})
		})
	}
}

func TestNewValidates(t *testing.T) {
	if _, err := New(Config{Self: "a"}); err == nil {
		t.Fatal("New without Members/Holders succeeded")
	}
	c, err := New(Config{Self: "a", Members: func() []Member { return nil }, Holders: func(string) []string { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	if !c.IsFetcher("x") {
		t.Fatal("a lone node is not its own fetcher")
	}
}
