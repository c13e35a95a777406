package exchange

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/patchring/patchring/internal/testutil"
	"github.com/patchring/patchring/p2p/content"
)

// behaviour of a fake peer.
type behaviour int

const (
	honest     behaviour = iota
	corrupt              // flips a byte in every range; manifest honest
	liar                 // flips a byte in every range; manifest matches the flipped data
	truncate             // sends half a range, then closes
	stall                // sends half a range, then stops sending
	trickle              // sends a range a few bytes at a time
	noManifest           // honest data, refuses manifests
	noneHave             // holds nothing
	sizeLie              // claims another size
)

// fakePeer speaks the wire protocol from an in-memory payload, honestly or
// not. It is the bad peer of the tests, over pipes and over libp2p.
type fakePeer struct {
	data      []byte
	pieceSize int64
	mode      behaviour
	// gate, if set, delays have answers until it is closed.
	gate <-chan struct{}
	// onRange, if set, runs once before the first range is answered.
	onRange func()
	once    sync.Once
	ranges  atomic.Int64
}

func (f *fakePeer) served(off, n int64) []byte {
	b := append([]byte(nil), f.data[off:off+n]...)
	if f.mode == corrupt || f.mode == liar {
		b[len(b)/2] ^= 0x5a
	}
	return b
}

func (f *fakePeer) manifest(pieceSize int64) []content.Hash {
	sums := make([]content.Hash, content.NumPieces(int64(len(f.data)), pieceSize))
	for i := range sums {
		off := int64(i) * pieceSize
		n := min(pieceSize, int64(len(f.data))-off)
		b := f.data[off : off+n]
		if f.mode == liar {
			b = f.served(off, n)
		}
		sums[i] = sha256.Sum256(b)
	}
	return sums
}

func (f *fakePeer) serve(ctx context.Context, c io.ReadWriteCloser) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		m, err := ReadFrame(br)
		if err != nil {
			return
		}
		switch m := m.(type) {
		case *HaveRequest, *HaveWaitRequest:
			var pieceSize int64
			switch m := m.(type) {
			case *HaveRequest:
				pieceSize = m.PieceSize
			case *HaveWaitRequest:
				pieceSize = m.PieceSize
			}
			if f.gate != nil {
				select {
				case <-f.gate:
				case <-ctx.Done():
					return
				}
			}
			size := int64(len(f.data))
			switch f.mode {
			case noneHave:
				err = WriteFrame(c, &HaveResponse{Status: HaveNone})
			case sizeLie:
				err = WriteFrame(c, &HaveResponse{Status: HaveFull, Size: size + 1, PieceSize: pieceSize})
			default:
				err = WriteFrame(c, &HaveResponse{Status: HaveFull, Size: size, PieceSize: pieceSize})
			}
		case *ManifestRequest:
			if f.mode == noManifest {
				err = WriteFrame(c, &ErrorResponse{Code: CodeNotFound, Message: "no"})
			} else {
				err = WriteFrame(c, &ManifestResponse{Sums: f.manifest(m.PieceSize)})
			}
		case *RangeRequest:
			f.ranges.Add(1)
			if f.onRange != nil {
				f.once.Do(f.onRange)
			}
			if m.Offset+m.Len > int64(len(f.data)) {
				err = WriteFrame(c, &ErrorResponse{Code: CodeBadRequest, Message: "range"})
				break
			}
			if err = WriteFrame(c, &RangeResponse{Len: m.Len}); err != nil {
				return
			}
			b := f.served(m.Offset, m.Len)
			switch f.mode {
			case truncate:
				_, _ = c.Write(b[:len(b)/2])
				return
			case stall:
				_, _ = c.Write(b[:len(b)/2])
				<-ctx.Done()
				return
			case trickle:
				for len(b) > 0 && ctx.Err() == nil {
					n := min(64, len(b))
					if _, err := c.Write(b[:n]); err != nil {
						return
					}
					b = b[n:]
					t := time.NewTimer(20 * time.Millisecond)
					select {
					case <-ctx.Done():
					case <-t.C:
					}
				}
				return
			default:
				_, err = c.Write(b)
			}
		}
		if err != nil {
			return
		}
	}
}

