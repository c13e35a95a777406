package exchange

import (
	"sync"
	"time"

	"github.com/patchring/patchring/p2p/content"
)

// seedTracker implements "initial seeding" (BitTorrent's super-seeding) for
// payloads this node holds whole while the swarm does not have them yet: the
// node that brought a payload in (Put, or a download whose pieces all came
// from the origin). Until every piece has been uploaded once, a have answer
// offers only the pieces never uploaded and not being uploaded right now,
// and a range request for any other piece is refused. The seed's upload
// then goes to distinct pieces, which peers trade among themselves, so the
// swarm holds a whole copy after the seed uploaded about S bytes.
//
// The seed never withholds while it would sit idle: when no transfer of the
// payload is in progress and none ended for relaxAfter, it offers every
// piece. That covers peers that need a piece only the seed holds while the
// never-uploaded ones are wanted by nobody (they came from another source).
//
// A payload this node downloaded from peers is already spread; markSpread
// turns initial seeding off for it.
type seedTracker struct {
	now        func() time.Time
	relaxAfter time.Duration

	mu      sync.Mutex
	order   []manifestKey
	entries map[manifestKey]*seedEntry
	pieces  int           // tracked pieces, over all entries
	changed chan struct{} // closed and replaced when an offer may grow
}

type seedEntry struct {
	count    []uint32 // completed uploads per piece
	busy     []uint16 // uploads in progress per piece
	inflight int      // uploads in progress
	lastEnd  time.Time
	done     bool // every piece uploaded once, or spread: offer everything
}

const (
	relaxAfter   = time.Second
	seedTrackMax = 16
	// seedTrackPieces bounds the pieces tracked over all entries (6 bytes
	// each): an entry of the least recently started geometry goes first.
	seedTrackPieces = 1 << 19
	// seedWindow is how many never-uploaded pieces a seed offers at once;
	// enough that the downloaders asking it rarely pick the same piece.
	seedWindow = 8
)

func newSeedTracker(now func() time.Time) *seedTracker {
	return &seedTracker{now: now, relaxAfter: relaxAfter, entries: map[manifestKey]*seedEntry{}, changed: make(chan struct{})}
}

// entryLocked returns the entry of h in pieces of pieceSize, creating it.
func (t *seedTracker) entryLocked(h content.Hash, size, pieceSize int64) *seedEntry {
	k := manifestKey{h, pieceSize}
	if e, ok := t.entries[k]; ok {
		return e
	}
	n := content.NumPieces(size, pieceSize)
	e := &seedEntry{count: make([]uint32, n), busy: make([]uint16, n), lastEnd: t.now(), done: n <= 1 || t.spreadLocked(h)}
	t.entries[k] = e
	t.order = append(t.order, k)
	t.pieces += n
	for len(t.order) > seedTrackMax || t.pieces > seedTrackPieces && len(t.order) > 1 {
		t.pieces -= len(t.entries[t.order[0]].count)
		delete(t.entries, t.order[0])
		t.order = t.order[1:]
	}
	return e
}

// markSpread turns initial seeding off for h (in every piece size).
func (t *seedTracker) markSpread(h content.Hash, size, pieceSize int64) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.entryLocked(h, size, pieceSize)
	t.spreadAllLocked(h)
	t.notifyLocked()
}

// spreadLocked reports whether initial seeding of h is over in some piece
// size: the swarm holds a whole copy then, whatever size its peers ask in.
func (t *seedTracker) spreadLocked(h content.Hash) bool {
	for k, e := range t.entries {
		if k.h == h && e.done {
			return true
		}
	}
	return false
}

// spreadAllLocked ends initial seeding of h in every piece size. Peers of
// one site may ask in different sizes (agents of two versions during an
// upgrade); uploads in the smaller size never cover a whole piece of the
// larger, which would otherwise stay gated.
func (t *seedTracker) spreadAllLocked(h content.Hash) {
	for k, e := range t.entries {
		if k.h == h {
			e.done = true
		}
	}
}

// Changed returns a channel closed when an offer may have grown: an upload
// ended or failed, or initial seeding ended.
func (t *seedTracker) Changed() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.changed
}

func (t *seedTracker) notifyLocked() {
	close(t.changed)
	t.changed = make(chan struct{})
}

