package exchange

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// FileProtocolID is the libp2p protocol with which fleet members fetch
// repository files from each other by path: the TUF metadata and policy a
// node verified (and whatever else its Files serves). It runs on the same
// host as /patchring/blob/1, for the same allow-listed peers.
//
// One request per stream. The client writes
//
//	pathLen u16 | path [pathLen]byte | maxLength u64
//
// and closes its side; the server answers
//
//	status u8 | length u64 | body [length]byte
//
// where for FileOK the body is the file (exactly length bytes) and for
// any other status a UTF-8 message of at most 1024 bytes. Integers are big
// endian. The bytes are untrusted: the asker verifies them against signed
// metadata (policy/trust does).
const FileProtocolID = "/patchring/meta/1"

// FileStatus is the first byte of a file response.
type FileStatus uint8

// File response statuses.
const (
	FileOK          FileStatus = 0
	FileNotFound    FileStatus = 1 // the node does not have the file
	FileTooLarge    FileStatus = 2 // the file is longer than the asked maximum
	FileBadRequest  FileStatus = 3 // malformed request or path
	FileBusy        FileStatus = 4 // all file slots taken; ask another peer
	FileUnavailable FileStatus = 5 // the node cannot serve it now (not a denial that it exists)
)

const (
	// MaxFilePath bounds the path of a file request.
	MaxFilePath = 1024
	// fileSlots caps concurrent file transfers a node serves.
	fileSlots = 8
)

// Errors of FetchFile, for errors.Is.
var (
	// ErrFileNotFound: the peer says it does not have the file. Callers
	// speaking HTTP semantics treat it as a 404.
	ErrFileNotFound = errors.New("peer does not have the file")
	// ErrFileTooLarge: the file is longer than the maximum asked for.
	ErrFileTooLarge = errors.New("file longer than the maximum asked for")
	// ErrFileUnavailable: the peer cannot serve the file now (busy, or
	// the file is not at hand); it does not deny that it exists.
	ErrFileUnavailable = errors.New("peer cannot serve the file now")
)

// Files is what a node serves on FileProtocolID.
type Files interface {
	// OpenFile opens the file at path (relative to the repository root;
	// already checked with ValidFilePath) and returns its length. It
	// returns an error wrapping ErrFileNotFound when the node does not
	// have the file, and one wrapping ErrFileUnavailable (or any other
	// error) when it cannot serve it now. The reader must yield exactly
	// length bytes.
	OpenFile(ctx context.Context, path string) (io.ReadCloser, int64, error)
}

// ValidFilePath checks a requested path: 1 to MaxFilePath bytes of UTF-8,
// relative, slash-separated segments that are not empty, "." or "..", and
// no backslash or NUL.
func ValidFilePath(p string) error {
	if p == "" || len(p) > MaxFilePath {
		return fmt.Errorf("file path of %d bytes, want 1 to %d", len(p), MaxFilePath)
	}
	if !utf8.ValidString(p) || strings.ContainsAny(p, "\\\x00") {
		return fmt.Errorf("file path %q: not a portable relative path", p)
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("file path %q: not a portable relative path", p)
		}
	}
	return nil
}

// writeFileRequest encodes a request.
func writeFileRequest(w io.Writer, path string, maxLength int64) error {
	if len(path) > MaxFilePath {
		return fmt.Errorf("encode file request: path of %d bytes exceeds %d", len(path), MaxFilePath)
	}
	b := make([]byte, 0, 2+len(path)+8)
	b = binary.BigEndian.AppendUint16(b, uint16(len(path)))
	b = append(b, path...)
	b = binary.BigEndian.AppendUint64(b, uint64(maxLength))
	_, err := w.Write(b)
	return err
}

