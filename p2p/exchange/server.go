package exchange

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
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
	slots     chan struct{} // upload slots (concurrent range transfers)
	slotWait  time.Duration // how long a range request may queue for a slot
	seeding   *seedTracker
	sb        *scoreboard
	manifests *manifestCache
	idle      time.Duration
	log       *slog.Logger
	// waiting, if set, is called when a have-wait request starts to wait
	// (tests).
	waiting func()
}

// serveConn runs one session until the client closes it, it is idle for
// s.idle, it breaks the protocol or ctx is done. The caller closes c. A v1
// session (ProtocolIDv1) has no have-wait requests.
func (s *server) serveConn(ctx context.Context, p peer.ID, c io.ReadWriteCloser, v1 bool) error {
	stop := context.AfterFunc(ctx, func() { _ = abort(c) })
	defer stop()
	idle := time.AfterFunc(s.idle, func() { _ = abort(c) })
	defer idle.Stop()
	br := bufio.NewReaderSize(c, 4096)
	bw := bufio.NewWriterSize(c, ioChunk+64)
	for {
		m, err := ReadFrame(br)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("serve %s: read request: %w", p, err)
		}
		// While a request is served the timer watches progress: each chunk
		// written re-arms it, so a client that stops reading is cut off.
		idle.Reset(s.idle)
		progress := func() { idle.Reset(s.idle) }
		if _, ok := m.(*HaveWaitRequest); ok && v1 {
			return fmt.Errorf("serve %s: have-wait request in a %s session", p, ProtocolIDv1)
		}
		if err := s.handle(ctx, p, bw, m, progress); err != nil {
			return fmt.Errorf("serve %s: %w", p, err)
		}
		if err := bw.Flush(); err != nil {
			return fmt.Errorf("serve %s: write: %w", p, err)
		}
		idle.Reset(s.idle)
	}
}

func refuse(w io.Writer, code ErrorCode, format string, args ...any) error {
	return WriteFrame(w, &ErrorResponse{Code: code, Message: fmt.Sprintf(format, args...)})
}

func (s *server) handle(ctx context.Context, p peer.ID, w io.Writer, m Message, progress func()) error {
	switch m := m.(type) {
	case *HaveRequest:
		return WriteFrame(w, s.have(m.Hash, m.PieceSize))
	case *HaveWaitRequest:
		return WriteFrame(w, s.haveWait(ctx, m))
	case *ManifestRequest:
		sums, err := s.manifest(ctx, m.Hash, m.PieceSize)
		if errors.Is(err, content.ErrNotFound) {
			return refuse(w, CodeNotFound, "no manifest for %s", m.Hash)
		}
		if err != nil {
			s.log.Warn("exchange: manifest failed", "hash", m.Hash, "err", err)
			return refuse(w, CodeInternal, "manifest failed")
		}
		return WriteFrame(w, &ManifestResponse{Sums: sums})
	case *RangeRequest:
		return s.sendRange(ctx, p, w, m, progress)
	default:
		return fmt.Errorf("unexpected %T from client", m)
	}
}

func (s *server) have(h content.Hash, pieceSize int64) *HaveResponse {
	if size, err := s.store.Size(h); err == nil {
		if bm := s.seeding.advertise(h, size, pieceSize); bm != nil {
			return &HaveResponse{Status: HavePartial, Size: size, PieceSize: pieceSize, Bitmap: bm}
		}
		return &HaveResponse{Status: HaveFull, Size: size, PieceSize: pieceSize}
	}
	if pw, ok := s.store.Partial(h); ok && pw.PieceSize() == pieceSize {
		return &HaveResponse{Status: HavePartial, Size: pw.Size(), PieceSize: pieceSize, Bitmap: pw.Bitmap()}
	}
	return &HaveResponse{Status: HaveNone}
}

