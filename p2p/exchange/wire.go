package exchange

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/patchring/patchring/p2p/content"
)

// ProtocolID is the libp2p protocol of the payload exchange. Version 2 adds
// HaveWaitRequest. A node serves both versions and asks for version 2
// first, so that nodes of a release that speaks only ProtocolIDv1 keep
// sharing with newer ones while a fleet is upgraded ring by ring; a v1
// session polls instead of waiting.
const (
	ProtocolID   = "/patchring/blob/2"
	ProtocolIDv1 = "/patchring/blob/1"
)

// Wire format. A session is a sequence of request/response pairs on one
// stream, started by the client. Every message is a frame:
//
//	type   uint8
//	length uint32 (big endian), at most maxFrame
//	body   [length]byte
//
// A RangeResponse frame is followed by exactly its Len raw payload bytes.
// Integers in bodies are big endian. Bodies:
//
//	HaveRequest      hash[32] pieceSize u32
//	HaveResponse     status u8 size u64 pieceSize u32 bitmap[ceil(n/8)] (bitmap only for HavePartial)
//	ManifestRequest  hash[32] pieceSize u32
//	ManifestResponse sums[n][32]  (a zero sum: the sender does not vouch for that piece)
//	RangeRequest     hash[32] offset u64 length u64
//	RangeResponse    length u64
//	ErrorResponse    code u8 message[...] (UTF-8, at most maxErrorMessage bytes)
//	HaveWaitRequest  hash[32] pieceSize u32 size u64 waitMillis u32 need[ceil(n/8)]
//
// A HaveWaitRequest (version 2 only) is a have request that the peer may hold for up to
// waitMillis (at most MaxHaveWait): it answers (with a HaveResponse) as soon
// as it holds a piece set in need, the pieces the client still lacks and
// has not asked anyone for. It replaces polling: a piece a peer accepts
// reaches the clients waiting on it at once.
const (
	typeHaveRequest      = 1
	typeHaveResponse     = 2
	typeManifestRequest  = 3
	typeManifestResponse = 4
	typeRangeRequest     = 5
	typeRangeResponse    = 6
	typeError            = 7
	typeHaveWaitRequest  = 8

	maxFrame        = 1 << 22 // 4 MiB: a manifest of 131072 pieces
	maxErrorMessage = 1024
	// MinPieceSize and MaxPieceSize bound the piece size a peer may ask
	// for, MaxPieces the number of pieces of one payload (a manifest of
	// MaxPieces fills one frame), and MaxRange the length of one range
	// request. Every bound is checked when a frame is decoded, before
	// anything is allocated for it: a piece geometry costs a node at most
	// 32 bytes (manifest) and 6 bytes (seeding) per piece, MaxPieces
	// pieces.
	MinPieceSize = 64 << 10
	MaxPieceSize = 16 << 20
	MaxPieces    = maxFrame / 32
	MaxRange     = 64 << 20
	// MaxPayloadSize bounds the payload size a peer may claim (1 TiB).
	MaxPayloadSize = 1 << 40
	// MaxHaveWait bounds how long a HaveWaitRequest may be held.
	MaxHaveWait = 10 * time.Second
)

// HaveStatus says how much of a payload a peer holds.
type HaveStatus uint8

// Have statuses.
const (
	HaveNone    HaveStatus = 0
	HaveFull    HaveStatus = 1
	HavePartial HaveStatus = 2
)

func (s HaveStatus) String() string {
	switch s {
	case HaveNone:
		return "none"
	case HaveFull:
		return "full"
	case HavePartial:
		return "partial"
	}
	return fmt.Sprintf("HaveStatus(%d)", uint8(s))
}

// ErrorCode is carried by an ErrorResponse.
type ErrorCode uint8

// Error codes.
const (
	CodeNotFound   ErrorCode = 1 // the peer does not hold the requested bytes
	CodeBadRequest ErrorCode = 2 // the request was malformed or out of range
	CodeBusy       ErrorCode = 3 // all upload slots are taken; try later or elsewhere
	CodeInternal   ErrorCode = 4 // the peer failed to read its own store
)

// Message is one decoded frame.
type Message interface{ frameType() byte }

// HaveRequest asks whether the peer holds Hash, with the piece geometry the
// client uses for the bitmap.
type HaveRequest struct {
	Hash      content.Hash
	PieceSize int64
}

