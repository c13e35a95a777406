package hostilepeer

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/patchring/patchring/p2p/content"
	"github.com/patchring/patchring/p2p/exchange"
)

// Target is the victim and a payload it holds.
type Target struct {
	Peer peer.AddrInfo
	Hash content.Hash
	Size int64
}

// Expect is what the victim must make of a bad session.
type Expect int

const (
	// Cut: the victim ends the session itself (a malformed frame, a
	// message out of place, a deadline), so it counts it as malformed,
	// timed out or broken.
	Cut Expect = iota
	// Refused: the victim answers with a refusal (bad request, busy) and
	// counts it.
	Refused
)

// Attack is one kind of bad session.
type Attack struct {
	Name   string
	Proto  protocol.ID
	Expect Expect
	// Count is how many sessions of Expect one run makes (a flood opens
	// several streams and expects all but one refused).
	Count int
	run   func(ctx context.Context, m *Member, t Target, s network.Stream, rnd *mrand.Rand) error
}

// Frame types and bounds of /patchring/blob (see p2p/exchange/wire.go).
const (
	tHave      = 1
	tManifest  = 3
	tManResp   = 4
	tRange     = 5
	tHaveWait  = 8
	maxFrame   = 1 << 22
	blob2      = protocol.ID(exchange.ProtocolID)
	blob1      = protocol.ID(exchange.ProtocolIDv1)
	meta1      = protocol.ID(exchange.FileProtocolID)
	answerWait = 15 * time.Second
)

func frame(typ byte, body ...[]byte) []byte {
	b := []byte{typ, 0, 0, 0, 0}
	for _, p := range body {
		b = append(b, p...)
	}
	binary.BigEndian.PutUint32(b[1:], uint32(len(b)-5))
	return b
}

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// sendAndDrain writes b, closes the write side and reads until the victim
// closes or resets the stream (or answerWait passes: then the victim did
// not react, an error).
func sendAndDrain(s network.Stream, b []byte) error {
	_ = s.SetDeadline(time.Now().Add(answerWait))
	if _, err := s.Write(b); err != nil {
		return nil // already cut
	}
	_ = s.CloseWrite()
	_, err := io.Copy(io.Discard, s)
	var ne interface{ Timeout() bool }
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("victim did not end the session within %v", answerWait)
	}
	return nil
}

