package exchange

import (
	"slices"
	"testing"
	"time"

	"github.com/patchring/patchring/p2p/content"
)

func TestSeedTracker(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	tr := newSeedTracker(func() time.Time { return now })
	h := content.Sum([]byte("payload"))
	const size, ps = 4*100 - 10, 100 // 4 pieces, the last one short
	offer := func(want byte) {
		t.Helper()
		bm := tr.advertise(h, size, ps)
		if len(bm) != 1 || bm[0] != want {
			t.Fatalf("offer %08b, want %08b", bm, want)
		}
	}
	begin := func(off, n int64, want bool) func(bool) {
		t.Helper()
		end, ok := tr.begin(h, size, off, n)
		if ok != want {
			t.Fatalf("begin [%d, +%d) = %v, want %v", off, n, ok, want)
		}
		return end
	}
	offer(0xf0) // fresh: every piece
	end1 := begin(100, 100, true)
	offer(0xb0)            // piece 1 in flight: not offered twice
	begin(100, 100, false) // nor served twice
	changed := tr.Changed()
	end1(true)
	select {
	case <-changed:
	default:
		t.Fatal("the end of an upload did not signal a change")
	}
	offer(0xb0) // uploaded once: the others first
	begin(100, 100, false)
	end0 := begin(0, 100, true)
	end0(false) // failed: piece 0 is offered again
	offer(0xb0)
	begin(250, 40, true)(true) // part of a piece: not counted
	offer(0xb0)

	// Idle for relaxAfter: the seed offers everything rather than idle.
	now = now.Add(relaxAfter)
	if bm := tr.advertise(h, size, ps); bm != nil {
		t.Fatalf("idle seed offers %08b, want everything", bm)
	}
	end := begin(100, 100, true) // allowed while relaxed
	offer(0xb0)                  // busy again: strict
	end(true)

	begin(0, size, false) // a range over an uploaded piece is refused
	begin(0, 100, true)(true)
	begin(200, size-200, true)(true) // pieces 2 and 3 (short): every piece once
	// Initial seeding is over.
	if bm := tr.advertise(h, size, ps); bm != nil {
		t.Fatalf("initial seeding over: offer %08b, want whole", bm)
	}
	begin(100, 100, true)(true)

	// A payload that came from peers is spread already.
	h2 := content.Sum([]byte("downloaded"))
	tr.markSpread(h2, size, ps)
	if bm := tr.advertise(h2, size, ps); bm != nil {
		t.Fatalf("spread payload: offer %08b, want whole", bm)
	}

	var nilTracker *seedTracker
	if _, ok := nilTracker.begin(h, size, 0, 1); nilTracker.advertise(h, size, ps) != nil || !ok {
		t.Fatal("a nil tracker must offer everything")
	}
	nilTracker.markSpread(h, size, ps)
}

func TestSeedTrackerOffersInOrder(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	tr := newSeedTracker(func() time.Time { return now })
	h := content.Sum([]byte("payload"))
	const ps = 100
	const size = 20 * ps // 20 pieces: 3 bitmap bytes
	offered := func() []int {
		var out []int
		bm := tr.advertise(h, size, ps)
		for i := range 20 {
			if bm[i/8]&(0x80>>(i%8)) != 0 {
				out = append(out, i)
			}
		}
		return out
	}
	if got := offered(); !slices.Equal(got, []int{0, 1, 2, 3, 4, 5, 6, 7}) {
		t.Fatalf("fresh seed offers %v, want the %d lowest pieces", got, seedWindow)
	}
	end, ok := tr.begin(h, size, 2*ps, ps) // piece 2 in flight
	if !ok {
		t.Fatal("piece 2 refused")
	}
	if got := offered(); !slices.Equal(got, []int{0, 1, 3, 4, 5, 6, 7, 8}) {
		t.Fatalf("with piece 2 in flight: offers %v", got)
	}
	end(true)
	for _, i := range []int{0, 1, 3} {
		end, ok := tr.begin(h, size, int64(i)*ps, ps)
		if !ok {
			t.Fatalf("piece %d refused", i)
		}
		end(true)
	}
	if got := offered(); !slices.Equal(got, []int{4, 5, 6, 7, 8, 9, 10, 11}) {
		t.Fatalf("after pieces 0-3: offers %v", got)
	}
	// A piece past the window that was never uploaded may still be asked
	// for (a peer that learned of it before): it is not a duplicate.
	if end, ok := tr.begin(h, size, 19*ps, ps); !ok {
		t.Fatal("piece 19 refused")
	} else {
		end(true)
	}
}

// TestSeedTrackerCountsPartialUploads: a node that served pieces while it
// was still downloading (the site's WAN fetcher) does not hold them back
// once it holds the payload whole.
func TestSeedTrackerCountsPartialUploads(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	tr := newSeedTracker(func() time.Time { return now })
	h := content.Sum([]byte("payload"))
	const size, ps = 400, 100
	tr.sharing(h, size, ps, 100, 100)(true)
	tr.sharing(h, size, ps, 300, 100)(false) // failed: not counted
	if bm := tr.advertise(h, size, ps); len(bm) != 1 || bm[0] != 0xb0 {
		t.Fatalf("whole after sharing piece 1: offer %08b, want 10110000", bm)
	}
	if _, ok := tr.begin(h, size, 100, 100); ok {
		t.Fatal("piece 1, uploaded while partial, is offered again during initial seeding")
	}
	tr.sharing(h, size, ps, 0, 100)(true)
	tr.sharing(h, size, ps, 200, 200)(true)
	if bm := tr.advertise(h, size, ps); bm != nil {
		t.Fatalf("every piece uploaded while partial: offer %08b, want whole", bm)
	}
	var nilTracker *seedTracker
	nilTracker.sharing(h, size, ps, 0, 1)(true)
}

// TestSeedTrackerAcrossPieceSizes: peers asking in two piece sizes (agents
// of two versions): once every piece went out once in one size, initial
// seeding is over in the other too, and in any size asked later; uploads
// in the smaller size never cover a whole piece of the larger.
func TestSeedTrackerAcrossPieceSizes(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	tr := newSeedTracker(func() time.Time { return now })
	h := content.Sum([]byte("payload"))
	const size = 390
	if bm := tr.advertise(h, size, 200); len(bm) != 1 || bm[0] != 0xc0 {
		t.Fatalf("large pieces, fresh: offer %08b, want 11000000", bm)
	}
	if bm := tr.advertise(h, size, 100); len(bm) != 1 || bm[0] != 0xf0 {
		t.Fatalf("small pieces, fresh: offer %08b, want 11110000", bm)
	}
	for off := int64(0); off < size; off += 100 {
		end, ok := tr.begin(h, size, off, min(100, size-off))
		if !ok {
			t.Fatalf("small piece at %d refused", off)
		}
		if off == 0 {
			// In flight: the large piece it is part of is not offered.
			if bm := tr.advertise(h, size, 200); len(bm) != 1 || bm[0] != 0x40 {
				t.Fatalf("large pieces while a small one is in flight: offer %08b, want 01000000", bm)
			}
		}
		end(true)
	}
	if bm := tr.advertise(h, size, 200); bm != nil {
		t.Fatalf("every small piece uploaded once: large pieces offer %08b, want whole", bm)
	}
	if _, ok := tr.begin(h, size, 0, size); !ok {
		t.Fatal("a whole range in large pieces refused after initial seeding")
	}
	if bm := tr.advertise(h, size, 50); bm != nil {
		t.Fatalf("a piece size first asked after initial seeding: offer %08b, want whole", bm)
	}
}
