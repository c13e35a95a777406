package exchange

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/patchring/patchring/internal/testutil"
	"github.com/patchring/patchring/p2p/content"
)

// newTestServer returns a server on st with the node's defaults, changed
// by tweak.
func newTestServer(t testing.TB, st *content.Store, slots int, tweak func(*server)) *server {
	t.Helper()
	s := &server{
		store: st, up: NewLimiter(0), slots: newSlotPool(slots), minRate: 64 << 10,
		seeding: newSeedTracker(time.Now), sb: newScoreboard(time.Now), stats: &serverCounters{},
		manifests: newManifestCache(manifestCacheBytes), idle: 30 * time.Second, log: testutil.Logger(t),
	}
	if tweak != nil {
		tweak(s)
	}
	return s
}

// serveSession starts a session of peer p on srv and returns the client's
// end; the session ends (and is waited for) in t.Cleanup.
func serveSession(t testing.TB, srv *server, p peer.ID) (io.ReadWriteCloser, <-chan error) {
	t.Helper()
	c, s := duplexPipe()
	ctx, cancel := context.WithCancel(context.Background())
	ended := make(chan error, 1)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		ended <- srv.serveConn(ctx, p, s, false)
		_ = s.Close()
	}()
	t.Cleanup(func() {
		cancel()
		_ = c.Close()
		<-finished
	})
	return c, ended
}

func putBlob(t testing.TB, st *content.Store, n int, seed uint64) (content.Hash, []byte) {
	t.Helper()
	data := randPayload(t, n, seed)
	h := content.Sum(data)
	if err := st.Put(context.Background(), h, int64(len(data)), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	return h, data
}

func rawFrame(typ byte, body ...[]byte) []byte {
	b := []byte{typ, 0, 0, 0, 0}
	for _, p := range body {
		b = append(b, p...)
	}
	binary.BigEndian.PutUint32(b[1:], uint32(len(b)-5))
	return b
}

func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// TestServerTinyPiecesAllocateNothing: have and manifest requests in pieces
// of one byte are refused before anything is allocated for them (issue 11,
// finding 1). Before the fix, the manifest request alone made the node
// allocate 32 bytes a piece (8 MiB for this 256 KiB blob) plus buffers,
// and the have request 6 bytes a piece for initial seeding.
func TestServerTinyPiecesAllocateNothing(t *testing.T) {
	st := openTestStore(t)
	h, _ := putBlob(t, st, 256<<10, 21)
	srv := newTestServer(t, st, 2, nil)
	for _, typ := range []byte{typeHaveRequest, typeManifestRequest} {
		c, ended := serveSession(t, srv, "tiny")
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		if _, err := c.Write(rawFrame(typ, h[:], be32(1))); err != nil {
			t.Fatal(err)
		}
		m, err := ReadFrame(bufio.NewReader(c))
		runtime.ReadMemStats(&after)
		var em *ErrorResponse
		if err != nil || !errors.As(error(asErr(m)), &em) {
			t.Fatalf("request %d in pieces of 1 byte: got %T %+v, %v; want a bad-request error", typ, m, m, err)
		}
		if em.Code != CodeBadRequest {
			t.Errorf("request %d: error code %d, want bad request", typ, em.Code)
		}
		if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
			t.Errorf("request %d in pieces of 1 byte allocated %d bytes, want less than 1 MiB", typ, got)
		}
		if err := <-ended; !errors.Is(err, ErrFrame) {
			t.Errorf("session ended with %v, want a malformed frame", err)
		}
	}
	if n := srv.manifests.size(); n != 0 {
		t.Errorf("manifest cache holds %d bytes, want 0", n)
	}
	if st := srv.stats.snapshot(); st.Malformed != 2 {
		t.Errorf("stats %+v, want 2 malformed sessions", st)
	}
}

// asErr turns an ErrorResponse into an error for errors.As.
func asErr(m Message) error {
	if em, ok := m.(*ErrorResponse); ok {
		return em
	}
	return nil
}

func (e *ErrorResponse) Error() string { return e.Message }

// TestManifestCacheBoundedInBytes: the cache keeps at most its byte bound,
// however many geometries are asked for.
func TestManifestCacheBoundedInBytes(t *testing.T) {
	c := newManifestCache(1 << 20)
	for i := range 40 {
		var h content.Hash
		h[0] = byte(i)
		c.put(h, MinPieceSize, make([]content.Hash, 8192)) // 256 KiB each
		if n := c.size(); n > 1<<20 {
			t.Fatalf("after %d manifests the cache holds %d bytes, more than 1 MiB", i+1, n)
		}
	}
	if n := c.size(); n != 1<<20 {
		t.Errorf("cache holds %d bytes, want 1 MiB (4 manifests)", n)
	}
}