// Attacks returns the kinds of bad session Run cycles through.
func Attacks() []Attack {
	h := func(t Target) []byte { return t.Hash[:] }
	return []Attack{
		{Name: "blob2 unknown frame type", Proto: blob2, Expect: Cut, Count: 1,
			run: func(_ context.Context, _ *Member, _ Target, s network.Stream, _ *mrand.Rand) error {
				return sendAndDrain(s, frame(99, []byte("hello")))
			}},
		{Name: "blob2 oversized frame", Proto: blob2, Expect: Cut, Count: 1,
			run: func(_ context.Context, _ *Member, _ Target, s network.Stream, _ *mrand.Rand) error {
				return sendAndDrain(s, []byte{tManifest, 0xff, 0xff, 0xff, 0xff})
			}},
		{Name: "blob2 manifest in pieces of 1 byte", Proto: blob2, Expect: Cut, Count: 1,
			run: func(_ context.Context, _ *Member, t Target, s network.Stream, _ *mrand.Rand) error {
				return sendAndDrain(s, frame(tManifest, h(t), u32(1)))
			}},
		{Name: "blob2 have in pieces of 1 KiB", Proto: blob2, Expect: Cut, Count: 1,
			run: func(_ context.Context, _ *Member, t Target, s network.Stream, _ *mrand.Rand) error {
				return sendAndDrain(s, frame(tHave, h(t), u32(1<<10)))
			}},
		{Name: "blob2 have in pieces of 4 GiB - 1", Proto: blob2, Expect: Cut, Count: 1,
			run: func(_ context.Context, _ *Member, t Target, s network.Stream, _ *mrand.Rand) error {
				return sendAndDrain(s, frame(tHave, h(t), u32(0xffffffff)))
			}},
		{Name: "blob2 have-wait of a 1 TiB payload in 64 KiB pieces", Proto: blob2, Expect: Cut, Count: 1,
			run: func(_ context.Context, _ *Member, t Target, s network.Stream, _ *mrand.Rand) error {
				// The header claims 2 MiB of bitmap; only the header is sent.
				b := frame(tHaveWait, h(t), u32(64<<10), u64(1<<40), u32(0))
				binary.BigEndian.PutUint32(b[1:], uint32(48+(1<<40)/(64<<10)/8))
				return sendAndDrain(s, b)
			}},
		{Name: "blob2 range past the end", Proto: blob2, Expect: Refused, Count: 1,
			run: func(_ context.Context, _ *Member, t Target, s network.Stream, _ *mrand.Rand) error {
				return sendAndDrain(s, frame(tRange, h(t), u64(uint64(t.Size)), u64(1<<20)))
			}},
		{Name: "blob2 range of 64 MiB + 1", Proto: blob2, Expect: Cut, Count: 1,
			run: func(_ context.Context, _ *Member, t Target, s network.Stream, _ *mrand.Rand) error {
				return sendAndDrain(s, frame(tRange, h(t), u64(0), u64(exchange.MaxRange+1)))
			}},
		{Name: "blob2 range at offset 2^63", Proto: blob2, Expect: Cut, Count: 1,
			run: func(_ context.Context, _ *Member, t Target, s network.Stream, _ *mrand.Rand) error {
				return sendAndDrain(s, frame(tRange, h(t), u64(1<<63), u64(1)))
			}},
		{Name: "blob2 lying manifest pushed at the server", Proto: blob2, Expect: Cut, Count: 1,
			run: func(_ context.Context, _ *Member, _ Target, s network.Stream, rnd *mrand.Rand) error {
				sums := make([]byte, 32*64)
				fill(rnd, sums)
				return sendAndDrain(s, frame(tManResp, sums))
			}},
		{Name: "blob2 random bytes after a valid have", Proto: blob2, Expect: Cut, Count: 1,
			run: func(_ context.Context, _ *Member, t Target, s network.Stream, rnd *mrand.Rand) error {
				tail := make([]byte, 1+rnd.IntN(256))
				fill(rnd, tail)
				return sendAndDrain(s, append(frame(tHave, h(t), u32(256<<10)), tail...))
			}},
		{Name: "blob1 have-wait (not in version 1)", Proto: blob1, Expect: Cut, Count: 1,
			run: func(_ context.Context, _ *Member, t Target, s network.Stream, _ *mrand.Rand) error {
				return sendAndDrain(s, frame(tHaveWait, h(t), u32(64<<10), u64(64<<10), u32(0), []byte{0x80}))
			}},
		{Name: "blob1 random bytes", Proto: blob1, Expect: Cut, Count: 1,
			run: func(_ context.Context, _ *Member, _ Target, s network.Stream, rnd *mrand.Rand) error {
				b := make([]byte, 5+rnd.IntN(512))
				fill(rnd, b)
				return sendAndDrain(s, b)
			}},
		{Name: "blob2 flood of have requests", Proto: blob2, Expect: Cut, Count: 0,
			run: func(_ context.Context, _ *Member, t Target, s network.Stream, _ *mrand.Rand) error {
				var b []byte
				for range 200 {
					b = append(b, frame(tHave, h(t), u32(256<<10))...)
				}
				return sendAndDrain(s, b)
			}},
		{Name: "blob2 four ranges at once", Proto: blob2, Expect: Refused, Count: 3, run: rangeFlood},
		{Name: "meta1 path escaping the repository", Proto: meta1, Expect: Cut, Count: 1,
			run: func(_ context.Context, _ *Member, _ Target, s network.Stream, _ *mrand.Rand) error {
				p := "../../../etc/shadow"
				return sendAndDrain(s, append(append(binary.BigEndian.AppendUint16(nil, uint16(len(p))), p...), u64(1<<20)...))
			}},
		{Name: "meta1 maximum length 2^63", Proto: meta1, Expect: Cut, Count: 1,
			run: func(_ context.Context, _ *Member, _ Target, s network.Stream, _ *mrand.Rand) error {
				p := "metadata/timestamp.json"
				return sendAndDrain(s, append(append(binary.BigEndian.AppendUint16(nil, uint16(len(p))), p...), u64(1<<63)...))
			}},
		{Name: "meta1 path length 65535, short", Proto: meta1, Expect: Cut, Count: 1,
			run: func(_ context.Context, _ *Member, _ Target, s network.Stream, _ *mrand.Rand) error {
				return sendAndDrain(s, []byte{0xff, 0xff, 'a', 'b'})
			}},
		{Name: "meta1 random bytes", Proto: meta1, Expect: Cut, Count: 1,
			run: func(_ context.Context, _ *Member, _ Target, s network.Stream, rnd *mrand.Rand) error {
				b := make([]byte, 2+rnd.IntN(64))
				fill(rnd, b)
				b[0] |= 0x80 // a path longer than MaxFilePath
				return sendAndDrain(s, b)
			}},
	}
}