// HaveResponse answers a HaveRequest. Bitmap is set for HavePartial: piece i
// is bit 7-i%8 of byte i/8.
type HaveResponse struct {
	Status    HaveStatus
	Size      int64
	PieceSize int64
	Bitmap    []byte
}

// HaveWaitRequest asks what the peer holds of Hash (Size bytes in pieces of
// PieceSize), letting the peer wait up to Wait for a piece set in Need
// before it answers. Need is a bitmap like HaveResponse's.
type HaveWaitRequest struct {
	Hash      content.Hash
	PieceSize int64
	Size      int64
	Wait      time.Duration // whole milliseconds on the wire
	Need      []byte
}

// ManifestRequest asks for the SHA-256 of every piece of Hash.
type ManifestRequest struct {
	Hash      content.Hash
	PieceSize int64
}

// ManifestResponse lists piece hashes. They are the sender's claim, not
// signed; see docs/P2P.md for how they are used.
type ManifestResponse struct {
	Sums []content.Hash
}

// RangeRequest asks for Len bytes of Hash from Offset.
type RangeRequest struct {
	Hash   content.Hash
	Offset int64
	Len    int64
}

// RangeResponse announces Len raw bytes that follow the frame.
type RangeResponse struct {
	Len int64
}

// ErrorResponse refuses a request.
type ErrorResponse struct {
	Code    ErrorCode
	Message string
}

func (*HaveRequest) frameType() byte      { return typeHaveRequest }
func (*HaveResponse) frameType() byte     { return typeHaveResponse }
func (*ManifestRequest) frameType() byte  { return typeManifestRequest }
func (*ManifestResponse) frameType() byte { return typeManifestResponse }
func (*RangeRequest) frameType() byte     { return typeRangeRequest }
func (*RangeResponse) frameType() byte    { return typeRangeResponse }
func (*ErrorResponse) frameType() byte    { return typeError }
func (*HaveWaitRequest) frameType() byte  { return typeHaveWaitRequest }

// RemoteError is an ErrorResponse received from a peer, as an error.
type RemoteError struct {
	Code    ErrorCode
	Message string
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("peer refused (code %d): %s", e.Code, e.Message)
}

// ErrFrame marks a malformed frame: the peer broke the protocol.
var ErrFrame = errors.New("malformed frame")

func frameErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrFrame, fmt.Sprintf(format, args...))
}

// bitmapLen is the bitmap length for a payload of size bytes.
func bitmapLen(size, pieceSize int64) int {
	return (content.NumPieces(size, pieceSize) + 7) / 8
}

// appendBody encodes m's body.
func appendBody(b []byte, m Message) ([]byte, error) {
	switch m := m.(type) {
	case *HaveRequest:
		if err := checkPieceSize(m.PieceSize); err != nil {
			return nil, err
		}
		b = append(b, m.Hash[:]...)
		b = binary.BigEndian.AppendUint32(b, uint32(m.PieceSize))
	case *HaveResponse:
		b = append(b, byte(m.Status))
		b = binary.BigEndian.AppendUint64(b, uint64(m.Size))
		b = binary.BigEndian.AppendUint32(b, uint32(m.PieceSize))
		if m.Status == HavePartial {
			b = append(b, m.Bitmap...)
		}
	case *ManifestRequest:
		if err := checkPieceSize(m.PieceSize); err != nil {
			return nil, err
		}
		b = append(b, m.Hash[:]...)
		b = binary.BigEndian.AppendUint32(b, uint32(m.PieceSize))
	case *ManifestResponse:
		for _, s := range m.Sums {
			b = append(b, s[:]...)
		}
	case *RangeRequest:
		b = append(b, m.Hash[:]...)
		b = binary.BigEndian.AppendUint64(b, uint64(m.Offset))
		b = binary.BigEndian.AppendUint64(b, uint64(m.Len))
	case *RangeResponse:
		b = binary.BigEndian.AppendUint64(b, uint64(m.Len))
	case *HaveWaitRequest:
		if err := CheckGeometry(m.Size, m.PieceSize); err != nil {
			return nil, fmt.Errorf("encode have-wait: %w", err)
		}
		if m.Wait < 0 || m.Wait > MaxHaveWait {
			return nil, fmt.Errorf("encode have-wait: size %d or wait %v out of range", m.Size, m.Wait)
		}
		if want := bitmapLen(m.Size, m.PieceSize); len(m.Need) != want {
			return nil, fmt.Errorf("encode have-wait: bitmap of %d bytes, want %d", len(m.Need), want)
		}
		b = append(b, m.Hash[:]...)
		b = binary.BigEndian.AppendUint32(b, uint32(m.PieceSize))
		b = binary.BigEndian.AppendUint64(b, uint64(m.Size))
		b = binary.BigEndian.AppendUint32(b, uint32(m.Wait/time.Millisecond))
		b = append(b, m.Need...)
	case *ErrorResponse:
		msg := m.Message
		if len(msg) > maxErrorMessage {
			msg = msg[:maxErrorMessage]
		}
		b = append(b, byte(m.Code))
		b = append(b, msg...)
	default:
		return nil, fmt.Errorf("encode frame: unknown message %T", m)
	}
	return b, nil
}