// haveWait answers a have-wait request as soon as this node offers a piece
// the client needs, or when the wait (capped at half the idle timeout) is
// over, whichever comes first.
func (s *server) haveWait(ctx context.Context, m *HaveWaitRequest) *HaveResponse {
	wait := min(m.Wait, s.idle/2)
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		// Take the channels before looking, so that no change is missed.
		stored, seeded := s.store.Changed(), s.seeding.Changed()
		hv := s.have(m.Hash, m.PieceSize)
		if offers(hv, m) {
			return hv
		}
		if s.waiting != nil {
			s.waiting()
		}
		select {
		case <-stored:
		case <-seeded:
		case <-timer.C:
			return hv
		case <-ctx.Done():
			return hv
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
// accepted pieces (zero for the others).
func (s *server) manifest(ctx context.Context, h content.Hash, pieceSize int64) ([]content.Hash, error) {
	if s.store.Has(h) {
		return s.manifests.get(ctx, s.store, h, pieceSize)
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

func (s *server) sendRange(ctx context.Context, p peer.ID, w io.Writer, m *RangeRequest, progress func()) error {
	if !s.takeSlot(ctx) {
		return refuse(w, CodeBusy, "all upload slots busy")
	}
	defer func() { <-s.slots }()
	complete := false
	if size, err := s.store.Size(m.Hash); err == nil && m.Offset+m.Len <= size {
		end, ok := s.seeding.begin(m.Hash, size, m.Offset, m.Len)
		if !ok {
			return refuse(w, CodeNotFound, "%s [%d, +%d) not on offer yet (initial seeding)", m.Hash, m.Offset, m.Len)
		}
		defer func() { end(complete) }()
	}
	src, size, done, err := s.rangeSource(m.Hash, m.Offset, m.Len)
	if err != nil {
		return refuse(w, CodeNotFound, "%s [%d, +%d) not held", m.Hash, m.Offset, m.Len)
	}
	defer done()
	if m.Offset+m.Len > size {
		return refuse(w, CodeBadRequest, "range [%d, +%d) beyond size %d", m.Offset, m.Len, size)
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
	var sent int64
	defer func() { s.sb.addOut(p, sent) }()
	pay := &meter{l: s.up}
	for sent < m.Len {
		c := buf[:min(int64(len(buf)), m.Len-sent)]
		if _, err := src.ReadAt(c, m.Offset+sent); err != nil {
			// We promised bytes we cannot read: break the session rather
			// than send anything unverified.
			return fmt.Errorf("read %s at %d: %w", m.Hash, m.Offset+sent, err)
		}
		if err := pay.add(ctx, len(c)); err != nil {
			return err
		}
		n, err := w.Write(c)
		sent += int64(n)
		if err != nil {
			return err
		}
		progress()
	}
	if err := pay.flush(ctx); err != nil {
		return err
	}
	complete = true
	return nil
}

// takeSlot takes an upload slot, queueing at most s.slotWait.
func (s *server) takeSlot(ctx context.Context) bool {
	select {
	case s.slots <- struct{}{}:
		return true
	default:
	}
	if s.slotWait <= 0 {
		return false
	}
	wait := time.NewTimer(s.slotWait)
	defer wait.Stop()
	select {
	case s.slots <- struct{}{}:
		return true
	case <-wait.C:
	case <-ctx.Done():
	}
	return false
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

// manifestCache keeps the piece hashes of recently asked-for blobs.
type manifestCache struct {
	mu      sync.Mutex
	max     int
	order   []manifestKey // oldest first
	entries map[manifestKey]*manifestEntry
}

type manifestKey struct {
	h         content.Hash
	pieceSize int64
}

type manifestEntry struct {
	ready chan struct{}
	sums  []content.Hash
	err   error
}

func newManifestCache(max int) *manifestCache {
	return &manifestCache{max: max, entries: map[manifestKey]*manifestEntry{}}
}

// put records verified piece hashes (from a download that just committed).
func (c *manifestCache) put(h content.Hash, pieceSize int64, sums []content.Hash) {
	e := &manifestEntry{ready: make(chan struct{}), sums: sums}
	close(e.ready)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.insertLocked(manifestKey{h, pieceSize}, e)
}

func (c *manifestCache) insertLocked(k manifestKey, e *manifestEntry) {
	if _, ok := c.entries[k]; !ok {
		c.order = append(c.order, k)
	}
	c.entries[k] = e
	for len(c.order) > c.max {
		delete(c.entries, c.order[0])
		c.order = c.order[1:]
	}
}

func (c *manifestCache) get(ctx context.Context, st *content.Store, h content.Hash, pieceSize int64) ([]content.Hash, error) {
	k := manifestKey{h, pieceSize}
	c.mu.Lock()
	e, ok := c.entries[k]
	if !ok {
		e = &manifestEntry{ready: make(chan struct{})}
		c.insertLocked(k, e)
	}
	c.mu.Unlock()
	if ok {
		select {
		case <-e.ready:
			return e.sums, e.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	e.sums, e.err = computeManifest(ctx, st, h, pieceSize)
	close(e.ready)
	if e.err != nil {
		c.mu.Lock()
		if c.entries[k] == e {
			delete(c.entries, k)
		}
		c.mu.Unlock()
	}
	return e.sums, e.err
}

func computeManifest(ctx context.Context, st *content.Store, h content.Hash, pieceSize int64) ([]content.Hash, error) {
	r, err := st.Open(h)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	sums := make([]content.Hash, content.NumPieces(r.Size(), pieceSize))
	hw := sha256.New()
	for i := range sums {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hw.Reset()
		if _, err := io.CopyN(hw, r, min(pieceSize, r.Size()-int64(i)*pieceSize)); err != nil {
			return nil, fmt.Errorf("manifest of %s: %w", h, err)
		}
		hw.Sum(sums[i][:0])
	}
	return sums, nil
}
