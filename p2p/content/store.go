package content

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/patchring/patchring/internal/atomicfile"
)

// Options configure a Store.
type Options struct {
	// MaxBytes caps the bytes of blobs plus downloads in progress; 0 means
	// no cap. Least recently used blobs are evicted to stay under it.
	MaxBytes int64
	// PartialTTL is how long an interrupted piecewise download is kept for
	// resumption; older ones are removed at Open. 0 means 24 hours.
	PartialTTL time.Duration
	// Logger receives eviction and cleanup notes; nil logs nothing.
	Logger *slog.Logger
	// Now is the clock for access times and pin expiry; nil means time.Now.
	Now func() time.Time
}

// Info describes one verified blob.
type Info struct {
	Hash       Hash
	Size       int64
	LastAccess time.Time
	Pins       []Pin
}

// Pin keeps a blob from eviction for a reason until a time (zero: until
// Unpin).
type Pin struct {
	Reason string    `json:"reason"`
	Until  time.Time `json:"until,omitzero"`
}

type entry struct {
	size       int64
	lastAccess time.Time
	readers    int
}

// Store is a content-addressed store on disk. It is safe for concurrent use.
type Store struct {
	dir, blobDir, stageDir, pinFile string
	max                             int64
	ttl                             time.Duration
	log                             *slog.Logger
	now                             func() time.Time

	mu       sync.Mutex
	blobs    map[Hash]*entry
	used     int64          // bytes of blobs
	reserved int64          // bytes promised to downloads in progress
	partials map[Hash]int64 // resumable partials not opened by a Writer yet
	pins     map[Hash][]Pin // by hash
	writers  map[Hash]*Writer

	changeMu sync.Mutex
	changed  chan struct{} // closed and replaced at every change (see Changed)
}

// Open opens (creating if needed) the store in dir, removes crash leftovers
// from the download area and indexes the verified blobs.
func Open(dir string, opts Options) (*Store, error) {
	s := &Store{
		dir:      dir,
		blobDir:  filepath.Join(dir, "blobs"),
		stageDir: filepath.Join(dir, "staging"),
		pinFile:  filepath.Join(dir, "pins.json"),
		max:      opts.MaxBytes,
		ttl:      opts.PartialTTL,
		log:      opts.Logger,
		now:      opts.Now,
		blobs:    map[Hash]*entry{},
		partials: map[Hash]int64{},
		pins:     map[Hash][]Pin{},
		writers:  map[Hash]*Writer{},
		changed:  make(chan struct{}),
	}
	if s.max < 0 {
		return nil, fmt.Errorf("open content store %s: negative MaxBytes %d", dir, s.max)
	}
	if s.ttl == 0 {
		s.ttl = 24 * time.Hour
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	for _, d := range []string{dir, s.blobDir, s.stageDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("open content store %s: %w", dir, diskErr(err))
		}
	}
	if err := s.loadPins(); err != nil {
		return nil, fmt.Errorf("open content store %s: %w", dir, err)
	}
	if err := s.scanBlobs(); err != nil {
		return nil, fmt.Errorf("open content store %s: %w", dir, err)
	}
	if err := s.cleanStaging(); err != nil {
		return nil, fmt.Errorf("open content store %s: %w", dir, err)
	}
	// Temporary files of an interrupted atomic write of pins.json (and the
	// names an older version gave them).
	_ = atomicfile.RemoveStale(s.pinFile)
	if old, err := filepath.Glob(filepath.Join(dir, ".pins.json.*.tmp")); err == nil {
		for _, p := range old {
			_ = os.Remove(p)
		}
	}
	return s, nil
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

// Changed returns a channel that is closed at the next change of what the
// store can serve: a piece accepted or reset by a Writer, a Writer closed, a
// blob installed or removed. Servers wait on it to answer "tell me when you
// have more" at once instead of being polled.
func (s *Store) Changed() <-chan struct{} {
	s.changeMu.Lock()
	defer s.changeMu.Unlock()
	return s.changed
}

// notifyChange wakes whoever waits on Changed. It takes only changeMu, so
// it may be called with s.mu or a Writer's lock held.
func (s *Store) notifyChange() {
	s.changeMu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.changeMu.Unlock()
}

func (s *Store) blobPath(h Hash) string { return filepath.Join(s.blobDir, h.String()) }

func (s *Store) scanBlobs() error {
	ents, err := os.ReadDir(s.blobDir)
	if err != nil {
		return fmt.Errorf("scan blobs: %w", err)
	}
	for _, de := range ents {
		h, err := ParseHash(de.Name())
		if err != nil || !de.Type().IsRegular() {
			s.log.Warn("content store: ignoring unexpected file in blobs", "name", de.Name())
			continue
		}
		fi, err := de.Info()
		if err != nil {
			return fmt.Errorf("scan blobs: %w", err)
		}
		s.blobs[h] = &entry{size: fi.Size(), lastAccess: fi.ModTime()}
		s.used += fi.Size()
	}
	return nil
}

// cleanStaging removes everything in the download area except resumable
// partial downloads (a .part with a matching valid .state younger than the
// TTL).
func (s *Store) cleanStaging() error {
	ents, err := os.ReadDir(s.stageDir)
	if err != nil {
		return fmt.Errorf("clean staging: %w", err)
	}
	keep := map[string]bool{}
	for _, de := range ents {
		name := de.Name()
		hexPart, ok := strings.CutSuffix(name, ".part")
		if !ok {
			continue
		}
		h, err := ParseHash(hexPart)
		if err != nil {
			continue
		}
		if _, have := s.blobs[h]; have {
			continue
		}
		st, err := readState(s.statePath(h))
		if err != nil {
			continue
		}
		fi, err := de.Info()
		if err != nil || fi.Size() != st.Size || s.now().Sub(fi.ModTime()) > s.ttl {
			continue
		}
		keep[name] = true
		keep[hexPart+".state"] = true
		s.partials[h] = st.Size
		s.reserved += st.Size
	}
	removed := 0
	for _, de := range ents {
		if keep[de.Name()] {
			continue
		}
		if err := os.RemoveAll(filepath.Join(s.stageDir, de.Name())); err != nil {
			return fmt.Errorf("clean staging: %w", err)
		}
		removed++
	}
	if removed > 0 {
		s.log.Info("content store: removed leftovers from download area", "count", removed)
		if err := syncDir(s.stageDir); err != nil {
			return fmt.Errorf("clean staging: %w", err)
		}
	}
	return nil
}

// Has reports whether the store holds the verified blob h.
func (s *Store) Has(h Hash) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.blobs[h]
	return ok
}

