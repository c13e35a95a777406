package exchange

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/patchring/patchring/p2p/content"
)

// ioChunk is the unit in which payload bytes are read, rate limited and
// written.
const ioChunk = 32 << 10

// server answers the requests of one or more sessions from a store: verified
// blobs and the accepted pieces of downloads in progress.
type server struct {
	store     *content.Store
	up        *Limiter
	slots     *slotPool     // upload slots (range transfers, manifest computations)
	slotWait  time.Duration // how long a range request may queue for a slot
	linger    *lingerClock  // how long a sent range keeps its slot; nil: not at all
	minRate   int64         // bytes per second a transfer must at least make
	seeding   *seedTracker
	sb        *scoreboard
	manifests *manifestCache
	adm       *admission // per-peer buckets; nil admits everything (tests)
	idle      time.Duration
	stats     *serverCounters
	log       *slog.Logger
	// waiting, if set, is called when a have-wait request starts to wait
	// (tests).
	waiting func()
}

// transferTimeout is how long a transfer of n bytes may take: the idle
// timeout plus n at the minimum rate. The minimum rate is lowered when the
// upload cap, shared by the slots, would not allow it with room to spare,
// so that only the client's slowness can cut a transfer.
func transferTimeout(idle time.Duration, minRate int64, up *Limiter, slots int, n int64) time.Duration {
	rate := minRate
	if capped := up.Stats().BytesPerSec; capped > 0 {
		rate = min(rate, capped/int64(2*max(slots, 1)))
	}
	rate = max(rate, 1<<10)
	return idle + time.Duration(float64(n)/float64(rate)*float64(time.Second))
}

