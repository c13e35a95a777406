package content

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
)

// Writer assembles one payload piece by piece (from several peers at once)
// in the download area. Pieces are written with WritePiece, which returns the
// piece's SHA-256 so the caller can verify it; the caller then Accepts or
// Resets the piece. Commit checks the whole file against the expected hash
// and size before it becomes visible in the store.
//
// Accepted pieces can be read back with ReadAt (to serve them to other peers
// before the download is complete). Checkpoint makes the accepted pieces
// durable, so that a download interrupted by a crash resumes with them.
//
// HashAhead feeds the accepted pieces at the start of the file into the
// whole-file SHA-256 while the rest is still arriving, so that Commit only
// hashes what is left. Accepted pieces cannot be written again, and
// resetting one that was hashed discards the prefix, so the bytes Commit
// verifies are the bytes in the file.
//
// WritePiece, ReadAt, HashAhead and the query methods may be called
// concurrently for different pieces.
type Writer struct {
	s         *Store
	h         Hash
	size      int64
	pieceSize int64
	n         int
	f         *os.File

	mu       sync.RWMutex
	accepted []bool
	writing  []bool
	sums     []Hash // of written or accepted pieces
	dirty    bool   // accepted pieces not yet checkpointed
	closed   bool
	gen      uint64 // bumped when an accepted piece is reset

	// The whole-file hash of [0, phOff), guarded by hmu (taken before mu).
	// It is valid while phGen == gen.
	hmu   sync.Mutex
	ph    hash.Hash
	phOff int64
	phGen uint64
}

type stateFile struct {
	Version   int             `json:"version"`
	Size      int64           `json:"size"`
	PieceSize int64           `json:"piece_size"`
	Pieces    map[string]Hash `json:"pieces"` // piece index -> sha256
}

func (s *Store) partPath(h Hash) string  { return filepath.Join(s.stageDir, h.String()+".part") }
func (s *Store) statePath(h Hash) string { return filepath.Join(s.stageDir, h.String()+".state") }

func readState(path string) (*stateFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var st stateFile
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if st.Version != 1 || st.Size < 0 || st.PieceSize <= 0 {
		return nil, fmt.Errorf("read %s: bad header", path)
	}
	return &st, nil
}

// NumPieces returns how many pieces of pieceSize make up size bytes.
func NumPieces(size, pieceSize int64) int {
	if size == 0 {
		return 0
	}
	return int((size + pieceSize - 1) / pieceSize)
}

// Writer opens a piecewise download of h (size bytes, pieces of pieceSize).
// If an interrupted download of h of the same size is in the download
// area, its checkpointed pieces are already accepted (in another piece
// size, those of pieceSize that lie wholly inside them). It fails with ErrExists
// if the blob is present, ErrBusy if another Writer for h is open, and
// ErrStoreFull if the size limit cannot make room.
func (s *Store) Writer(h Hash, size, pieceSize int64) (w *Writer, err error) {
	if size < 0 || pieceSize <= 0 {
		return nil, fmt.Errorf("writer %s: bad geometry size=%d piece=%d", h, size, pieceSize)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.blobs[h]; ok {
		return nil, fmt.Errorf("writer %s: %w", h, ErrExists)
	}
	if _, ok := s.writers[h]; ok {
		return nil, fmt.Errorf("writer %s: %w", h, ErrBusy)
	}
	// A leftover partial already holds a reservation of its own size.
	old, hadPartial := s.partials[h]
	if hadPartial {
		delete(s.partials, h)
		s.reserved -= old
	}
	if err := s.reserveLocked(size); err != nil {
		if hadPartial {
			s.partials[h] = old
			s.reserved += old
		}
		return nil, fmt.Errorf("writer %s: %w", h, err)
	}
	defer func() {
		if err != nil {
			s.reserved -= size
		}
	}()
	n := NumPieces(size, pieceSize)
	w = &Writer{
		s: s, h: h, size: size, pieceSize: pieceSize, n: n,
		accepted: make([]bool, n), writing: make([]bool, n), sums: make([]Hash, n),
		ph: sha256.New(),
	}
	// A partial of the same size resumes; one in another piece size (left
	// by an agent release with another default) keeps the pieces of this
	// size that lie wholly inside its accepted ones.
	st, serr := readState(s.statePath(h))
	resume := serr == nil && st.Size == size
	flags := os.O_RDWR | os.O_CREATE
	if !resume {
		flags |= os.O_TRUNC
		_ = os.Remove(s.statePath(h))
	}
	f, err := os.OpenFile(s.partPath(h), flags, 0o644)
	if err != nil {
		return nil, fmt.Errorf("writer %s: %w", h, diskErr(err))
	}
	if err := f.Truncate(size); err != nil {
		_ = f.Close()
		_ = os.Remove(s.partPath(h))
		return nil, fmt.Errorf("writer %s: size staging file: %w", h, diskErr(err))
	}
	w.f = f
	switch {
	case resume && st.PieceSize == pieceSize:
		for k, sum := range st.Pieces {
			i, err := strconv.Atoi(k)
			if err != nil || i < 0 || i >= n {
				continue
			}
			w.accepted[i] = true
			w.sums[i] = sum
		}
	case resume:
		if err := w.adoptPieces(st); err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("writer %s: %w", h, err)
		}
	}
	s.writers[h] = w
	return w, nil
}