func fill(rnd *mrand.Rand, b []byte) {
	for i := range b {
		b[i] = byte(rnd.Uint32())
	}
}

// rangeFlood asks for the whole payload on four streams at once without
// reading: one peer gets one upload slot, held until it resets the
// stream (a transfer larger than the stream window cannot finish), so at
// least three are refused busy.
func rangeFlood(ctx context.Context, m *Member, t Target, first network.Stream, _ *mrand.Rand) error {
	streams := []network.Stream{first}
	defer func() {
		for _, s := range streams[1:] {
			_ = s.Reset()
		}
	}()
	for range 3 {
		s, err := m.Node.Host().NewStream(ctx, t.Peer.ID, blob2)
		if err != nil {
			return err
		}
		streams = append(streams, s)
	}
	req := frame(tRange, t.Hash[:], u64(0), u64(uint64(min(t.Size, exchange.MaxRange))))
	for _, s := range streams {
		_ = s.SetDeadline(time.Now().Add(answerWait))
		if _, err := s.Write(req); err != nil {
			return err
		}
	}
	// Each answers with a frame header: a range response or an error.
	for _, s := range streams {
		var hdr [5]byte
		if _, err := io.ReadFull(s, hdr[:]); err != nil {
			return fmt.Errorf("range flood: %w", err)
		}
	}
	return nil
}

// Report says what a run did.
type Report struct {
	Sessions int            // sessions opened
	Cut      int            // sessions the victim must have ended itself
	Refused  int            // refusals the victim must have sent
	ByAttack map[string]int // sessions per attack
	Failures []string       // first few sessions where the victim did not react
}