// TestServerSlowReaderCut: a client that reads a range slowly is cut at
// the transfer deadline (idle timeout + length at the minimum rate), not
// kept alive by every chunk it takes (issue 11, finding 5). Before the fix
// each 32 KiB re-armed the idle timer and this transfer completed after
// about 13 s.
func TestServerSlowReaderCut(t *testing.T) {
	st := openTestStore(t)
	const size = 4 << 20
	h, _ := putBlob(t, st, size, 22)
	srv := newTestServer(t, st, 2, func(s *server) { s.idle = time.Second; s.minRate = 1 << 20 })
	c, ended := serveSession(t, srv, "slow")
	if err := WriteFrame(c, &RangeRequest{Hash: h, Offset: 0, Len: size}); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReaderSize(c, 64)
	if m, err := ReadFrame(br); err != nil {
		t.Fatalf("range response: %v", err)
	} else if _, ok := m.(*RangeResponse); !ok {
		t.Fatalf("range response: %T %+v", m, m)
	}
	// Read 32 KiB every 100 ms: 320 KiB/s, a third of the minimum rate.
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	buf := make([]byte, 32<<10)
	var got int64
	var rerr error
	for got < size {
		<-tick.C
		n, err := io.ReadFull(br, buf[:min(int64(len(buf)), size-got)])
		got += int64(n)
		if err != nil {
			rerr = err
			break
		}
	}
	if rerr == nil {
		t.Fatalf("a reader at a third of the minimum rate received all %d bytes; want it cut at the deadline", got)
	}
	if err := <-ended; !errors.Is(err, errTimeout) {
		t.Errorf("session ended with %v, want the transfer deadline", err)
	}
	if st := srv.stats.snapshot(); st.TimedOut != 1 {
		t.Errorf("stats %+v, want 1 session timed out", st)
	}
	t.Logf("cut after %d of %d bytes", got, size)
}

// TestServerOneSlotPerPeer: a peer holding an upload slot (a transfer it
// does not read) gets busy for a second transfer or a manifest to compute,
// while another peer is served (issue 11, finding 5). Before the fix one
// peer could take every slot.
func TestServerOneSlotPerPeer(t *testing.T) {
	st := openTestStore(t)
	h, _ := putBlob(t, st, 4<<20, 23)
	srv := newTestServer(t, st, 2, nil)
	stall, _ := serveSession(t, srv, "greedy")
	if err := WriteFrame(stall, &RangeRequest{Hash: h, Offset: 0, Len: 4 << 20}); err != nil {
		t.Fatal(err)
	}
	// The transfer holds its slot while the pipe blocks: wait for it.
	testutil.WaitFor(t, 10*time.Second, "the first transfer takes a slot", func() error {
		if n := len(srv.slots.slots); n != 1 {
			return fmt.Errorf("%d slots taken", n)
		}
		return nil
	})
	bg := context.Background()
	again, _ := serveSession(t, srv, "greedy")
	sess := newSession(again)
	dst := openTestStore(t)
	w, err := dst.Writer(h, 4<<20, DefaultPieceSize(4<<20))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Abort() })
	var re *RemoteError
	if _, err := sess.readPiece(bg, 5*time.Second, w, 1); !errors.As(err, &re) || re.Code != CodeBusy {
		t.Fatalf("second transfer of the same peer: %v, want busy", err)
	}
	if _, err := sess.manifest(bg, 5*time.Second, h, DefaultPieceSize(4<<20), content.NumPieces(4<<20, DefaultPieceSize(4<<20))); !errors.As(err, &re) || re.Code != CodeBusy {
		t.Fatalf("manifest to compute for the same peer: %v, want busy", err)
	}
	other, _ := serveSession(t, srv, "other")
	if _, err := newSession(other).readPiece(bg, 5*time.Second, w, 1); err != nil {
		t.Fatalf("transfer of another peer: %v", err)
	}
	if st := srv.stats.snapshot(); st.RefusedPeerBusy != 2 {
		t.Errorf("stats %+v, want 2 refusals for a peer already holding a slot", st)
	}
}