// checkBitmap validates a piece bitmap for size bytes in pieces of
// pieceSize: its length, and no bit set past the last piece.
func checkBitmap(bm []byte, size, pieceSize int64) error {
	if want := bitmapLen(size, pieceSize); len(bm) != want {
		return fmt.Errorf("bitmap of %d bytes, want %d", len(bm), want)
	}
	if n := content.NumPieces(size, pieceSize); n%8 != 0 && bm[len(bm)-1]&(0xff>>(n%8)) != 0 {
		return fmt.Errorf("bits set past piece %d", n-1)
	}
	return nil
}

func checkPieceSize(n int64) error {
	if n < MinPieceSize || n > MaxPieceSize {
		return fmt.Errorf("piece size %d out of range (%d..%d)", n, MinPieceSize, MaxPieceSize)
	}
	return nil
}

// CheckGeometry checks that a payload of size bytes in pieces of pieceSize
// is one a node serves: a piece size within MinPieceSize..MaxPieceSize and
// at most MaxPieces pieces.
func CheckGeometry(size, pieceSize int64) error {
	if err := checkPieceSize(pieceSize); err != nil {
		return err
	}
	if size < 0 || size > MaxPayloadSize {
		return fmt.Errorf("payload size %d out of range (0..%d)", size, int64(MaxPayloadSize))
	}
	if n := (size + pieceSize - 1) / pieceSize; n > MaxPieces {
		return fmt.Errorf("%d pieces of %d bytes, more than %d", n, pieceSize, MaxPieces)
	}
	return nil
}

// WriteFrame writes m as one frame.
func WriteFrame(w io.Writer, m Message) error {
	body, err := appendBody(make([]byte, 5, 64), m)
	if err != nil {
		return err
	}
	n := len(body) - 5
	if n > maxFrame {
		return fmt.Errorf("encode frame: body of %d bytes exceeds %d", n, maxFrame)
	}
	body[0] = m.frameType()
	binary.BigEndian.PutUint32(body[1:5], uint32(n))
	_, err = w.Write(body)
	return err
}