// serveConn runs one session until the client closes it, it is idle for
// s.idle, a transfer overruns its deadline, it breaks the protocol or ctx
// is done. Everything the session starts runs under its own context, which
// ends with it. The caller closes c. A v1 session (ProtocolIDv1) has no
// have-wait requests.
func (s *server) serveConn(ctx context.Context, p peer.ID, c io.ReadWriteCloser, v1 bool) (err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.stats.sessions.Add(1)
	var timedOut atomic.Bool
	defer func() { s.stats.ended(err, timedOut.Load()) }()
	stop := context.AfterFunc(ctx, func() { _ = abort(c) })
	defer stop()
	idle := time.AfterFunc(s.idle, func() { timedOut.Store(true); cancel(); _ = abort(c) })
	defer idle.Stop()
	br := bufio.NewReaderSize(c, 4096)
	bw := bufio.NewWriterSize(c, ioChunk+64)
	// held is the slot of the range sent last (linger.go): released when
	// the client's next frame arrives, at the latest after the linger.
	var held *heldSlot
	defer func() {
		if held != nil {
			held.drop()
		}
	}()
	for {
		m, err := ReadFrame(br)
		if held != nil {
			if err == nil {
				held.answered(s.linger)
			} else {
				held.drop()
			}
			held = nil
		}
		if err != nil {
			if errors.Is(err, io.EOF) && !timedOut.Load() {
				return nil
			}
			if errors.Is(err, ErrFrame) {
				// Say why before hanging up: an honest peer of another
				// release can tell what it did wrong.
				_ = refuse(bw, CodeBadRequest, "%v", err)
				_ = bw.Flush()
			}
			if timedOut.Load() {
				return fmt.Errorf("serve %s: %w", p, errTimeout)
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("serve %s: read request: %w", p, err)
		}
		// While a request is served, the timer is its deadline: a transfer
		// of n bytes gets the idle timeout plus n at the minimum rate
		// (budget), however it is paced, so a client that trickles reads
		// cannot hold a slot.
		idle.Reset(s.idle)
		budget := func(n int64) { idle.Reset(transferTimeout(s.idle, s.minRate, s.up, s.slots.size(), n)) }
		if _, ok := m.(*HaveWaitRequest); ok && v1 {
			return fmt.Errorf("serve %s: %w: have-wait request in a %s session", p, errProtocol, ProtocolIDv1)
		}
		if s.adm != nil {
			// Pace the peer's requests: a flood of requests waits for its
			// own tokens (under the idle timer) and takes nobody else's.
			throttled, err := s.adm.request(ctx, p)
			if throttled {
				s.stats.throttledRequests.Add(1)
			}
			if err != nil {
				if timedOut.Load() {
					return fmt.Errorf("serve %s: %w", p, errTimeout)
				}
				return err
			}
		}
		var sent func() // the slot of a range sent in full
		err = s.handle(ctx, p, bw, m, budget, func(release func()) { sent = release })
		if err == nil {
			err = bw.Flush()
		}
		if sent != nil {
			if err == nil {
				held = s.linger.hold(sent)
			} else {
				sent()
			}
		}
		if timedOut.Load() {
			return fmt.Errorf("serve %s: %w", p, errTimeout)
		}
		if err != nil {
			return fmt.Errorf("serve %s: %w", p, err)
		}
		idle.Reset(s.idle)
	}
}

// Why a session ended, for the counters.
var (
	errTimeout  = errors.New("idle or over its transfer deadline")
	errProtocol = errors.New("protocol violation")
)

func refuse(w io.Writer, code ErrorCode, format string, args ...any) error {
	return WriteFrame(w, &ErrorResponse{Code: code, Message: fmt.Sprintf(format, args...)})
}

// refuse answers a request with an error and counts it.
func (s *server) refuse(w io.Writer, code ErrorCode, format string, args ...any) error {
	s.stats.refused(code)
	return refuse(w, code, format, args...)
}

// refuseBusy answers busy for a slot error and counts it.
func (s *server) refuseBusy(w io.Writer, err error) error {
	s.stats.refusedErr(err)
	return refuse(w, CodeBusy, "%v", err)
}

// errGeometry marks a request whose piece geometry this node does not
// serve for the payload it holds.
var errGeometry = errors.New("piece geometry refused")

// handle answers one request. A range sent in full passes its slot's
// release to sent instead of releasing it.
func (s *server) handle(ctx context.Context, p peer.ID, w io.Writer, m Message, budget func(int64), sent func(release func())) error {
	switch m := m.(type) {
	case *HaveRequest:
		hv, err := s.have(m.Hash, m.PieceSize)
		if err != nil {
			return s.refuse(w, CodeBadRequest, "%v", err)
		}
		return WriteFrame(w, hv)
	case *HaveWaitRequest:
		hv, err := s.haveWait(ctx, m)
		if err != nil {
			return s.refuse(w, CodeBadRequest, "%v", err)
		}
		return WriteFrame(w, hv)
	case *ManifestRequest:
		sums, err := s.manifest(ctx, p, m.Hash, m.PieceSize, budget)
		switch {
		case errors.Is(err, content.ErrNotFound):
			return s.refuse(w, CodeNotFound, "no manifest for %s", m.Hash)
		case errors.Is(err, errGeometry):
			return s.refuse(w, CodeBadRequest, "%v", err)
		case errors.Is(err, errRehash):
			s.stats.rate.Add(1)
			return refuse(w, CodeBusy, "%v", err)
		case errors.Is(err, errBusy):
			return s.refuseBusy(w, err)
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			s.log.Warn("exchange: manifest failed", "hash", m.Hash, "err", err)
			return s.refuse(w, CodeInternal, "manifest failed")
		}
		return WriteFrame(w, &ManifestResponse{Sums: sums})
	case *RangeRequest:
		return s.sendRange(ctx, p, w, m, budget, sent)
	default:
		return fmt.Errorf("%w: unexpected %T from client", errProtocol, m)
	}
}

func (s *server) have(h content.Hash, pieceSize int64) (*HaveResponse, error) {
	if size, err := s.store.Size(h); err == nil {
		if err := CheckGeometry(size, pieceSize); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", errGeometry, h, err)
		}
		if bm := s.seeding.advertise(h, size, pieceSize); bm != nil {
			return &HaveResponse{Status: HavePartial, Size: size, PieceSize: pieceSize, Bitmap: bm}, nil
		}
		return &HaveResponse{Status: HaveFull, Size: size, PieceSize: pieceSize}, nil
	}
	if pw, ok := s.store.Partial(h); ok && pw.PieceSize() == pieceSize {
		return &HaveResponse{Status: HavePartial, Size: pw.Size(), PieceSize: pieceSize, Bitmap: pw.Bitmap()}, nil
	}
	return &HaveResponse{Status: HaveNone}, nil
}

// haveWait answers a have-wait request as soon as this node offers a piece
// the client needs, or when the wait (capped at half the idle timeout) is
// over, whichever comes first.
func (s *server) haveWait(ctx context.Context, m *HaveWaitRequest) (*HaveResponse, error) {
	wait := min(m.Wait, s.idle/2)
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		// Take the channels before looking, so that no change is missed.
		stored, seeded := s.store.Changed(), s.seeding.Changed()
		hv, err := s.have(m.Hash, m.PieceSize)
		if err != nil || offers(hv, m) {
			return hv, err
		}
		if s.waiting != nil {
			s.waiting()
		}
		select {
		case <-stored:
		case <-seeded:
		case <-timer.C:
			return hv, nil
		case <-ctx.Done():
			return hv, nil
		}
	}
}

