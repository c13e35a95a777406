package exchange

import (
	"sync"
	"time"

	"github.com/patchring/patchring/p2p/content"
)

// seedTracker implements "initial seeding" (BitTorrent's super-seeding, in a
// simple form) for payloads this node holds whole: until every piece has
// been uploaded at least once, a have answer offers only the pieces not yet
// uploaded, or not uploaded for reseedAfter. Peers then fetch different
// pieces from the holder and trade the rest among themselves, so the seed
// uploads the payload about once instead of once per downloader. The
// time-out keeps a piece from being withheld from a peer that needs it
// while nobody asks for the others.
type seedTracker struct {
	now func() time.Time

	mu      sync.Mutex
	order   []manifestKey
	entries map[manifestKey]*seedEntry
}

type seedEntry struct {
	count []uint32
	last  []time.Time
	done  bool // every piece uploaded at least once: offer everything
}

const (
	reseedAfter  = 2 * time.Second
	seedTrackMax = 16
)

func newSeedTracker(now func() time.Time) *seedTracker {
	return &seedTracker{now: now, entries: map[manifestKey]*seedEntry{}}
}

// served records an upload of [off, off+n) of h, counted for every piece
// (of each tracked geometry) the range covers entirely.
func (t *seedTracker) served(h content.Hash, size, off, n int64) {
	if t == nil {
		return
	}
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, e := range t.entries {
		if k.h != h || e.done {
			continue
		}
		ps := k.pieceSize
		first := (off + ps - 1) / ps
		for i := first; i < int64(len(e.count)); i++ {
			pOff := i * ps
			pEnd := min(pOff+ps, size)
			if pEnd > off+n {
				break
			}
			e.count[i]++
			e.last[i] = now
		}
		e.done = true
		for _, c := range e.count {
			if c == 0 {
				e.done = false
				break
			}
		}
	}
}

// advertise returns the bitmap to offer for a held payload, or nil to offer
// it whole.
func (t *seedTracker) advertise(h content.Hash, size, pieceSize int64) []byte {
	if t == nil {
		return nil
	}
	n := content.NumPieces(size, pieceSize)
	if n <= 1 {
		return nil
	}
	k := manifestKey{h, pieceSize}
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.entries[k]
	if !ok {
		e = &seedEntry{count: make([]uint32, n), last: make([]time.Time, n)}
		t.entries[k] = e
		t.order = append(t.order, k)
		for len(t.order) > seedTrackMax {
			delete(t.entries, t.order[0])
			t.order = t.order[1:]
		}
	}
	if e.done {
		return nil
	}
	bm := make([]byte, (n+7)/8)
	for i := range n {
		if e.count[i] == 0 || now.Sub(e.last[i]) > reseedAfter {
			bm[i/8] |= 0x80 >> (i % 8)
		}
	}
	return bm
}

// offered reports whether a range of a held payload is on offer: during
// initial seeding, a request for a piece that was just uploaded to someone
// else is refused so that the peer asks again and takes another piece.
func (t *seedTracker) offered(h content.Hash, size, off, n int64) bool {
	if t == nil {
		return true
	}
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, e := range t.entries {
		if k.h != h || e.done {
			continue
		}
		ps := k.pieceSize
		for i := off / ps; i < int64(len(e.count)) && i*ps < off+n; i++ {
			if e.count[i] > 0 && now.Sub(e.last[i]) <= reseedAfter {
				return false
			}
		}
	}
	return true
}
