package exchange

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"reflect"
	"testing"
	"time"

	"github.com/patchring/patchring/internal/testutil"
	"github.com/patchring/patchring/p2p/content"
)

func TestFrameRoundTrip(t *testing.T) {
	h := content.Sum([]byte("payload"))
	tests := []struct {
		name string
		m    Message
	}{
		{"have request", &HaveRequest{Hash: h, PieceSize: 1 << 20}},
		{"have none", &HaveResponse{Status: HaveNone}},
		{"have full", &HaveResponse{Status: HaveFull, Size: 5 << 30, PieceSize: 1 << 20}},
		{"have partial", &HaveResponse{Status: HavePartial, Size: 10 << 20, PieceSize: 1 << 20, Bitmap: []byte{0xa5, 0x80}}},
		{"manifest request", &ManifestRequest{Hash: h, PieceSize: 65536}},
		{"manifest", &ManifestResponse{Sums: []content.Hash{h, {}, content.Sum(nil)}}},
		{"empty manifest", &ManifestResponse{Sums: []content.Hash{}}},
		{"range request", &RangeRequest{Hash: h, Offset: 1 << 33, Len: 1 << 20}},
		{"range response", &RangeResponse{Len: 12345}},
		{"error", &ErrorResponse{Code: CodeBusy, Message: "all upload slots busy"}},
		{"have-wait", &HaveWaitRequest{Hash: h, PieceSize: 1 << 20, Size: 10<<20 + 1, Wait: 250 * time.Millisecond, Need: []byte{0xa5, 0x80}}},
		{"have-wait empty payload", &HaveWaitRequest{Hash: h, PieceSize: MinPieceSize, Need: []byte{}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Syncthing style: the two ends of an io.Pipe.
			pr, pw := io.Pipe()
			go func() { pw.CloseWithError(WriteFrame(pw, tc.m)) }()
			got, err := ReadFrame(bufio.NewReader(pr))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.m) {
				t.Fatalf("round trip: got %#v, want %#v", got, tc.m)
			}
		})
	}
}