// offers reports whether a have answer holds a piece the request needs (or
// contradicts the request's geometry, which the client must hear at once).
func offers(hv *HaveResponse, m *HaveWaitRequest) bool {
	switch {
	case hv.Status == HaveNone:
		return false
	case hv.Size != m.Size:
		return true
	case hv.Status == HaveFull:
		for _, b := range m.Need {
			if b != 0 {
				return true
			}
		}
		return false
	}
	for i, b := range m.Need {
		if b&hv.Bitmap[i] != 0 {
			return true
		}
	}
	return false
}

// manifest returns the piece hashes of h: computed from the verified blob,
// or, for a download in progress with the same geometry, the hashes of its
// accepted pieces (zero for the others). A manifest not cached is computed
// under this session's context and an upload slot of p, within the
// transfer deadline of the blob's size: hashing a blob costs what sending
// it does.
func (s *server) manifest(ctx context.Context, p peer.ID, h content.Hash, pieceSize int64, budget func(int64)) ([]content.Hash, error) {
	if size, err := s.store.Size(h); err == nil {
		if err := CheckGeometry(size, pieceSize); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", errGeometry, h, err)
		}
		return s.manifests.get(ctx, h, size, pieceSize, func(ctx context.Context) ([]content.Hash, error) {
			release, err := s.slots.take(ctx, p, s.slotWait)
			if err != nil {
				return nil, err
			}
			defer release()
			budget(size)
			return computeManifest(ctx, s.store, h, pieceSize)
		})
	}
	if pw, ok := s.store.Partial(h); ok && pw.PieceSize() == pieceSize {
		return pw.PieceSums(), nil
	}
	return nil, content.ErrNotFound
}

// rangeSource finds verified bytes for [off, off+n) of h.
func (s *server) rangeSource(h content.Hash, off, n int64) (io.ReaderAt, int64, func(), error) {
	if r, err := s.store.Open(h); err == nil {
		return r, r.Size(), func() { _ = r.Close() }, nil
	}
	pw, ok := s.store.Partial(h)
	if !ok {
		return nil, 0, nil, content.ErrNotFound
	}
	ps := pw.PieceSize()
	if off+n > pw.Size() {
		return pw, pw.Size(), func() {}, nil // rejected by the caller's bounds check
	}
	for i := off / ps; i <= (off+n-1)/ps; i++ {
		if !pw.Accepted(int(i)) {
			return nil, 0, nil, content.ErrNotFound
		}
	}
	return &partialSource{s: s.store, w: pw}, pw.Size(), func() {}, nil
}

// partialSource reads accepted pieces of a download in progress; if the
// download commits meanwhile, it reads on from the verified blob.
type partialSource struct {
	s *content.Store
	w *content.Writer
	r *content.Reader
}

func (ps *partialSource) ReadAt(p []byte, off int64) (int, error) {
	if ps.r == nil {
		n, err := ps.w.ReadAt(p, off)
		if !errors.Is(err, content.ErrClosed) {
			return n, err
		}
		r, oerr := ps.s.Open(ps.w.Hash())
		if oerr != nil {
			return 0, err
		}
		ps.r = r
	}
	return ps.r.ReadAt(p, off)
}

func (ps *partialSource) close() {
	if ps.r != nil {
		_ = ps.r.Close()
	}
}