// ReadFrame reads and decodes one frame. Malformed input fails with an
// error wrapping ErrFrame; a clean end of stream before a frame is io.EOF.
func ReadFrame(r io.Reader) (Message, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:1]); err != nil {
		return nil, err
	}
	if _, err := io.ReadFull(r, hdr[1:]); err != nil {
		return nil, unexpected(err)
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > maxFrame {
		return nil, frameErr("frame of type %d has length %d > %d", hdr[0], n, maxFrame)
	}
	if hdr[0] < typeHaveRequest || hdr[0] > typeHaveWaitRequest {
		return nil, frameErr("unknown frame type %d", hdr[0])
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, unexpected(err)
	}
	return DecodeBody(hdr[0], body)
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// DecodeBody decodes the body of a frame of type t, validating every field.
func DecodeBody(t byte, b []byte) (Message, error) {
	wantLen := func(n int) error {
		if len(b) != n {
			return frameErr("frame type %d: body is %d bytes, want %d", t, len(b), n)
		}
		return nil
	}
	switch t {
	case typeHaveRequest, typeManifestRequest:
		if err := wantLen(36); err != nil {
			return nil, err
		}
		var h content.Hash
		copy(h[:], b)
		ps := int64(binary.BigEndian.Uint32(b[32:]))
		if err := checkPieceSize(ps); err != nil {
			return nil, frameErr("%v", err)
		}
		if t == typeHaveRequest {
			return &HaveRequest{Hash: h, PieceSize: ps}, nil
		}
		return &ManifestRequest{Hash: h, PieceSize: ps}, nil
	case typeHaveResponse:
		if len(b) < 13 {
			return nil, frameErr("have response of %d bytes, want at least 13", len(b))
		}
		m := &HaveResponse{
			Status:    HaveStatus(b[0]),
			Size:      int64(binary.BigEndian.Uint64(b[1:])),
			PieceSize: int64(binary.BigEndian.Uint32(b[9:])),
		}
		rest := b[13:]
		switch m.Status {
		case HaveNone:
			if len(rest) != 0 {
				return nil, frameErr("have response: trailing %d bytes", len(rest))
			}
			return m, nil
		case HaveFull, HavePartial:
		default:
			return nil, frameErr("have response: unknown status %d", m.Status)
		}
		if uint64(m.Size) > MaxPayloadSize {
			return nil, frameErr("have response: size %d out of range", uint64(m.Size))
		}
		if err := CheckGeometry(m.Size, m.PieceSize); err != nil {
			return nil, frameErr("have response: %v", err)
		}
		if m.Status == HaveFull {
			if len(rest) != 0 {
				return nil, frameErr("have response: trailing %d bytes", len(rest))
			}
			return m, nil
		}
		if err := checkBitmap(rest, m.Size, m.PieceSize); err != nil {
			return nil, frameErr("have response: %v", err)
		}
		m.Bitmap = append([]byte(nil), rest...)
		return m, nil
	case typeHaveWaitRequest:
		if len(b) < 48 {
			return nil, frameErr("have-wait request of %d bytes, want at least 48", len(b))
		}
		m := &HaveWaitRequest{
			PieceSize: int64(binary.BigEndian.Uint32(b[32:])),
			Size:      int64(binary.BigEndian.Uint64(b[36:])),
			Wait:      time.Duration(binary.BigEndian.Uint32(b[44:])) * time.Millisecond,
		}
		copy(m.Hash[:], b)
		if uint64(m.Size) > MaxPayloadSize {
			return nil, frameErr("have-wait request: size %d out of range", uint64(m.Size))
		}
		if err := CheckGeometry(m.Size, m.PieceSize); err != nil {
			return nil, frameErr("have-wait request: %v", err)
		}
		if m.Wait > MaxHaveWait {
			return nil, frameErr("have-wait request: wait %v longer than %v", m.Wait, MaxHaveWait)
		}
		if err := checkBitmap(b[48:], m.Size, m.PieceSize); err != nil {
			return nil, frameErr("have-wait request: %v", err)
		}
		m.Need = make([]byte, len(b)-48)
		copy(m.Need, b[48:])
		return m, nil
	case typeManifestResponse:
		if len(b)%32 != 0 || len(b)/32 > MaxPieces {
			return nil, frameErr("manifest of %d bytes is not a multiple of 32", len(b))
		}
		sums := make([]content.Hash, len(b)/32)
		for i := range sums {
			copy(sums[i][:], b[32*i:])
		}
		return &ManifestResponse{Sums: sums}, nil
	case typeRangeRequest:
		if err := wantLen(48); err != nil {
			return nil, err
		}
		m := &RangeRequest{
			Offset: int64(binary.BigEndian.Uint64(b[32:])),
			Len:    int64(binary.BigEndian.Uint64(b[40:])),
		}
		copy(m.Hash[:], b)
		if m.Offset < 0 || uint64(m.Offset) > MaxPayloadSize || m.Len <= 0 || m.Len > MaxRange {
			return nil, frameErr("range request [%d, +%d) out of bounds", m.Offset, m.Len)
		}
		return m, nil
	case typeRangeResponse:
		if err := wantLen(8); err != nil {
			return nil, err
		}
		m := &RangeResponse{Len: int64(binary.BigEndian.Uint64(b))}
		if m.Len < 0 || m.Len > MaxRange {
			return nil, frameErr("range response length %d out of bounds", m.Len)
		}
		return m, nil
	case typeError:
		if len(b) < 1 || len(b) > 1+maxErrorMessage {
			return nil, frameErr("error frame of %d bytes", len(b))
		}
		return &ErrorResponse{Code: ErrorCode(b[0]), Message: string(b[1:])}, nil
	}
	return nil, frameErr("unknown frame type %d", t)
}