func TestReadFrameRejects(t *testing.T) {
	h := content.Sum([]byte("x"))
	frame := func(typ byte, body []byte) []byte {
		b := []byte{typ, 0, 0, 0, 0}
		b[1], b[2], b[3], b[4] = byte(len(body)>>24), byte(len(body)>>16), byte(len(body)>>8), byte(len(body))
		return append(b, body...)
	}
	u32 := func(v uint32) []byte { return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)} }
	u64 := func(v uint64) []byte { return append(u32(uint32(v>>32)), u32(uint32(v))...) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	const P = MinPieceSize
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, io.EOF},
		{"truncated header", []byte{1, 0, 0}, io.ErrUnexpectedEOF},
		{"truncated body", frame(typeHaveRequest, h[:])[:20], io.ErrUnexpectedEOF},
		{"unknown type", frame(99, nil), ErrFrame},
		{"huge length", []byte{typeManifestResponse, 0xff, 0xff, 0xff, 0xff}, ErrFrame},
		{"have request short", frame(typeHaveRequest, h[:]), ErrFrame},
		{"piece size zero", frame(typeHaveRequest, cat(h[:], u32(0))), ErrFrame},
		{"piece size huge", frame(typeManifestRequest, cat(h[:], u32(MaxPieceSize+1))), ErrFrame},
		// Tiny pieces made a node allocate per piece (issue 11, finding 1).
		{"piece size tiny", frame(typeManifestRequest, cat(h[:], u32(1))), ErrFrame},
		{"piece size under minimum", frame(typeHaveRequest, cat(h[:], u32(MinPieceSize-1))), ErrFrame},
		{"have too many pieces", frame(typeHaveResponse, cat([]byte{1}, u64(MaxPayloadSize), u32(P))), ErrFrame},
		{"have-wait too many pieces", frame(typeHaveWaitRequest, cat(h[:], u32(P), u64(MaxPayloadSize), u32(0), make([]byte, MaxPayloadSize/P/8))), ErrFrame},
		{"have bad status", frame(typeHaveResponse, cat([]byte{9}, u64(10), u32(P))), ErrFrame},
		{"have none trailing", frame(typeHaveResponse, cat([]byte{0}, u64(0), u32(0), []byte{1})), ErrFrame},
		{"have partial bitmap short", frame(typeHaveResponse, cat([]byte{2}, u64(10*P), u32(P))), ErrFrame},
		{"have partial stray bits", frame(typeHaveResponse, cat([]byte{2}, u64(3*P), u32(P), []byte{0xf0})), ErrFrame},
		{"have size huge", frame(typeHaveResponse, cat([]byte{1}, u64(1<<63), u32(P))), ErrFrame},
		{"manifest ragged", frame(typeManifestResponse, make([]byte, 33)), ErrFrame},
		{"range negative offset", frame(typeRangeRequest, cat(h[:], u64(1<<63), u64(1))), ErrFrame},
		{"range zero length", frame(typeRangeRequest, cat(h[:], u64(0), u64(0))), ErrFrame},
		{"range too long", frame(typeRangeRequest, cat(h[:], u64(0), u64(MaxRange+1))), ErrFrame},
		{"range response huge", frame(typeRangeResponse, u64(MaxRange+1)), ErrFrame},
		{"error empty", frame(typeError, nil), ErrFrame},
		{"have-wait short", frame(typeHaveWaitRequest, cat(h[:], u32(P), u64(3*P))), ErrFrame},
		{"have-wait piece size zero", frame(typeHaveWaitRequest, cat(h[:], u32(0), u64(3*P), u32(0), []byte{0xe0})), ErrFrame},
		{"have-wait size huge", frame(typeHaveWaitRequest, cat(h[:], u32(P), u64(1<<63), u32(0))), ErrFrame},
		{"have-wait too long", frame(typeHaveWaitRequest, cat(h[:], u32(P), u64(3*P), u32(uint32(MaxHaveWait/time.Millisecond)+1), []byte{0xe0})), ErrFrame},
		{"have-wait bitmap short", frame(typeHaveWaitRequest, cat(h[:], u32(P), u64(10*P), u32(0), []byte{0xff})), ErrFrame},
		{"have-wait stray bits", frame(typeHaveWaitRequest, cat(h[:], u32(P), u64(3*P), u32(0), []byte{0xf0})), ErrFrame},
		{"error too long", frame(typeError, make([]byte, maxErrorMessage+2)), ErrFrame},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadFrame(bytes.NewReader(tc.in))
			if !errors.Is(err, tc.want) {
				t.Fatalf("ReadFrame: %v, want %v", err, tc.want)
			}
		})
	}
}

// FuzzReadFrame feeds arbitrary bytes, as a hostile peer could, to the frame
// decoder: it must never panic or allocate beyond maxFrame, and whatever it
// accepts must encode back to the same frame.
func FuzzReadFrame(f *testing.F) {
	h := content.Sum([]byte("seed"))
	for _, m := range []Message{
		&HaveRequest{Hash: h, PieceSize: 1 << 20},
		&HaveResponse{Status: HavePartial, Size: 3 << 20, PieceSize: 1 << 20, Bitmap: []byte{0xa0}},
		&HaveResponse{Status: HaveFull, Size: 1, PieceSize: MinPieceSize},
		&ManifestResponse{Sums: []content.Hash{h}},
		&RangeRequest{Hash: h, Offset: 7, Len: 9},
		&RangeResponse{Len: 9},
		&ErrorResponse{Code: CodeNotFound, Message: "no"},
		&HaveWaitRequest{Hash: h, PieceSize: 1 << 20, Size: 3 << 20, Wait: time.Second, Need: []byte{0x60}},
	} {
		var b bytes.Buffer
		if err := WriteFrame(&b, m); err != nil {
			f.Fatal(err)
		}
		f.Add(b.Bytes())
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := ReadFrame(bytes.NewReader(in))
		if err != nil {
			return
		}
		var out bytes.Buffer
		if err := WriteFrame(&out, m); err != nil {
			t.Fatalf("re-encode %#v: %v", m, err)
		}
		m2, err := ReadFrame(&out)
		if err != nil {
			t.Fatalf("decode re-encoded %#v: %v", m, err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip changed %#v into %#v", m, m2)
		}
	})
}