// Size returns the size of the verified blob h.
func (s *Store) Size(h Hash) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.blobs[h]
	if !ok {
		return 0, fmt.Errorf("size of %s: %w", h, ErrNotFound)
	}
	return e.size, nil
}

// Reader reads a verified blob. It implements io.ReaderAt for range serving
// and io.ReadSeeker. The blob is not evicted while a Reader is open.
type Reader struct {
	*io.SectionReader
	f    *os.File
	s    *Store
	h    Hash
	once sync.Once
}

// Close closes the reader.
func (r *Reader) Close() error {
	var err error
	r.once.Do(func() {
		err = r.f.Close()
		r.s.mu.Lock()
		if e, ok := r.s.blobs[r.h]; ok {
			e.readers--
		}
		r.s.mu.Unlock()
	})
	return err
}

// Open opens the verified blob h for reading and marks it recently used.
func (s *Store) Open(h Hash) (*Reader, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.blobs[h]
	if !ok {
		return nil, fmt.Errorf("open %s: %w", h, ErrNotFound)
	}
	f, err := os.Open(s.blobPath(h))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			// Removed behind our back: forget it.
			s.used -= e.size
			delete(s.blobs, h)
			return nil, fmt.Errorf("open %s: %w", h, ErrNotFound)
		}
		return nil, fmt.Errorf("open %s: %w", h, err)
	}
	e.readers++
	s.touchLocked(h, e)
	return &Reader{SectionReader: io.NewSectionReader(f, 0, e.size), f: f, s: s, h: h}, nil
}

// touchLocked records an access in memory and as the file's mtime, which is
// what Open reads back after a restart.
func (s *Store) touchLocked(h Hash, e *entry) {
	now := s.now()
	e.lastAccess = now
	if err := os.Chtimes(s.blobPath(h), now, now); err != nil {
		s.log.Debug("content store: cannot record access time", "hash", h, "err", err)
	}
}

// Put streams size bytes from r into the store under want. The bytes go to a
// staging file first; only if both size and SHA-256 match are they fsynced
// and renamed into place. On any error the staging file is removed and
// nothing becomes visible. If the blob is already present Put returns nil
// without reading r.
func (s *Store) Put(ctx context.Context, want Hash, size int64, r io.Reader) (err error) {
	if size < 0 {
		return fmt.Errorf("put %s: negative size %d", want, size)
	}
	s.mu.Lock()
	if e, ok := s.blobs[want]; ok {
		s.touchLocked(want, e)
		s.mu.Unlock()
		return nil
	}
	err = s.reserveLocked(size)
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("put %s: %w", want, err)
	}
	defer s.release(size)

	f, err := os.CreateTemp(s.stageDir, "put-*.tmp")
	if err != nil {
		return fmt.Errorf("put %s: create staging file: %w", want, diskErr(err))
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	hw := sha256.New()
	n, err := copyCtx(ctx, io.MultiWriter(f, hw), io.LimitReader(r, size+1))
	if err != nil {
		return fmt.Errorf("put %s: write staging file: %w", want, diskErr(err))
	}
	if n != size {
		return fmt.Errorf("put %s: %w: size %d, want %d", want, ErrVerify, n, size)
	}
	var got Hash
	hw.Sum(got[:0])
	if got != want {
		return fmt.Errorf("put %s: %w: sha256 is %s", want, ErrVerify, got)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("put %s: fsync staging file: %w", want, diskErr(err))
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("put %s: close staging file: %w", want, diskErr(err))
	}
	if err = s.install(tmp, want, size); err != nil {
		return fmt.Errorf("put %s: %w", want, err)
	}
	return nil
}