func (s *server) sendRange(ctx context.Context, p peer.ID, w io.Writer, m *RangeRequest, budget func(int64), sent func(release func())) error {
	release, err := s.slots.take(ctx, p, s.slotWait)
	if err != nil {
		return s.refuseBusy(w, err)
	}
	complete := false
	defer func() {
		if complete && sent != nil {
			sent(release)
		} else {
			release()
		}
	}()
	budget(m.Len)
	if size, err := s.store.Size(m.Hash); err == nil && m.Offset+m.Len <= size {
		end, ok := s.seeding.begin(m.Hash, size, m.Offset, m.Len)
		if !ok {
			return s.refuse(w, CodeNotFound, "%s [%d, +%d) not on offer yet (initial seeding)", m.Hash, m.Offset, m.Len)
		}
		defer func() { end(complete) }()
	}
	src, size, done, err := s.rangeSource(m.Hash, m.Offset, m.Len)
	if err != nil {
		return s.refuse(w, CodeNotFound, "%s [%d, +%d) not held", m.Hash, m.Offset, m.Len)
	}
	defer done()
	if m.Offset+m.Len > size {
		return s.refuse(w, CodeBadRequest, "range [%d, +%d) beyond size %d", m.Offset, m.Len, size)
	}
	if ps, ok := src.(*partialSource); ok {
		defer ps.close()
		end := s.seeding.sharing(m.Hash, size, ps.w.PieceSize(), m.Offset, m.Len)
		defer func() { end(complete) }()
	}
	if err := WriteFrame(w, &RangeResponse{Len: m.Len}); err != nil {
		return err
	}
	bp := chunkBufs.Get().(*[]byte)
	defer chunkBufs.Put(bp)
	buf := *bp
	var out int64
	defer func() { s.sb.addOut(p, out) }()
	pay := &meter{l: s.up}
	for out < m.Len {
		c := buf[:min(int64(len(buf)), m.Len-out)]
		if _, err := src.ReadAt(c, m.Offset+out); err != nil {
			// We promised bytes we cannot read: break the session rather
			// than send anything unverified.
			return fmt.Errorf("read %s at %d: %w", m.Hash, m.Offset+out, err)
		}
		if err := pay.add(ctx, len(c)); err != nil {
			return err
		}
		n, err := w.Write(c)
		out += int64(n)
		if err != nil {
			return err
		}
	}
	if err := pay.flush(ctx); err != nil {
		return err
	}
	complete = true
	return nil
}

var chunkBufs = sync.Pool{New: func() any { b := make([]byte, ioChunk); return &b }}

// abort closes a connection so that blocked reads and writes return: a
// libp2p stream is reset, anything else closed.
func abort(c io.Closer) error {
	if r, ok := c.(interface{ Reset() error }); ok {
		return r.Reset()
	}
	return c.Close()
}

// manifestCache keeps the piece hashes of recently asked-for blobs, at
// most maxBytes of them (32 bytes a piece; computations in progress count
// what they will hold). Concurrent askers of one manifest share one
// computation, and a payload is hashed in other piece sizes than its
// DefaultPieceSize at most maxRehash times per rehashWindow: a flood of
// manifest requests in ever new piece sizes (every size from MinPieceSize
// to MaxPieceSize is a valid geometry) costs a few hashes, not one each.
// The default geometry, the one honest nodes ask for, is never refused
// (and, once computed, cached), so the flood cannot use up the cap for
// honest peers.
type manifestCache struct {
	mu       sync.Mutex
	maxBytes int64
	bytes    int64
	order    []manifestKey // oldest first
	entries  map[manifestKey]*manifestEntry

	now          func() time.Time
	maxRehash    int
	rehashWindow time.Duration
	hashed       map[content.Hash][]time.Time // computations started in the window
}

// Rehash cap: an honest node asks for one geometry per payload (the
// DefaultPieceSize of its size, or the one of a download in progress), so
// four in ten minutes leaves room for eviction and a second release.
const (
	maxRehash    = 4
	rehashWindow = 10 * time.Minute
)

// errRehash refuses a manifest that would hash a payload more often than
// the cache allows.
var errRehash = errors.New("payload hashed too often for manifests; ask again later in the usual piece size")

type manifestKey struct {
	h         content.Hash
	pieceSize int64
}

type manifestEntry struct {
	ready chan struct{}
	bytes int64
	sums  []content.Hash
	err   error
}

// manifestCacheBytes bounds the manifest cache: four manifests of
// MaxPieces pieces, or hundreds of usual ones.
const manifestCacheBytes = 16 << 20

func newManifestCache(maxBytes int64) *manifestCache {
	return &manifestCache{
		maxBytes: maxBytes, entries: map[manifestKey]*manifestEntry{},
		now: time.Now, maxRehash: maxRehash, rehashWindow: rehashWindow, hashed: map[content.Hash][]time.Time{},
	}
}

// rehashLocked reports whether h (size bytes) may be hashed in pieces of
// pieceSize now, and if so counts it (unless it is the default geometry).
func (c *manifestCache) rehashLocked(h content.Hash, size, pieceSize int64) bool {
	if pieceSize == DefaultPieceSize(size) {
		return true
	}
	now := c.now()
	recent := c.hashed[h][:0]
	for _, t := range c.hashed[h] {
		if now.Sub(t) < c.rehashWindow {
			recent = append(recent, t)
		}
	}
	if len(recent) >= c.maxRehash {
		c.hashed[h] = recent
		return false
	}
	c.hashed[h] = append(recent, now)
	// Forget payloads not hashed in the window, so the map stays as small
	// as the set of recently hashed payloads.
	if len(c.hashed) > 64 {
		for k, ts := range c.hashed {
			if len(ts) == 0 || now.Sub(ts[len(ts)-1]) >= c.rehashWindow {
				delete(c.hashed, k)
			}
		}
	}
	return true
}