// adoptPieces accepts the pieces of w's geometry that lie wholly inside
// pieces st (a partial of the same payload in another piece size)
// accepted, hashing each from the staging file; the next checkpoint
// records them in w's geometry. The bytes were verified when their pieces
// were accepted and fsynced before st was written, and Commit checks the
// whole file's hash as always.
func (w *Writer) adoptPieces(st *stateFile) error {
	held := make([]bool, NumPieces(w.size, st.PieceSize))
	for k := range st.Pieces {
		if i, err := strconv.Atoi(k); err == nil && i >= 0 && i < len(held) {
			held[i] = true
		}
	}
	for j := range w.n {
		off, n := w.PieceRange(j)
		whole := true
		for i := off / st.PieceSize; i*st.PieceSize < off+n; i++ {
			whole = whole && held[i]
		}
		if !whole {
			continue
		}
		ph := sha256.New()
		if _, err := io.Copy(ph, io.NewSectionReader(w.f, off, n)); err != nil {
			return fmt.Errorf("rehash piece %d of a partial in %d-byte pieces: %w", j, st.PieceSize, diskErr(err))
		}
		w.accepted[j], w.dirty = true, true
		copy(w.sums[j][:], ph.Sum(nil))
	}
	return nil
}

// Partial returns the open Writer assembling h, if any, so that accepted
// pieces can be served to peers.
func (s *Store) Partial(h Hash) (*Writer, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w, ok := s.writers[h]
	return w, ok
}

// Partials returns the hashes of the downloads in progress that hold at
// least one accepted piece: what this node can already serve of a payload
// it does not hold whole. The daemon announces them over gossip with the
// complete blobs, so that the site's members fetch from a download while
// it runs and, if its fetcher dies, the next one finds the pieces on the
// LAN instead of fetching them across the WAN again. Which pieces are held
// is not gossiped: a peer asks with the exchange's have request.
func (s *Store) Partials() []Hash {
	s.mu.Lock()
	ws := make([]*Writer, 0, len(s.writers))
	for _, w := range s.writers {
		ws = append(ws, w)
	}
	s.mu.Unlock()
	var out []Hash
	for _, w := range ws {
		if w.AcceptedCount() > 0 {
			out = append(out, w.h)
		}
	}
	slices.SortFunc(out, func(a, b Hash) int { return bytes.Compare(a[:], b[:]) })
	return out
}

// Hash returns the hash being assembled.
func (w *Writer) Hash() Hash { return w.h }

// Size returns the payload size.
func (w *Writer) Size() int64 { return w.size }