// TestServerOverPipe drives the real server over an io.Pipe pair.
func TestServerOverPipe(t *testing.T) {
	st := openTestStore(t)
	data := randPayload(t, 5*testPiece+100, 9)
	h := content.Sum(data)
	if err := st.Put(context.Background(), h, int64(len(data)), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	part := randPayload(t, 3*testPiece, 10)
	ph := content.Sum(part)
	w, err := st.Writer(ph, int64(len(part)), testPiece)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Abort() })
	if _, err := w.WritePiece(context.Background(), 1, bytes.NewReader(part[testPiece:2*testPiece])); err != nil {
		t.Fatal(err)
	}
	if err := w.Accept(1); err != nil {
		t.Fatal(err)
	}
	sb := newScoreboard(time.Now)
	srv := &server{
		store: st, up: NewLimiter(0), slots: newSlotPool(1), stats: &serverCounters{}, minRate: 64 << 10, sb: sb,
		manifests: newManifestCache(manifestCacheBytes), idle: 5 * time.Second, log: testutil.Logger(t),
	}
	c, s := duplexPipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.serveConn(ctx, "client", s, false) }()
	t.Cleanup(func() {
		cancel()
		_ = c.Close()
		<-done
	})
	sess := newSession(c)
	to := 5 * time.Second
	bg := context.Background()

	hv, err := sess.have(bg, to, h, testPiece)
	if err != nil || hv.Status != HaveFull || hv.Size != int64(len(data)) {
		t.Fatalf("have full: %+v, %v", hv, err)
	}
	hv, err = sess.have(bg, to, ph, testPiece)
	if err != nil || hv.Status != HavePartial || !bytes.Equal(hv.Bitmap, []byte{0x40}) {
		t.Fatalf("have partial: %+v, %v", hv, err)
	}
	if hv, err = sess.have(bg, to, ph, 2*testPiece); err != nil || hv.Status != HaveNone {
		t.Fatalf("have partial, other geometry: %+v, %v", hv, err)
	}
	if hv, err = sess.have(bg, to, content.Sum(nil), testPiece); err != nil || hv.Status != HaveNone {
		t.Fatalf("have unknown: %+v, %v", hv, err)
	}
	sums, err := sess.manifest(bg, to, h, testPiece, 6)
	if err != nil || sums[5] != content.Sum(data[5*testPiece:]) {
		t.Fatalf("manifest: %v", err)
	}
	sums, err = sess.manifest(bg, to, ph, testPiece, 3)
	if err != nil || !sums[0].IsZero() || sums[1] != content.Sum(part[testPiece:2*testPiece]) {
		t.Fatalf("partial manifest: %v", err)
	}
	var re *RemoteError
	if _, err := sess.manifest(bg, to, content.Sum(nil), testPiece, 1); !errors.As(err, &re) || re.Code != CodeNotFound {
		t.Fatalf("manifest of unknown: %v", err)
	}

	// Pieces stream straight into a Writer of another store.
	dst := openTestStore(t)
	dw, err := dst.Writer(h, int64(len(data)), testPiece)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dw.Abort() })
	for i := range dw.NumPieces() {
		sum, err := sess.readPiece(bg, to, dw, i)
		if err != nil {
			t.Fatalf("piece %d: %v", i, err)
		}
		if sum != sums0(data, i) {
			t.Fatalf("piece %d sum mismatch", i)
		}
		if err := dw.Accept(i); err != nil {
			t.Fatal(err)
		}
	}
	if err := dw.Commit(bg); err != nil {
		t.Fatal(err)
	}
	if ps, _ := sb.peerStats("client"); ps.BytesOut != int64(len(data)) {
		t.Fatalf("server counted %d bytes out, want %d", ps.BytesOut, len(data))
	}
	// A range of the partial download that is not accepted is refused.
	pw, err := dst.Writer(ph, int64(len(part)), testPiece)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pw.Abort() })
	if _, err := sess.readPiece(bg, to, pw, 0); !errors.As(err, &re) || re.Code != CodeNotFound {
		t.Fatalf("unaccepted piece: %v, want not found", err)
	}
	if _, err := sess.readPiece(bg, to, pw, 1); err != nil {
		t.Fatalf("accepted piece of a partial: %v", err)
	}
	// All slots taken: busy.
	srv.slots.slots <- struct{}{}
	if _, err := sess.readPiece(bg, to, pw, 2); !errors.As(err, &re) || re.Code != CodeBusy {
		t.Fatalf("no slot: %v, want busy", err)
	}
	<-srv.slots.slots
}