// refundLocked takes back the count of a computation of h in pieces of
// pieceSize that got no upload slot, so hashed nothing.
func (c *manifestCache) refundLocked(h content.Hash, size, pieceSize int64) {
	if pieceSize == DefaultPieceSize(size) {
		return
	}
	if ts := c.hashed[h]; len(ts) > 0 {
		c.hashed[h] = ts[:len(ts)-1]
	}
}

// put records verified piece hashes (from a download that just committed).
func (c *manifestCache) put(h content.Hash, pieceSize int64, sums []content.Hash) {
	e := &manifestEntry{ready: make(chan struct{}), sums: sums, bytes: 32 * int64(len(sums))}
	close(e.ready)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.insertLocked(manifestKey{h, pieceSize}, e)
}

func (c *manifestCache) insertLocked(k manifestKey, e *manifestEntry) {
	if old, ok := c.entries[k]; ok {
		c.bytes -= old.bytes
	} else {
		c.order = append(c.order, k)
	}
	c.entries[k] = e
	c.bytes += e.bytes
	for c.bytes > c.maxBytes && len(c.order) > 1 {
		c.removeLocked(c.order[0])
	}
}

func (c *manifestCache) removeLocked(k manifestKey) {
	e, ok := c.entries[k]
	if !ok {
		return
	}
	delete(c.entries, k)
	c.bytes -= e.bytes
	if i := slices.Index(c.order, k); i >= 0 {
		c.order = slices.Delete(c.order, i, i+1)
	}
}

// size returns the bytes the cache holds.
func (c *manifestCache) size() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes
}

// get returns the manifest of h (size bytes) in pieces of pieceSize, from
// the cache or computed with compute. Concurrent askers share one
// computation; if it fails (its session ended, no slot), the next asker
// computes it under its own context.
func (c *manifestCache) get(ctx context.Context, h content.Hash, size, pieceSize int64, compute func(context.Context) ([]content.Hash, error)) ([]content.Hash, error) {
	k := manifestKey{h, pieceSize}
	for {
		c.mu.Lock()
		e, ok := c.entries[k]
		if !ok && !c.rehashLocked(h, size, pieceSize) {
			c.mu.Unlock()
			return nil, fmt.Errorf("manifest of %s in pieces of %d: %w", h, pieceSize, errRehash)
		}
		if !ok {
			e = &manifestEntry{ready: make(chan struct{}), bytes: 32 * int64(content.NumPieces(size, pieceSize))}
			c.insertLocked(k, e)
		}
		c.mu.Unlock()
		if !ok {
			e.sums, e.err = compute(ctx)
			if e.err != nil {
				c.mu.Lock()
				if c.entries[k] == e {
					c.removeLocked(k)
				}
				if errors.Is(e.err, errBusy) {
					// Nothing was hashed. (A computation cut midway did
					// hash, and counts: cancelling is no way around the cap.)
					c.refundLocked(h, size, pieceSize)
				}
				c.mu.Unlock()
			}
			close(e.ready)
			return e.sums, e.err
		}
		select {
		case <-e.ready:
			if e.err == nil {
				return e.sums, nil
			}
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if !errors.Is(e.err, context.Canceled) && !errors.Is(e.err, context.DeadlineExceeded) {
				return nil, e.err
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// computeManifest hashes the pieces of the blob h, reading through one
// pooled buffer: nothing is allocated per piece but its 32-byte sum.
func computeManifest(ctx context.Context, st *content.Store, h content.Hash, pieceSize int64) ([]content.Hash, error) {
	r, err := st.Open(h)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	size := r.Size()
	if err := CheckGeometry(size, pieceSize); err != nil {
		return nil, fmt.Errorf("manifest of %s: %w", h, err)
	}
	sums := make([]content.Hash, content.NumPieces(size, pieceSize))
	bp := chunkBufs.Get().(*[]byte)
	defer chunkBufs.Put(bp)
	buf := *bp
	hw := sha256.New()
	var off int64
	for i := range sums {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hw.Reset()
		end := min(off+pieceSize, size)
		for off < end {
			c := buf[:min(int64(len(buf)), end-off)]
			if _, err := r.ReadAt(c, off); err != nil {
				return nil, fmt.Errorf("manifest of %s: %w", h, err)
			}
			hw.Write(c)
			off += int64(len(c))
		}
		hw.Sum(sums[i][:0])
	}
	return sums, nil
}