// PieceSize returns the piece size.
func (w *Writer) PieceSize() int64 { return w.pieceSize }

// NumPieces returns the number of pieces.
func (w *Writer) NumPieces() int { return w.n }

// PieceRange returns the offset and length of piece i.
func (w *Writer) PieceRange(i int) (off, n int64) {
	off = int64(i) * w.pieceSize
	n = min(w.pieceSize, w.size-off)
	return off, n
}

// Accepted reports whether piece i has been accepted.
func (w *Writer) Accepted(i int) bool {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return i >= 0 && i < w.n && w.accepted[i]
}

// AcceptedCount returns how many pieces are accepted.
func (w *Writer) AcceptedCount() int {
	w.mu.RLock()
	defer w.mu.RUnlock()
	c := 0
	for _, a := range w.accepted {
		if a {
			c++
		}
	}
	return c
}

// Bitmap returns the accepted pieces as a bitmap: piece i is bit 7-i%8 of
// byte i/8 (most significant bit first).
func (w *Writer) Bitmap() []byte {
	w.mu.RLock()
	defer w.mu.RUnlock()
	b := make([]byte, (w.n+7)/8)
	for i, a := range w.accepted {
		if a {
			b[i/8] |= 0x80 >> (i % 8)
		}
	}
	return b
}

// PieceSums returns the SHA-256 of every accepted piece (zero for the
// others).
func (w *Writer) PieceSums() []Hash {
	w.mu.RLock()
	defer w.mu.RUnlock()
	out := make([]Hash, w.n)
	for i, a := range w.accepted {
		if a {
			out[i] = w.sums[i]
		}
	}
	return out
}

// WritePiece streams piece i from r into the staging file and returns its
// SHA-256. It reads exactly the piece's length: a short read fails with
// io.ErrUnexpectedEOF. The piece is not accepted until Accept. Writing an
// accepted piece, or one being written, fails with ErrBusy.
func (w *Writer) WritePiece(ctx context.Context, i int, r io.Reader) (Hash, error) {
	if i < 0 || i >= w.n {
		return Hash{}, fmt.Errorf("write piece %d of %s: out of range (0..%d)", i, w.h, w.n-1)
	}
	w.mu.Lock()
	switch {
	case w.closed:
		w.mu.Unlock()
		return Hash{}, fmt.Errorf("write piece %d of %s: %w", i, w.h, ErrClosed)
	case w.accepted[i] || w.writing[i]:
		w.mu.Unlock()
		return Hash{}, fmt.Errorf("write piece %d of %s: %w", i, w.h, ErrBusy)
	}
	w.writing[i] = true
	w.sums[i] = Hash{}
	w.mu.Unlock()

	off, n := w.PieceRange(i)
	hw := sha256.New()
	got, err := copyCtx(ctx, io.MultiWriter(io.NewOffsetWriter(w.f, off), hw), io.LimitReader(r, n))
	if err == nil && got != n {
		err = io.ErrUnexpectedEOF
	}
	var sum Hash
	hw.Sum(sum[:0])

	w.mu.Lock()
	defer w.mu.Unlock()
	w.writing[i] = false
	if err != nil {
		return Hash{}, fmt.Errorf("write piece %d of %s: %w", i, w.h, diskErr(err))
	}
	w.sums[i] = sum
	return sum, nil
}

// Accept marks piece i, as last written, as verified by the caller.
func (w *Writer) Accept(i int) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if i < 0 || i >= w.n || w.writing[i] || w.sums[i].IsZero() {
		return fmt.Errorf("accept piece %d of %s: not written", i, w.h)
	}
	w.accepted[i] = true
	w.dirty = true
	w.s.notifyChange()
	return nil
}

// Reset forgets piece i so that it will be written again.
func (w *Writer) Reset(i int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if i < 0 || i >= w.n {
		return
	}
	if w.accepted[i] {
		w.dirty = true
		w.gen++
		w.s.notifyChange()
	}
	w.accepted[i] = false
	w.sums[i] = Hash{}
}