// install renames a verified, fsynced staging file into blobs/ and makes the
// rename durable before the blob is indexed.
func (s *Store) install(tmp string, h Hash, size int64) error {
	if err := os.Rename(tmp, s.blobPath(h)); err != nil {
		return fmt.Errorf("install: %w", diskErr(err))
	}
	if err := syncDir(s.blobDir); err != nil {
		return fmt.Errorf("install: fsync blobs dir: %w", diskErr(err))
	}
	if err := syncDir(s.stageDir); err != nil {
		return fmt.Errorf("install: fsync staging dir: %w", diskErr(err))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.blobs[h]; !ok {
		s.blobs[h] = &entry{size: size}
		s.used += size
	}
	s.touchLocked(h, s.blobs[h])
	s.notifyChange()
	return nil
}

func (s *Store) release(n int64) {
	s.mu.Lock()
	s.reserved -= n
	s.mu.Unlock()
}

// reserveLocked makes room for n more bytes, evicting least recently used
// blobs that are neither pinned nor open.
func (s *Store) reserveLocked(n int64) error {
	if s.max > 0 && n > s.max {
		return fmt.Errorf("%w: %d bytes exceed the limit of %d", ErrStoreFull, n, s.max)
	}
	if err := s.evictLocked(n); err != nil {
		return err
	}
	s.reserved += n
	return nil
}

func (s *Store) evictLocked(need int64) error {
	if s.max == 0 || s.used+s.reserved+need <= s.max {
		return nil
	}
	now := s.now()
	type cand struct {
		h Hash
		e *entry
	}
	var cands []cand
	for h, e := range s.blobs {
		if e.readers == 0 && !s.pinnedLocked(h, now) {
			cands = append(cands, cand{h, e})
		}
	}
	sort.Slice(cands, func(i, j int) bool {
		if !cands[i].e.lastAccess.Equal(cands[j].e.lastAccess) {
			return cands[i].e.lastAccess.Before(cands[j].e.lastAccess)
		}
		return cands[i].h.String() < cands[j].h.String()
	})
	removed := false
	for _, c := range cands {
		if s.used+s.reserved+need <= s.max {
			break
		}
		if err := os.Remove(s.blobPath(c.h)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("content store: cannot evict", "hash", c.h, "err", err)
			continue
		}
		delete(s.blobs, c.h)
		s.used -= c.e.size
		removed = true
		s.notifyChange()
		s.log.Info("content store: evicted", "hash", c.h, "size", c.e.size)
	}
	if removed {
		if err := syncDir(s.blobDir); err != nil {
			s.log.Warn("content store: fsync after eviction", "err", err)
		}
	}
	if s.used+s.reserved+need > s.max {
		return fmt.Errorf("%w: need %d bytes, %d used, %d reserved, limit %d (the rest is pinned or open)",
			ErrStoreFull, need, s.used, s.reserved, s.max)
	}
	return nil
}

// Usage returns the bytes held by verified blobs, the bytes reserved by
// downloads in progress, and the limit (0: none).
func (s *Store) Usage() (used, reserved, max int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.used, s.reserved, s.max
}

// List returns every verified blob, most recently used first.
func (s *Store) List() []Info {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	out := make([]Info, 0, len(s.blobs))
	for h, e := range s.blobs {
		out = append(out, Info{Hash: h, Size: e.size, LastAccess: e.lastAccess, Pins: s.activePinsLocked(h, now)})
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].LastAccess.Equal(out[j].LastAccess) {
			return out[i].LastAccess.After(out[j].LastAccess)
		}
		return out[i].Hash.String() < out[j].Hash.String()
	})
	return out
}

// Delete removes the verified blob h. It refuses a pinned blob (ErrPinned).
// A blob open for reading stays readable through the open Reader on Unix.
func (s *Store) Delete(h Hash) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.blobs[h]
	if !ok {
		return fmt.Errorf("delete %s: %w", h, ErrNotFound)
	}
	if s.pinnedLocked(h, s.now()) {
		return fmt.Errorf("delete %s: %w", h, ErrPinned)
	}
	if err := os.Remove(s.blobPath(h)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete %s: %w", h, err)
	}
	delete(s.blobs, h)
	s.used -= e.size
	s.notifyChange()
	if err := syncDir(s.blobDir); err != nil {
		return fmt.Errorf("delete %s: fsync: %w", h, err)
	}
	return nil
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 128<<10); return &b }}

// copyCtx copies like io.Copy but stops between chunks when ctx is done.
func copyCtx(ctx context.Context, dst io.Writer, src io.Reader) (int64, error) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		nr, rerr := src.Read(buf)
		if nr > 0 {
			nw, werr := dst.Write(buf[:nr])
			n += int64(nw)
			if werr != nil {
				return n, werr
			}
			if nw != nr {
				return n, io.ErrShortWrite
			}
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}
