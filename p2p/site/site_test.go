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
	if stuck {
		<-ctx.Done()
		return ctx.Err()
	}
	time.Sleep(10 * time.Second) // the WAN transfer, in fake time
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