// ReadAt reads accepted bytes; it fails with ErrNotFound if the range is not
// entirely within accepted pieces.
func (w *Writer) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > w.size {
		return 0, fmt.Errorf("read %s at %d+%d: %w", w.h, off, len(p), ErrNotFound)
	}
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return 0, fmt.Errorf("read %s: %w", w.h, ErrClosed)
	}
	if len(p) > 0 {
		for i := int(off / w.pieceSize); i <= int((off+int64(len(p))-1)/w.pieceSize); i++ {
			if !w.accepted[i] {
				w.mu.RUnlock()
				return 0, fmt.Errorf("read %s piece %d: %w", w.h, i, ErrNotFound)
			}
		}
	}
	// Hold the read lock so Close cannot close the file under us.
	defer w.mu.RUnlock()
	return w.f.ReadAt(p, off)
}

// Checkpoint makes the accepted pieces durable: it fsyncs the staging file
// and then atomically writes the piece list.
func (w *Writer) Checkpoint() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.checkpointLocked()
}

func (w *Writer) checkpointLocked() error {
	if w.closed {
		return fmt.Errorf("checkpoint %s: %w", w.h, ErrClosed)
	}
	if !w.dirty {
		return nil
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("checkpoint %s: %w", w.h, diskErr(err))
	}
	st := stateFile{Version: 1, Size: w.size, PieceSize: w.pieceSize, Pieces: map[string]Hash{}}
	for i, a := range w.accepted {
		if a {
			st.Pieces[strconv.Itoa(i)] = w.sums[i]
		}
	}
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", w.h, err)
	}
	if err := writeFileAtomic(w.s.statePath(w.h), b); err != nil {
		return fmt.Errorf("checkpoint %s: %w", w.h, err)
	}
	// The part file's mtime (on the store's clock) dates the partial for
	// the PartialTTL check at Open.
	now := w.s.now()
	_ = os.Chtimes(w.s.partPath(w.h), now, now)
	w.dirty = false
	return nil
}

// hashChunk is how much HashAhead reads under the Writer's read lock.
const hashChunk = 128 << 10

// checkPrefixLocked discards the hashed prefix if an accepted piece was
// reset since it was computed. The caller holds hmu and mu.
func (w *Writer) checkPrefixLocked() {
	if w.phGen != w.gen {
		w.ph.Reset()
		w.phOff = 0
		w.phGen = w.gen
	}
}

// nextHashChunkLocked reads the next chunk of the accepted prefix that is
// not hashed yet into buf and returns its length, 0 when the next piece is
// not accepted or the file is hashed to its end. The caller holds hmu and
// mu (read or write) and feeds the chunk to w.ph.
func (w *Writer) nextHashChunkLocked(buf []byte) (int, error) {
	w.checkPrefixLocked()
	if w.phOff >= w.size {
		return 0, nil
	}
	i := int(w.phOff / w.pieceSize)
	if !w.accepted[i] {
		return 0, nil
	}
	end := min(int64(i+1)*w.pieceSize, w.size)
	n := int(min(int64(len(buf)), end-w.phOff))
	if _, err := w.f.ReadAt(buf[:n], w.phOff); err != nil {
		return 0, fmt.Errorf("hash %s at %d: %w", w.h, w.phOff, diskErr(err))
	}
	return n, nil
}

// HashAhead feeds the accepted pieces at the start of the file that are not
// hashed yet into the whole-file hash, so that Commit has less left to do.
// It returns when it reaches a piece that is not accepted, the end of the
// file, or ctx is done; ErrClosed once the Writer is closed.
func (w *Writer) HashAhead(ctx context.Context) error {
	w.hmu.Lock()
	defer w.hmu.Unlock()
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := (*bp)[:min(len(*bp), hashChunk)]
	for ctx.Err() == nil {
		w.mu.RLock()
		if w.closed {
			w.mu.RUnlock()
			return fmt.Errorf("hash %s: %w", w.h, ErrClosed)
		}
		n, err := w.nextHashChunkLocked(buf)
		w.mu.RUnlock()
		if err != nil || n == 0 {
			return err
		}
		// A piece reset after the read bumps gen: the next step or
		// Commit starts over.
		w.ph.Write(buf[:n])
		w.phOff += int64(n)
	}
	return ctx.Err()
}