// pipeEnd is one end of a full-duplex connection made of two io.Pipes.
type pipeEnd struct {
	r *io.PipeReader
	w *io.PipeWriter
}

func (p *pipeEnd) Read(b []byte) (int, error)  { return p.r.Read(b) }
func (p *pipeEnd) Write(b []byte) (int, error) { return p.w.Write(b) }
func (p *pipeEnd) Close() error {
	_ = p.w.Close()
	return p.r.Close()
}

func duplexPipe() (*pipeEnd, *pipeEnd) {
	ar, bw := io.Pipe()
	br, aw := io.Pipe()
	return &pipeEnd{r: ar, w: aw}, &pipeEnd{r: br, w: bw}
}

// pipeNet connects a fetcher to servers over io.Pipe pairs.
type pipeNet struct {
	ctx     context.Context
	wg      sync.WaitGroup
	mu      sync.Mutex
	servers map[peer.ID]func(context.Context, io.ReadWriteCloser)
}

func newPipeNet(tb testing.TB) *pipeNet {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pn := &pipeNet{ctx: ctx, servers: map[peer.ID]func(context.Context, io.ReadWriteCloser){}}
	tb.Cleanup(func() {
		cancel()
		pn.wg.Wait()
	})
	return pn
}

func (pn *pipeNet) add(id peer.ID, serve func(context.Context, io.ReadWriteCloser)) peer.AddrInfo {
	pn.mu.Lock()
	defer pn.mu.Unlock()
	pn.servers[id] = serve
	return peer.AddrInfo{ID: id}
}

func (pn *pipeNet) dial(ctx context.Context, ai peer.AddrInfo) (io.ReadWriteCloser, error) {
	pn.mu.Lock()
	serve, ok := pn.servers[ai.ID]
	pn.mu.Unlock()
	if !ok {
		return nil, errors.New("no such peer")
	}
	c, s := duplexPipe()
	pn.wg.Go(func() {
		serve(pn.ctx, s)
		_ = s.Close()
	})
	return c, nil
}

// fastTiming makes bad peers cost little test time: a 64 KiB piece may take
// 500 ms + 64 ms (generous for -race on 2 cores).
var fastTiming = Timing{
	RequestTimeout: 5 * time.Second,
	PieceGrace:     500 * time.Millisecond,
	MinRate:        1 << 20,
	PollInterval:   20 * time.Millisecond,
	RotateAfter:    200 * time.Millisecond,
}

func newTestFetcher(tb testing.TB, st *content.Store, dial dialFunc) *fetcher {
	tb.Helper()
	return &fetcher{
		self: "me", store: st, dial: dial, sb: newScoreboard(time.Now), wan: NewLimiter(0),
		manifests: newManifestCache(4), timing: fastTiming.withDefaults(), log: testutil.Logger(tb),
	}
}

func randPayload(tb testing.TB, n int, seed uint64) []byte {
	tb.Helper()
	r := rand.New(rand.NewPCG(seed, seed+1))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

func openTestStore(tb testing.TB) *content.Store {
	tb.Helper()
	st, err := content.Open(tb.TempDir(), content.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	return st
}

// memOrigin serves data like an HTTP origin with Range support.
type memOrigin struct {
	data  []byte
	calls atomic.Int64
	fail  atomic.Bool
}

func (o *memOrigin) open(ctx context.Context, off int64) (io.ReadCloser, error) {
	o.calls.Add(1)
	if o.fail.Load() {
		return nil, errors.New("origin unreachable")
	}
	if off < 0 || off > int64(len(o.data)) {
		return nil, errors.New("bad offset")
	}
	return io.NopCloser(&ctxReader{ctx: ctx, b: o.data[off:]}), nil
}

type ctxReader struct {
	ctx context.Context
	b   []byte
}

func (r *ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}
