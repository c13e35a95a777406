package exchange

import (
	"testing"
	"time"

	"github.com/patchring/patchring/p2p/content"
)

func TestSeedTracker(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	tr := newSeedTracker(func() time.Time { return now })
	h := content.Sum([]byte("payload"))
	const size, ps = 4*100 - 10, 100 // 4 pieces, the last one short
	bm := tr.advertise(h, size, ps)
	if len(bm) != 1 || bm[0] != 0xf0 {
		t.Fatalf("fresh payload: offer %08b, want all 4 pieces", bm)
	}
	tr.served(h, size, 100, 100) // piece 1
	tr.served(h, size, 250, 40)  // partial piece: not counted
	if bm := tr.advertise(h, size, ps); bm[0] != 0xb0 {
		t.Fatalf("after piece 1: offer %08b, want 10110000", bm)
	}
	if tr.offered(h, size, 100, 100) || !tr.offered(h, size, 0, 100) {
		t.Fatal("piece 1 still offered, or piece 0 not")
	}
	now = now.Add(reseedAfter + time.Second)
	if !tr.offered(h, size, 100, 100) {
		t.Fatal("piece 1 not offered again after reseedAfter")
	}
	tr.served(h, size, 0, size) // everything once
	if bm := tr.advertise(h, size, ps); bm != nil {
		t.Fatalf("initial seeding over: offer %08b, want whole", bm)
	}
	if !tr.offered(h, size, 100, 100) {
		t.Fatal("after initial seeding every piece is offered")
	}
	var nilTracker *seedTracker
	if nilTracker.advertise(h, size, ps) != nil || !nilTracker.offered(h, size, 0, 1) {
		t.Fatal("a nil tracker must offer everything")
	}
}