// Commit verifies the assembled file against the expected SHA-256 and size
// and, if it matches, fsyncs it, renames it into the store and closes the
// Writer. On ErrVerify the Writer stays open so that the caller can Reset
// bad pieces and write them again.
func (w *Writer) Commit(ctx context.Context) error {
	w.hmu.Lock()
	defer w.hmu.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return fmt.Errorf("commit %s: %w", w.h, ErrClosed)
	}
	for i, a := range w.accepted {
		if !a {
			return fmt.Errorf("commit %s: piece %d: %w", w.h, i, ErrIncomplete)
		}
	}
	// Hash what HashAhead has not: with every piece accepted and the write
	// lock held, nothing can change under us.
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	w.checkPrefixLocked()
	for w.phOff < w.size {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("commit %s: hash staging file: %w", w.h, err)
		}
		n, err := w.nextHashChunkLocked(*bp)
		if err == nil && n == 0 {
			err = fmt.Errorf("no progress at %d", w.phOff) // cannot happen: every piece is accepted
		}
		if err != nil {
			return fmt.Errorf("commit %s: hash staging file: %w", w.h, err)
		}
		w.ph.Write((*bp)[:n])
		w.phOff += int64(n)
	}
	var got Hash
	w.ph.Sum(got[:0])
	if got != w.h {
		return fmt.Errorf("commit %s: %w: assembled file has sha256 %s (%d bytes)", w.h, ErrVerify, got, w.phOff)
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("commit %s: fsync: %w", w.h, diskErr(err))
	}
	if err := w.f.Close(); err != nil {
		return fmt.Errorf("commit %s: close: %w", w.h, diskErr(err))
	}
	w.closed = true
	w.s.mu.Lock()
	delete(w.s.writers, w.h)
	w.s.mu.Unlock()
	err := w.s.install(w.s.partPath(w.h), w.h, w.size)
	w.s.release(w.size)
	if rerr := os.Remove(w.s.statePath(w.h)); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) && err == nil {
		err = rerr
	}
	if err != nil {
		_ = os.Remove(w.s.partPath(w.h))
		return fmt.Errorf("commit %s: %w", w.h, err)
	}
	return nil
}

// Close checkpoints the accepted pieces and closes the Writer, keeping the
// partial download for a later Writer to resume. Closing twice is a no-op.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	err := w.checkpointLocked()
	if cerr := w.f.Close(); err == nil {
		err = diskErr(cerr)
	}
	w.closed = true
	w.s.mu.Lock()
	delete(w.s.writers, w.h)
	if err == nil {
		// The partial keeps its reservation until resumed, aborted or cleaned.
		w.s.partials[w.h] = w.size
	} else {
		w.s.reserved -= w.size
		_ = os.Remove(w.s.partPath(w.h))
		_ = os.Remove(w.s.statePath(w.h))
	}
	w.s.mu.Unlock()
	w.s.notifyChange()
	if err != nil {
		return fmt.Errorf("close writer %s: %w", w.h, err)
	}
	return nil
}

// Abort closes the Writer and removes the partial download.
func (w *Writer) Abort() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	_ = w.f.Close()
	w.s.mu.Lock()
	delete(w.s.writers, w.h)
	w.s.reserved -= w.size
	w.s.mu.Unlock()
	w.s.notifyChange()
	err := os.Remove(w.s.partPath(w.h))
	if rerr := os.Remove(w.s.statePath(w.h)); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) && err == nil {
		err = rerr
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("abort writer %s: %w", w.h, err)
	}
	return nil
}