// ReadFileRequest decodes a file request: the path (checked with
// ValidFilePath) and the most the client will read. Malformed input fails
// with an error wrapping ErrFrame.
func ReadFileRequest(r io.Reader) (path string, maxLength int64, err error) {
	var n [2]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return "", 0, unexpected(err)
	}
	l := int(binary.BigEndian.Uint16(n[:]))
	if l == 0 || l > MaxFilePath {
		return "", 0, frameErr("file request: path of %d bytes, want 1 to %d", l, MaxFilePath)
	}
	b := make([]byte, l+8)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", 0, unexpected(err)
	}
	path = string(b[:l])
	if err := ValidFilePath(path); err != nil {
		return "", 0, frameErr("file request: %v", err)
	}
	max := binary.BigEndian.Uint64(b[l:])
	if max == 0 || max > MaxPayloadSize {
		return "", 0, frameErr("file request: maximum length %d out of range (1..%d)", max, uint64(MaxPayloadSize))
	}
	return path, int64(max), nil
}

func writeFileHeader(w io.Writer, st FileStatus, length int64) error {
	var b [9]byte
	b[0] = byte(st)
	binary.BigEndian.PutUint64(b[1:], uint64(length))
	_, err := w.Write(b[:])
	return err
}

func writeFileError(w io.Writer, st FileStatus, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if len(msg) > maxErrorMessage {
		msg = msg[:maxErrorMessage]
	}
	if err := writeFileHeader(w, st, int64(len(msg))); err != nil {
		return err
	}
	_, err := io.WriteString(w, msg)
	return err
}

// ReadFileResponse decodes a response header and, for a status other
// than FileOK, its message. For FileOK, length bytes of the file follow
// on r. Malformed input fails with an error wrapping ErrFrame.
func ReadFileResponse(r io.Reader) (st FileStatus, length int64, msg string, err error) {
	var b [9]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return 0, 0, "", unexpected(err)
	}
	st = FileStatus(b[0])
	n := binary.BigEndian.Uint64(b[1:])
	switch {
	case st > FileUnavailable:
		return 0, 0, "", frameErr("file response: unknown status %d", st)
	case st == FileOK:
		if n > MaxPayloadSize {
			return 0, 0, "", frameErr("file response: length %d out of range", n)
		}
		return st, int64(n), "", nil
	case n > maxErrorMessage:
		return 0, 0, "", frameErr("file response: message of %d bytes exceeds %d", n, maxErrorMessage)
	}
	m := make([]byte, n)
	if _, err := io.ReadFull(r, m); err != nil {
		return 0, 0, "", unexpected(err)
	}
	return st, 0, strings.ToValidUTF8(string(m), "?"), nil
}

// fileServer answers FileProtocolID streams from a Files.
type fileServer struct {
	n     *Node
	files Files
	slots *slotPool
}

// ServeFiles starts answering FileProtocolID requests of allow-listed
// peers from files (replacing any earlier one). Transfers pay the upload
// limiter; at most 8 run at once and one per peer, further requests are
// answered busy. A transfer of n bytes must end within the idle timeout
// plus n at Config.MinUploadRate.
func (n *Node) ServeFiles(files Files) {
	fs := &fileServer{n: n, files: files, slots: newSlotPool(fileSlots)}
	n.h.SetStreamHandler(protocol.ID(FileProtocolID), fs.handleStream)
}