// Run makes n bad sessions against t, with workers at once, cycling
// through Attacks. It fails only if the victim cannot be reached; a
// session the victim did not end in time is listed in Report.Failures.
func (m *Member) Run(ctx context.Context, t Target, n, workers int) (Report, error) {
	if err := m.Node.Host().Connect(ctx, t.Peer); err != nil {
		return Report{}, fmt.Errorf("connect to victim: %w", err)
	}
	attacks := Attacks()
	var (
		next    atomic.Int64
		mu      sync.Mutex
		rep     = Report{ByAttack: map[string]int{}}
		wg      sync.WaitGroup
		dialErr atomic.Pointer[error]
	)
	for w := range workers {
		wg.Go(func() {
			rnd := mrand.New(mrand.NewPCG(uint64(w), 7))
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				a := attacks[i%int64(len(attacks))]
				s, err := m.Node.Host().NewStream(ctx, t.Peer.ID, a.Proto)
				if err != nil {
					dialErr.Store(&err)
					return
				}
				err = a.run(ctx, m, t, s, rnd)
				_ = s.Reset()
				mu.Lock()
				rep.Sessions++
				rep.ByAttack[a.Name]++
				switch a.Expect {
				case Cut:
					rep.Cut += a.Count
				case Refused:
					rep.Refused += a.Count
				}
				if err != nil && len(rep.Failures) < 10 {
					rep.Failures = append(rep.Failures, fmt.Sprintf("%s: %v", a.Name, err))
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if p := dialErr.Load(); p != nil {
		return rep, fmt.Errorf("open stream to victim: %w", *p)
	}
	return rep, ctx.Err()
}

// Stall opens n sessions that stall: half a frame header, a range never
// read, half a file request. It returns once the victim has cut every
// one of them (or ctx ends), with how many it cut.
func (m *Member) Stall(ctx context.Context, t Target, n int) (int, error) {
	var cut atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Pointer[error]
	for i := range n {
		wg.Go(func() {
			var proto protocol.ID
			var b []byte
			switch i % 3 {
			case 0:
				proto, b = blob2, []byte{tHave, 0}
			case 1:
				proto, b = blob2, frame(tRange, t.Hash[:], u64(0), u64(uint64(min(t.Size, 256<<10))))
			default:
				proto, b = meta1, []byte{0}
			}
			s, err := m.Node.Host().NewStream(ctx, t.Peer.ID, proto)
			if err != nil {
				firstErr.CompareAndSwap(nil, &err)
				return
			}
			defer s.Reset()
			if _, err := s.Write(b); err != nil {
				return
			}
			// Read nothing until the victim gives up on us: one byte at
			// a time for the range (so the window stays shut), nothing
			// otherwise.
			var one [1]byte
			for {
				if _, err := s.Read(one[:]); err != nil {
					break
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Second):
				}
			}
			cut.Add(1)
		})
	}
	wg.Wait()
	if p := firstErr.Load(); p != nil {
		return int(cut.Load()), *p
	}
	return int(cut.Load()), ctx.Err()
}

// Burst opens n /patchring/blob/2 sessions at once, each asking one have
// request, and returns how many it opened and how many of those the
// victim refused (reset before any answer): a peer that opens more
// sessions than its rate and waiting room allow gets the rest refused for
// "rate". Streams this member's own libp2p resource limits do not let it
// open are not sessions and are not counted; it fails only if it opened
// none.
func (m *Member) Burst(ctx context.Context, t Target, n int) (opened, refused int, err error) {
	if err := m.Node.Host().Connect(ctx, t.Peer); err != nil {
		return 0, 0, fmt.Errorf("connect to victim: %w", err)
	}
	var (
		nOpened, nRefused atomic.Int64
		wg                sync.WaitGroup
		openErr, firstErr atomic.Pointer[error]
	)
	req := frame(tHave, t.Hash[:], u32(256<<10))
	for range n {
		wg.Go(func() {
			s, err := m.Node.Host().NewStream(ctx, t.Peer.ID, blob2)
			if err != nil {
				openErr.CompareAndSwap(nil, &err)
				return
			}
			defer s.Reset()
			_ = s.SetDeadline(time.Now().Add(answerWait))
			if _, err := s.Write(req); err != nil {
				nOpened.Add(1)
				nRefused.Add(1)
				return
			}
			nOpened.Add(1)
			var hdr [5]byte
			_, err = io.ReadFull(s, hdr[:])
			var ne interface{ Timeout() bool }
			switch {
			case errors.As(err, &ne) && ne.Timeout():
				firstErr.CompareAndSwap(nil, &err)
			case err != nil:
				nRefused.Add(1)
			}
		})
	}
	wg.Wait()
	opened, refused = int(nOpened.Load()), int(nRefused.Load())
	if p := firstErr.Load(); p != nil {
		return opened, refused, *p
	}
	if p := openErr.Load(); p != nil && opened == 0 {
		return 0, 0, fmt.Errorf("open streams to victim: %w", *p)
	}
	return opened, refused, ctx.Err()
}