// TestManifestComputedUnderAskersContext: a computation runs under the
// context of the session that asked; when that session ends it stops and
// leaves nothing in the cache, and a session still waiting computes it
// under its own context (issue 11, finding 1: it ran on the node's context
// after the peer left).
func TestManifestComputedUnderAskersContext(t *testing.T) {
	c := newManifestCache(manifestCacheBytes)
	var h content.Hash
	started := make(chan struct{})
	firstCtx, leave := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		_, err := c.get(firstCtx, h, 1<<20, MinPieceSize, func(ctx context.Context) ([]content.Hash, error) {
			close(started)
			<-ctx.Done() // hashing until the asker leaves
			return nil, ctx.Err()
		})
		first <- err
	}()
	<-started
	second := make(chan []content.Hash, 1)
	go func() {
		sums, err := c.get(context.Background(), h, 1<<20, MinPieceSize, func(ctx context.Context) ([]content.Hash, error) {
			return make([]content.Hash, 16), nil
		})
		if err != nil {
			t.Errorf("second asker: %v", err)
		}
		second <- sums
	}()
	leave()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("first asker: %v, want its context's end", err)
	}
	if sums := <-second; len(sums) != 16 {
		t.Fatalf("second asker got %d sums, want its own computation's 16", len(sums))
	}
	if n := c.size(); n != 16*32 {
		t.Errorf("cache holds %d bytes, want the one manifest of 512", n)
	}
}

// TestSlotHeldUntilPieceArrives: a range sent in full keeps its upload slot
// until the client's next frame (it has the piece) or, if none comes, until
// the linger passes; only then does another client get the slot. Released
// when the bytes were written, every request would share a slow link at
// once (linger.go).
func TestSlotHeldUntilPieceArrives(t *testing.T) {
	st := openTestStore(t)
	const size = 1 << 20
	h, _ := putBlob(t, st, size, 29)
	clock := newLingerClock(time.Hour)
	srv := newTestServer(t, st, 1, func(s *server) { s.linger = clock })
	bg := context.Background()
	dst := openTestStore(t)
	w, err := dst.Writer(h, size, DefaultPieceSize(size))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Abort() })
	a, _ := serveSession(t, srv, "a")
	sa := newSession(a)
	if _, err := sa.readPiece(bg, 5*time.Second, w, 0); err != nil {
		t.Fatalf("first client's piece: %v", err)
	}
	b, _ := serveSession(t, srv, "b")
	sb := newSession(b)
	var re *RemoteError
	if _, err := sb.readPiece(bg, 5*time.Second, w, 1); !errors.As(err, &re) || re.Code != CodeBusy {
		t.Fatalf("second client while the first has not asked again: %v, want busy", err)
	}
	if clock.ewma.Load() != 0 {
		t.Fatalf("the clock learned %v before any client asked again", time.Duration(clock.ewma.Load()))
	}
	// The first client's next question frees the slot and teaches the clock.
	if _, err := sa.have(bg, 5*time.Second, h, DefaultPieceSize(size)); err != nil {
		t.Fatal(err)
	}
	if got := time.Duration(clock.ewma.Load()); got <= 0 || got > time.Minute {
		t.Errorf("learned %v from one answer, want the time it took", got)
	}
	if _, err := sb.readPiece(bg, 5*time.Second, w, 1); err != nil {
		t.Fatalf("second client after the first asked again: %v", err)
	}
	// Nobody asks again: the slot is free after the linger.
	clock.ewma.Store(int64(20 * time.Millisecond))
	if _, err := sa.readPiece(bg, 5*time.Second, w, 2); !errors.As(err, &re) || re.Code != CodeBusy {
		t.Fatalf("first client while the second holds the slot: %v, want busy", err)
	}
	testutil.WaitFor(t, 10*time.Second, "the slot is free after the linger", func() error {
		if n := len(srv.slots.slots); n != 0 {
			return fmt.Errorf("%d slots taken", n)
		}
		return nil
	})
}

// TestLingerClock: the linger is twice the recent time clients took to ask
// again, within [minLinger, max]; max before the first sample; a max <= 0
// (or no clock) releases at once.
func TestLingerClock(t *testing.T) {
	l := newLingerClock(2 * time.Second)
	if got := l.linger(); got != 2*time.Second {
		t.Errorf("before any sample: %v, want the max", got)
	}
	l.observe(100 * time.Millisecond)
	if got := l.linger(); got != 200*time.Millisecond {
		t.Errorf("after 100ms: %v, want 200ms", got)
	}
	for range 100 {
		l.observe(time.Hour) // capped at max
	}
	if got := l.linger(); got != 2*time.Second {
		t.Errorf("after slow answers: %v, want the max", got)
	}
	for range 200 {
		l.observe(0) // a pipelining client
	}
	if got := l.linger(); got != minLinger {
		t.Errorf("after instant answers: %v, want %v", got, minLinger)
	}
	for _, c := range []*lingerClock{nil, newLingerClock(-1)} {
		released := false
		if h := c.hold(func() { released = true }); h != nil || !released {
			t.Errorf("clock %+v held the slot", c)
		}
	}
}
