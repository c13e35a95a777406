package exchange

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/patchring/patchring/p2p/content"
)

// session is the client end of one stream. Requests are sequential. Every
// request runs under a deadline; when it passes the connection is aborted,
// which fails the blocked read (io.Pipe, net.Pipe and libp2p streams alike).
type session struct {
	c  io.ReadWriteCloser
	br *bufio.Reader
	// v1: the peer speaks only ProtocolIDv1, without have-wait.
	v1 bool
	// in counts payload bytes read by the current range request.
	in atomic.Int64
}

func newSession(c io.ReadWriteCloser) *session {
	s := &session{c: c, br: bufio.NewReaderSize(c, ioChunk)}
	if ps, ok := c.(interface{ Protocol() protocol.ID }); ok {
		s.v1 = ps.Protocol() == ProtocolIDv1
	}
	return s
}

func (s *session) close() error { return s.c.Close() }

// ErrTimeout: a request (or a piece, under its minimum rate) did not finish
// in time.
var ErrTimeout = errors.New("peer too slow")

// guard aborts the connection when d passes or ctx is done; the returned
// func stops the guard and reports whether the deadline fired.
func (s *session) guard(ctx context.Context, d time.Duration) func() (timedOut bool) {
	var fired atomic.Bool
	t := time.AfterFunc(d, func() { fired.Store(true); _ = abort(s.c) })
	stop := context.AfterFunc(ctx, func() { _ = abort(s.c) })
	return func() bool {
		t.Stop()
		stop()
		return fired.Load()
	}
}

func (s *session) roundTrip(ctx context.Context, d time.Duration, req Message) (Message, error) {
	done := s.guard(ctx, d)
	if err := WriteFrame(s.c, req); err != nil {
		return nil, s.wrapErr(ctx, done(), err)
	}
	m, err := ReadFrame(s.br)
	if timedOut := done(); err != nil {
		return nil, s.wrapErr(ctx, timedOut, err)
	}
	if e, ok := m.(*ErrorResponse); ok {
		return nil, &RemoteError{Code: e.Code, Message: e.Message}
	}
	return m, nil
}

func (s *session) wrapErr(ctx context.Context, timedOut bool, err error) error {
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case timedOut:
		return fmt.Errorf("%w: %v", ErrTimeout, err)
	case err == io.EOF:
		return io.ErrUnexpectedEOF
	}
	return err
}

func (s *session) have(ctx context.Context, d time.Duration, h content.Hash, pieceSize int64) (*HaveResponse, error) {
	m, err := s.roundTrip(ctx, d, &HaveRequest{Hash: h, PieceSize: pieceSize})
	if err != nil {
		return nil, fmt.Errorf("have %s: %w", h, err)
	}
	r, ok := m.(*HaveResponse)
	if !ok {
		return nil, fmt.Errorf("have %s: %w: got %T", h, ErrFrame, m)
	}
	return r, nil
}

// haveWait is a have request the peer may hold for up to wait, until it
// holds a piece set in need.
func (s *session) haveWait(ctx context.Context, d time.Duration, h content.Hash, pieceSize, size int64, wait time.Duration, need []byte) (*HaveResponse, error) {
	wait = min(wait, MaxHaveWait)
	m, err := s.roundTrip(ctx, d+wait, &HaveWaitRequest{Hash: h, PieceSize: pieceSize, Size: size, Wait: wait, Need: need})
	if err != nil {
		return nil, fmt.Errorf("have %s: %w", h, err)
	}
	r, ok := m.(*HaveResponse)
	if !ok {
		return nil, fmt.Errorf("have %s: %w: got %T", h, ErrFrame, m)
	}
	return r, nil
}

func (s *session) manifest(ctx context.Context, d time.Duration, h content.Hash, pieceSize int64, n int) ([]content.Hash, error) {
	m, err := s.roundTrip(ctx, d, &ManifestRequest{Hash: h, PieceSize: pieceSize})
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", h, err)
	}
	r, ok := m.(*ManifestResponse)
	if !ok {
		return nil, fmt.Errorf("manifest %s: %w: got %T", h, ErrFrame, m)
	}
	if len(r.Sums) != n {
		return nil, fmt.Errorf("manifest %s: %w: %d piece hashes, want %d", h, ErrFrame, len(r.Sums), n)
	}
	return r.Sums, nil
}

// readPiece requests piece i of w from the peer and streams it into w. It
// fails with ErrTimeout if the piece takes longer than d.
func (s *session) readPiece(ctx context.Context, d time.Duration, w *content.Writer, i int) (content.Hash, error) {
	off, n := w.PieceRange(i)
	s.in.Store(0)
	done := s.guard(ctx, d)
	if err := WriteFrame(s.c, &RangeRequest{Hash: w.Hash(), Offset: off, Len: n}); err != nil {
		return content.Hash{}, s.wrapErr(ctx, done(), err)
	}
	m, err := ReadFrame(s.br)
	if err != nil {
		return content.Hash{}, s.wrapErr(ctx, done(), err)
	}
	switch m := m.(type) {
	case *ErrorResponse:
		done()
		return content.Hash{}, &RemoteError{Code: m.Code, Message: m.Message}
	case *RangeResponse:
		if m.Len != n {
			done()
			return content.Hash{}, fmt.Errorf("%w: range of %d bytes, asked %d", ErrFrame, m.Len, n)
		}
	default:
		done()
		return content.Hash{}, fmt.Errorf("%w: got %T for a range request", ErrFrame, m)
	}
	sum, err := w.WritePiece(ctx, i, &countingReader{r: s.br, n: &s.in})
	if timedOut := done(); err != nil {
		if errors.Is(err, content.ErrDiskFull) || errors.Is(err, content.ErrBusy) || errors.Is(err, content.ErrClosed) {
			return content.Hash{}, &localError{err}
		}
		return content.Hash{}, s.wrapErr(ctx, timedOut, err)
	}
	return sum, nil
}

// localError marks a failure on our side (disk), not the peer's.
type localError struct{ err error }

func (e *localError) Error() string { return e.err.Error() }
func (e *localError) Unwrap() error { return e.err }

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}