func sums0(data []byte, i int) content.Hash {
	off := i * testPiece
	return content.Sum(data[off:min(off+testPiece, len(data))])
}

// TestServerHaveWait drives have-wait requests against the real server: it
// answers as soon as it holds a needed piece, not when the wait is over.
func TestServerHaveWait(t *testing.T) {
	st := openTestStore(t)
	part := randPayload(t, 3*testPiece, 11)
	ph := content.Sum(part)
	size := int64(len(part))
	w, err := st.Writer(ph, size, testPiece)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Abort() })
	full := randPayload(t, 4*testPiece, 12)
	fh := content.Sum(full)
	if err := st.Put(context.Background(), fh, int64(len(full)), bytes.NewReader(full)); err != nil {
		t.Fatal(err)
	}
	srv := &server{
		store: st, up: NewLimiter(0), slots: newSlotPool(1), stats: &serverCounters{}, minRate: 64 << 10, sb: newScoreboard(time.Now),
		seeding: newSeedTracker(time.Now), manifests: newManifestCache(manifestCacheBytes), idle: 30 * time.Second, log: testutil.Logger(t),
	}
	waiting := make(chan struct{}, 16)
	srv.waiting = func() { waiting <- struct{}{} }
	c, s := duplexPipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.serveConn(ctx, "client", s, false) }()
	t.Cleanup(func() {
		cancel()
		_ = c.Close()
		<-done
	})
	sess := newSession(c)
	bg := context.Background()
	ask := func(h content.Hash, size int64, need []byte, wait, deadline time.Duration) (*HaveResponse, error) {
		t.Helper()
		m, err := sess.roundTrip(bg, deadline, &HaveWaitRequest{Hash: h, PieceSize: testPiece, Size: size, Wait: wait, Need: need})
		if err != nil {
			return nil, err
		}
		return m.(*HaveResponse), nil
	}

	// Nothing needed is held: the answer comes when the wait is over.
	hv, err := ask(ph, size, []byte{0xe0}, 20*time.Millisecond, 10*time.Second)
	if err != nil || hv.Status != HavePartial || hv.Bitmap[0] != 0 {
		t.Fatalf("have-wait on an empty partial: %+v, %v", hv, err)
	}
	<-waiting
	// A piece accepted while the request waits is answered at once: the
	// deadline is half the wait, so only the change can answer in time.
	go func() {
		<-waiting
		if _, err := w.WritePiece(bg, 2, bytes.NewReader(part[2*testPiece:])); err == nil {
			_ = w.Accept(2)
		}
	}()
	hv, err = ask(ph, size, []byte{0x60}, MaxHaveWait, MaxHaveWait/2)
	if err != nil || hv.Status != HavePartial || hv.Bitmap[0] != 0x20 {
		t.Fatalf("have-wait answered %+v, %v; want piece 2 as soon as it was accepted", hv, err)
	}
	// A piece the client does not need does not answer it.
	hv, err = ask(ph, size, []byte{0x80}, 20*time.Millisecond, 10*time.Second)
	if err != nil || hv.Bitmap[0] != 0x20 {
		t.Fatalf("have-wait for piece 0: %+v, %v", hv, err)
	}
	// A seed answers at once with what it offers (initial seeding: all).
	hv, err = ask(fh, int64(len(full)), []byte{0x10}, MaxHaveWait, MaxHaveWait/2)
	if err != nil || hv.Status != HavePartial || hv.Bitmap[0] != 0xf0 {
		t.Fatalf("have-wait at a seed: %+v, %v", hv, err)
	}
	// A holder of another size answers at once: the client must hear it.
	hv, err = ask(fh, int64(len(full))+1, []byte{0}, MaxHaveWait, MaxHaveWait/2)
	if err != nil || hv.Size != int64(len(full)) {
		t.Fatalf("have-wait with another size: %+v, %v", hv, err)
	}
	// Unknown payload: none, after the wait.
	hv, err = ask(content.Sum(nil), size, []byte{0xe0}, 20*time.Millisecond, 10*time.Second)
	if err != nil || hv.Status != HaveNone {
		t.Fatalf("have-wait for an unknown payload: %+v, %v", hv, err)
	}
}