func (fs *fileServer) handleStream(s network.Stream) {
	n := fs.n
	p, done, ok := n.admit(s, n.fileStats)
	if !ok {
		return
	}
	defer done()
	ctx, cancel := context.WithCancel(n.ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	n.fileStats.sessions.Add(1)
	err := fs.serve(ctx, p, s)
	n.fileStats.ended(err, false)
	if err != nil {
		n.log.Debug("exchange: file request failed", "peer", p, "err", err)
		_ = s.Reset()
		return
	}
	_ = s.Close()
}

// serve answers one request. An error means the stream must be reset.
func (fs *fileServer) serve(ctx context.Context, p peer.ID, s network.Stream) error {
	idle := fs.n.srv.idle
	_ = s.SetReadDeadline(time.Now().Add(idle))
	stats := fs.n.fileStats
	path, maxLength, err := ReadFileRequest(s)
	if err != nil {
		if errors.Is(err, ErrFrame) {
			_ = s.SetWriteDeadline(time.Now().Add(idle))
			_ = writeFileError(s, FileBadRequest, "%v", err)
			return fmt.Errorf("read file request: %w", err)
		}
		if isTimeout(err) {
			return fmt.Errorf("read file request: %w (%v)", errTimeout, err)
		}
		return fmt.Errorf("read file request: %w", err)
	}
	_ = s.SetReadDeadline(time.Time{})
	_ = s.SetWriteDeadline(time.Now().Add(idle))
	release, err := fs.slots.take(ctx, p, 0)
	if err != nil {
		stats.refusedErr(err)
		return writeFileError(s, FileBusy, "%v", err)
	}
	defer release()
	rc, size, err := fs.files.OpenFile(ctx, path)
	switch {
	case errors.Is(err, ErrFileNotFound):
		stats.refused(CodeNotFound)
		return writeFileError(s, FileNotFound, "%s: not found", path)
	case err != nil:
		stats.refused(CodeInternal)
		fs.n.log.Debug("exchange: cannot serve file", "path", path, "err", err)
		return writeFileError(s, FileUnavailable, "%s: not available", path)
	}
	defer rc.Close()
	if size > maxLength {
		stats.refused(CodeBadRequest)
		return writeFileError(s, FileTooLarge, "%s: %d bytes, more than the %d asked for", path, size, maxLength)
	}
	// One deadline for the whole transfer, from the minimum rate: a
	// client that trickles its reads cannot hold a slot.
	srv := fs.n.srv
	_ = s.SetWriteDeadline(time.Now().Add(transferTimeout(idle, srv.minRate, srv.up, fileSlots, size)))
	if err := writeFileHeader(s, FileOK, size); err != nil {
		return err
	}
	bp := chunkBufs.Get().(*[]byte)
	defer chunkBufs.Put(bp)
	buf := *bp
	pay := &meter{l: fs.n.up}
	var sent int64
	for sent < size {
		c := buf[:min(int64(len(buf)), size-sent)]
		if _, err := io.ReadFull(rc, c); err != nil {
			// Fewer bytes than announced: break the stream, the client
			// sees a truncated file.
			return fmt.Errorf("read %s at %d: %w", path, sent, err)
		}
		if err := pay.add(ctx, len(c)); err != nil {
			return err
		}
		if _, err := s.Write(c); err != nil {
			if isTimeout(err) {
				return fmt.Errorf("send %s to %s: %w (%v)", path, p, errTimeout, err)
			}
			return fmt.Errorf("send %s to %s: %w", path, p, err)
		}
		sent += int64(len(c))
	}
	return pay.flush(ctx)
}

// isTimeout reports whether err is a deadline that passed.
func isTimeout(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// FetchFile asks peer ai for the file at path and returns a reader of its
// bytes and their length, which is at most maxLength. The reader fails
// once ctx is done, with io.ErrUnexpectedEOF when the peer stops short,
// and never reads past the announced length; the caller must Close it. A
// peer that does not have the file gives an error wrapping
// ErrFileNotFound; one longer than maxLength ErrFileTooLarge; a busy peer
// or one that cannot serve it now ErrFileUnavailable. The bytes are the
// peer's claim: verify them.
//
// A peer answers busy while it still holds the slot of this node's previous
// transfer (it releases the slot only after the last byte left, so a
// request sent right after the previous one finished can find it held), or
// while all its slots are taken: FetchFile asks again a few times, for
// about a second in all, before giving up with ErrFileUnavailable.
func (n *Node) FetchFile(ctx context.Context, ai peer.AddrInfo, path string, maxLength int64) (io.ReadCloser, int64, error) {
	wait := 25 * time.Millisecond
	for attempt := 1; ; attempt++ {
		rc, length, err := n.fetchFileOnce(ctx, ai, path, maxLength)
		if err == nil || !errors.Is(err, errFileBusy) || attempt == fileBusyTries {
			return rc, length, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, 0, fmt.Errorf("%w (%v)", ctx.Err(), err)
		case <-t.C:
		}
		wait *= 2
	}
}

// fileBusyTries is how often FetchFile asks a busy peer (waits of 25, 50,
// 100, 200 and 400 ms between).
const fileBusyTries = 6

// errFileBusy marks a busy answer among ErrFileUnavailable errors.
var errFileBusy = errors.New("busy")

func (n *Node) fetchFileOnce(ctx context.Context, ai peer.AddrInfo, path string, maxLength int64) (io.ReadCloser, int64, error) {
	if err := ValidFilePath(path); err != nil {
		return nil, 0, fmt.Errorf("fetch file: %w", err)
	}
	if maxLength <= 0 {
		return nil, 0, fmt.Errorf("fetch file %s: maximum length %d", path, maxLength)
	}
	maxLength = min(maxLength, MaxPayloadSize)
	if !n.gater.isAllowed(ai.ID) {
		return nil, 0, fmt.Errorf("fetch file %s from %s: not a fleet member", path, ai.ID)
	}
	if len(ai.Addrs) > 0 {
		if err := n.h.Connect(ctx, ai); err != nil {
			return nil, 0, fmt.Errorf("fetch file %s: dial %s: %w", path, ai.ID, err)
		}
	}
	s, err := n.h.NewStream(ctx, ai.ID, protocol.ID(FileProtocolID))
	if err != nil {
		return nil, 0, fmt.Errorf("fetch file %s: open stream to %s: %w", path, ai.ID, err)
	}
	body := &fileBody{s: s, ctx: ctx, path: path, peer: ai.ID}
	body.stop = context.AfterFunc(ctx, func() { _ = s.Reset() })
	fail := func(err error) (io.ReadCloser, int64, error) {
		body.stop()
		_ = s.Reset()
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		return nil, 0, fmt.Errorf("fetch file %s from %s: %w", path, ai.ID, err)
	}
	if err := writeFileRequest(s, path, maxLength); err != nil {
		return fail(err)
	}
	if err := s.CloseWrite(); err != nil {
		return fail(err)
	}
	st, length, msg, err := ReadFileResponse(s)
	if err != nil {
		return fail(err)
	}
	switch st {
	case FileOK:
	case FileNotFound:
		return fail(fmt.Errorf("%w: %s", ErrFileNotFound, msg))
	case FileTooLarge:
		return fail(fmt.Errorf("%w: %s", ErrFileTooLarge, msg))
	case FileBusy:
		return fail(fmt.Errorf("%w: %w: %s", ErrFileUnavailable, errFileBusy, msg))
	case FileUnavailable:
		return fail(fmt.Errorf("%w: %s", ErrFileUnavailable, msg))
	default:
		return fail(fmt.Errorf("peer refused (status %d): %s", st, msg))
	}
	if length > maxLength {
		return fail(fmt.Errorf("%w: peer announces %d bytes, at most %d asked for", ErrFileTooLarge, length, maxLength))
	}
	body.left.Store(length)
	return body, length, nil
}

// fileBody reads the announced bytes of a file response.
type fileBody struct {
	s    network.Stream
	ctx  context.Context
	path string
	peer peer.ID
	stop func() bool
	left atomic.Int64 // bytes still to read; Read is not called concurrently
}

func (b *fileBody) Read(p []byte) (int, error) {
	left := b.left.Load()
	if left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > left {
		p = p[:left]
	}
	n, err := b.s.Read(p)
	left = b.left.Add(-int64(n))
	switch {
	case left == 0:
		return n, nil
	case b.ctx.Err() != nil:
		return n, fmt.Errorf("fetch file %s from %s: %w", b.path, b.peer, b.ctx.Err())
	case err == io.EOF:
		return n, fmt.Errorf("fetch file %s from %s: %w with %d bytes missing", b.path, b.peer, io.ErrUnexpectedEOF, left)
	case err != nil:
		return n, fmt.Errorf("fetch file %s from %s: %w", b.path, b.peer, err)
	}
	return n, nil
}

// Close ends the stream: cleanly when the whole file was read, with a
// reset otherwise (the server stops sending).
func (b *fileBody) Close() error {
	b.stop()
	if b.left.Load() == 0 {
		return b.s.Close()
	}
	return b.s.Reset()
}
