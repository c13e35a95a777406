package content

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func randBytes(tb testing.TB, n int, seed uint64) []byte {
	tb.Helper()
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func openStore(tb testing.TB, dir string, opts Options) *Store {
	tb.Helper()
	s, err := Open(dir, opts)
	if err != nil {
		tb.Fatalf("Open(%s): %v", dir, err)
	}
	return s
}

func put(tb testing.TB, s *Store, b []byte) Hash {
	tb.Helper()
	h := Sum(b)
	if err := s.Put(context.Background(), h, int64(len(b)), bytes.NewReader(b)); err != nil {
		tb.Fatalf("Put: %v", err)
	}
	return h
}

func stagingNames(tb testing.TB, s *Store) []string {
	tb.Helper()
	ents, err := os.ReadDir(s.stageDir)
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func readAll(tb testing.TB, s *Store, h Hash) []byte {
	tb.Helper()
	r, err := s.Open(h)
	if err != nil {
		tb.Fatalf("Open(%s): %v", h, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestParseHash(t *testing.T) {
	good := Sum([]byte("x"))
	tests := []struct {
		name    string
		in      string
		want    Hash
		wantErr bool
	}{
		{"lower", good.String(), good, false},
		{"upper", string(bytes.ToUpper([]byte(good.String()))), good, false},
		{"short", good.String()[:10], Hash{}, true},
		{"not hex", "zz" + good.String()[2:], Hash{}, true},
		{"empty", "", Hash{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseHash(tc.in)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("ParseHash(%q) = %v, %v; want %v, err=%v", tc.in, got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestPut(t *testing.T) {
	data := randBytes(t, 300_000, 1)
	h := Sum(data)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name    string
		ctx     context.Context
		hash    Hash
		size    int64
		body    []byte
		wantErr error
	}{
		{"ok", context.Background(), h, int64(len(data)), data, nil},
		{"wrong hash", context.Background(), Sum([]byte("other")), int64(len(data)), data, ErrVerify},
		{"too short", context.Background(), h, int64(len(data)) + 1, data, ErrVerify},
		{"too long", context.Background(), h, int64(len(data)) - 1, data, ErrVerify},
		{"corrupt byte", context.Background(), h, int64(len(data)), flip(data, 1234), ErrVerify},
		{"cancelled", cancelled, h, int64(len(data)), data, context.Canceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t, t.TempDir(), Options{})
			err := s.Put(tc.ctx, tc.hash, tc.size, bytes.NewReader(tc.body))
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("Put: err = %v, want %v", err, tc.wantErr)
			}
			if got := stagingNames(t, s); len(got) != 0 {
				t.Errorf("staging not empty after Put: %v", got)
			}
			if tc.wantErr != nil {
				if s.Has(tc.hash) {
					t.Fatalf("failed Put left %s visible", tc.hash)
				}
				if _, err := s.Open(tc.hash); !errors.Is(err, ErrNotFound) {
					t.Fatalf("Open after failed Put: %v, want ErrNotFound", err)
				}
				if used, reserved, _ := s.Usage(); used != 0 || reserved != 0 {
					t.Fatalf("usage after failed Put = %d/%d, want 0/0", used, reserved)
				}
				return
			}
			if !bytes.Equal(readAll(t, s, h), data) {
				t.Fatal("read back differs")
			}
			// A second Put of present content does not read its reader.
			if err := s.Put(context.Background(), h, int64(len(data)), errReader{}); err != nil {
				t.Fatalf("Put of present blob: %v", err)
			}
		})
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("must not be read") }

func flip(b []byte, at int) []byte {
	c := bytes.Clone(b)
	c[at] ^= 0xff
	return c
}

func TestReaderRangesAndReopen(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{})
	data := randBytes(t, 100_000, 2)
	h := put(t, s, data)
	r, err := s.Open(h)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Size() != int64(len(data)) {
		t.Fatalf("Size = %d", r.Size())
	}
	buf := make([]byte, 1000)
	if _, err := r.ReadAt(buf, 5000); err != nil || !bytes.Equal(buf, data[5000:6000]) {
		t.Fatalf("ReadAt: %v", err)
	}
	s2 := openStore(t, dir, Options{})
	if !s2.Has(h) {
		t.Fatal("blob lost after reopen")
	}
	if n, err := s2.Size(h); err != nil || n != int64(len(data)) {
		t.Fatalf("Size after reopen = %d, %v", n, err)
	}
	if list := s2.List(); len(list) != 1 || list[0].Hash != h {
		t.Fatalf("List = %+v", list)
	}
}

func TestConcurrentPutSameHash(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	data := randBytes(t, 200_000, 3)
	h := Sum(data)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			errs <- s.Put(context.Background(), h, int64(len(data)), bytes.NewReader(data))
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if used, reserved, _ := s.Usage(); used != int64(len(data)) || reserved != 0 {
		t.Fatalf("usage = %d/%d, want %d/0", used, reserved, len(data))
	}
}

func TestEviction(t *testing.T) {
	const blob = 1000
	tests := []struct {
		name string
		// setup runs after blobs a, b, c were stored in that order, one
		// second apart, in a store of 3*blob bytes; then d is stored.
		setup    func(t *testing.T, s *Store, clk *clock, h []Hash) func()
		wantGone []int // indexes into a, b, c
		wantErr  error
	}{
		{
			name:     "least recently used goes",
			setup:    func(*testing.T, *Store, *clock, []Hash) func() { return func() {} },
			wantGone: []int{0},
		},
		{
			name: "access refreshes",
			setup: func(t *testing.T, s *Store, clk *clock, h []Hash) func() {
				clk.Advance(time.Second)
				readAll(t, s, h[0])
				return func() {}
			},
			wantGone: []int{1},
		},
		{
			name: "pinned is kept",
			setup: func(t *testing.T, s *Store, clk *clock, h []Hash) func() {
				if err := s.Pin(h[0], "txn 7", time.Time{}); err != nil {
					t.Fatal(err)
				}
				return func() {}
			},
			wantGone: []int{1},
		},
		{
			name: "expired pin does not protect",
			setup: func(t *testing.T, s *Store, clk *clock, h []Hash) func() {
				if err := s.Pin(h[0], "rollback window", clk.Now().Add(time.Minute)); err != nil {
					t.Fatal(err)
				}
				clk.Advance(2 * time.Minute)
				return func() {}
			},
			wantGone: []int{0},
		},
		{
			name: "unpinned is evictable again",
			setup: func(t *testing.T, s *Store, clk *clock, h []Hash) func() {
				if err := s.Pin(h[0], "txn", time.Time{}); err != nil {
					t.Fatal(err)
				}
				if err := s.Unpin(h[0], "txn"); err != nil {
					t.Fatal(err)
				}
				return func() {}
			},
			wantGone: []int{0},
		},
		{
			name: "open reader is kept",
			setup: func(t *testing.T, s *Store, clk *clock, h []Hash) func() {
				r, err := s.Open(h[0])
				if err != nil {
					t.Fatal(err)
				}
				// Opening refreshed it; make it the oldest again.
				s.mu.Lock()
				s.blobs[h[0]].lastAccess = time.Time{}
				s.mu.Unlock()
				return func() { r.Close() }
			},
			wantGone: []int{1},
		},
		{
			name: "everything pinned: store full",
			setup: func(t *testing.T, s *Store, clk *clock, h []Hash) func() {
				for _, x := range h {
					if err := s.Pin(x, "txn", time.Time{}); err != nil {
						t.Fatal(err)
					}
				}
				return func() {}
			},
			wantErr: ErrStoreFull,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock()
			s := openStore(t, t.TempDir(), Options{MaxBytes: 3 * blob, Now: clk.Now})
			var hs []Hash
			for i := range 3 {
				hs = append(hs, put(t, s, randBytes(t, blob, uint64(10+i))))
				clk.Advance(time.Second)
			}
			done := tc.setup(t, s, clk, hs)
			defer done()
			d := randBytes(t, blob, 99)
			err := s.Put(context.Background(), Sum(d), blob, bytes.NewReader(d))
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("Put d: %v, want %v", err, tc.wantErr)
			}
			gone := map[int]bool{}
			for _, i := range tc.wantGone {
				gone[i] = true
			}
			for i, h := range hs {
				if s.Has(h) == gone[i] {
					t.Errorf("blob %d present=%v, want %v", i, s.Has(h), !gone[i])
				}
			}
			if used, _, max := s.Usage(); used > max {
				t.Errorf("used %d > max %d", used, max)
			}
		})
	}
}

func TestPinsPersist(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	s := openStore(t, dir, Options{Now: clk.Now})
	h := put(t, s, []byte("payload"))
	until := clk.Now().Add(time.Hour).Truncate(time.Second)
	if err := s.Pin(h, "rollback", until); err != nil {
		t.Fatal(err)
	}
	if err := s.Pin(h, "txn 1", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(h); !errors.Is(err, ErrPinned) {
		t.Fatalf("Delete pinned: %v, want ErrPinned", err)
	}
	s2 := openStore(t, dir, Options{Now: clk.Now})
	got := s2.Pins(h)
	if len(got) != 2 || got[0].Reason != "rollback" || !got[0].Until.Equal(until) || got[1].Reason != "txn 1" {
		t.Fatalf("pins after reopen = %+v", got)
	}
	if err := s2.Unpin(h, "txn 1"); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Hour)
	if err := s2.Delete(h); err != nil {
		t.Fatalf("Delete after pins ended: %v", err)
	}
	if s2.Has(h) {
		t.Fatal("deleted blob still present")
	}
}

func TestOpenCleansLeftovers(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	s := openStore(t, dir, Options{Now: clk.Now})
	data := randBytes(t, 10_000, 5)
	h := Sum(data)
	// A resumable partial download.
	w, err := s.Writer(h, int64(len(data)), 4096)
	if err != nil {
		t.Fatal(err)
	}
	writeAccept(t, w, 0, data)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	orphanPart := Sum([]byte("orphan")).String() + ".part"
	leftovers := []string{"put-123.tmp", "junk", orphanPart, Sum([]byte("x")).String() + ".state"}
	for _, name := range leftovers {
		if err := os.WriteFile(filepath.Join(dir, "staging", name), []byte("half"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pinTemps := []string{".pins.json.1.tmp", ".tmp-pins.json-1"}
	for _, name := range pinTemps {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s2 := openStore(t, dir, Options{Now: clk.Now})
	got := stagingNames(t, s2)
	want := []string{h.String() + ".part", h.String() + ".state"}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("staging after Open = %v, want %v", got, want)
	}
	for _, name := range pinTemps {
		if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
			t.Fatalf("pins temp file %s not removed", name)
		}
	}
	if _, reserved, _ := s2.Usage(); reserved != int64(len(data)) {
		t.Fatalf("partial not accounted: reserved %d", reserved)
	}
	// Past the TTL the partial is a leftover too.
	clk.Advance(48 * time.Hour)
	s3 := openStore(t, dir, Options{Now: clk.Now})
	if got := stagingNames(t, s3); len(got) != 0 {
		t.Fatalf("stale partial kept: %v", got)
	}
}