func (e *seedEntry) relaxed(now time.Time, after time.Duration) bool {
	return e.done || e.inflight == 0 && now.Sub(e.lastEnd) >= after
}

// advertise returns the bitmap to offer for a held payload, or nil to offer
// it whole.
func (t *seedTracker) advertise(h content.Hash, size, pieceSize int64) []byte {
	if t == nil {
		return nil
	}
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.entryLocked(h, size, pieceSize)
	if e.relaxed(now, t.relaxAfter) {
		return nil
	}
	n := len(e.count)
	bm := make([]byte, (n+7)/8)
	offered := 0
	for i := 0; i < n && offered < seedWindow; i++ {
		if e.count[i] == 0 && e.busy[i] == 0 {
			bm[i/8] |= 0x80 >> (i % 8)
			offered++
		}
	}
	return bm
}

// pieces returns the pieces of pieceSize that [off, off+n) overlaps, and
// those it covers entirely.
func pieces(size, pieceSize, off, n int64) (first, last, fullFirst, fullLast int64) {
	first, last = off/pieceSize, (off+n-1)/pieceSize
	fullFirst, fullLast = first, last
	if off%pieceSize != 0 {
		fullFirst++
	}
	if end := off + n; end%pieceSize != 0 && end != size {
		fullLast--
	}
	return first, last, fullFirst, fullLast
}

// sharing records an upload of [off, off+n) of a payload this node is still
// downloading (in pieces of pieceSize), so that once it holds the payload
// whole it does not hold back pieces it already gave to the swarm: the
// site's WAN fetcher serves its pieces while they arrive from the origin.
// Call the returned func when the upload ends.
func (t *seedTracker) sharing(h content.Hash, size, pieceSize, off, n int64) (end func(complete bool)) {
	if t == nil {
		return func(bool) {}
	}
	t.mu.Lock()
	t.entryLocked(h, size, pieceSize)
	t.mu.Unlock()
	end, _ = t.start(h, size, off, n, false)
	return end
}

// begin asks to upload [off, off+n) of a held payload of size bytes. It
// returns false when the range is not on offer (initial seeding: a piece
// uploaded, or being uploaded, to someone else), and otherwise a func to call
// when the upload ends; complete tells whether every byte was sent.
func (t *seedTracker) begin(h content.Hash, size, off, n int64) (end func(complete bool), ok bool) {
	if t == nil {
		return func(bool) {}, true
	}
	return t.start(h, size, off, n, true)
}

// start marks [off, off+n) in flight in every tracked geometry of h;
// strict refuses a range that is not on offer.
func (t *seedTracker) start(h content.Hash, size, off, n int64, strict bool) (end func(complete bool), ok bool) {
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	type span struct {
		e            *seedEntry
		first, last  int64
		fullF, fullL int64
	}
	var spans []span
	for k, e := range t.entries {
		if k.h != h || e.done {
			continue
		}
		ps := k.pieceSize
		first, last, fullF, fullL := pieces(size, ps, off, n)
		last = min(last, int64(len(e.count))-1)
		fullL = min(fullL, int64(len(e.count))-1)
		if strict && !e.relaxed(now, t.relaxAfter) {
			for i := first; i <= last; i++ {
				if e.count[i] > 0 || e.busy[i] > 0 {
					return nil, false
				}
			}
		}
		spans = append(spans, span{e, first, last, fullF, fullL})
	}
	for _, s := range spans {
		s.e.inflight++
		for i := s.first; i <= s.last; i++ {
			s.e.busy[i]++
		}
	}
	return func(complete bool) {
		now := t.now()
		t.mu.Lock()
		defer t.mu.Unlock()
		for _, s := range spans {
			e := s.e
			e.inflight--
			e.lastEnd = now
			for i := s.first; i <= s.last; i++ {
				e.busy[i]--
			}
			if complete {
				for i := s.fullF; i <= s.fullL; i++ {
					e.count[i]++
				}
			}
			if e.done {
				continue
			}
			e.done = true
			for _, c := range e.count {
				if c == 0 {
					e.done = false
					break
				}
			}
			if e.done {
				t.spreadAllLocked(h)
			}
		}
		t.notifyLocked()
	}, true
}
