package discovery

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// A beacon datagram (version 1), all integers big-endian:
//
//	offset  size  field
//	0       4     magic "PRDB"
//	4       1     version (1)
//	5       8     sender's wall time, Unix milliseconds
//	13      2     gossip port (not 0)
//	15      1     length of the gossip IP: 0 (receivers use the source address), 4 or 16
//	16      n     gossip IP
//	16+n    1     length of the node ID: 1..128
//	17+n    m     node ID (the sender's libp2p peer ID, string form)
//	17+n+m  32    HMAC-SHA256 over every byte before it
//
// The HMAC key is derived from a gossip key and the fleet label with
// HKDF-SHA256 (info "patchring-discovery-v1", a zero byte, the label), so a
// beacon of one fleet does not verify in another one with the same key,
// and the gossip key itself is never used for anything but memberlist.
const (
	magic        = "PRDB"
	version1     = 1
	headerLen    = 4 + 1 + 8 + 2 + 1 // up to the IP
	tagLen       = sha256.Size
	maxNodeIDLen = 128
	// MaxDatagram is the largest valid beacon; anything longer is dropped
	// unread.
	MaxDatagram = headerLen + 16 + 1 + maxNodeIDLen + tagLen
	// minDatagram is the shortest valid beacon (no IP, 1-byte node ID).
	minDatagram = headerLen + 1 + 1 + tagLen
	keyInfo     = "patchring-discovery-v1\x00"
)

// Reasons a datagram is dropped before its content is looked at.
var (
	errOversized = errors.New("beacon datagram too long")
	errMalformed = errors.New("malformed beacon datagram")
	errBadAuth   = errors.New("beacon authentication failed")
)

// announcement is what a beacon says.
type announcement struct {
	NodeID string
	// Time is the sender's wall clock at sending, millisecond precision.
	Time time.Time
	// Gossip is the sender's gossip address; its IP is invalid (zero) when
	// the sender leaves it to the datagram's source address.
	Gossip netip.AddrPort
}

// deriveKey derives the beacon's HMAC key from a gossip key and the label.
func deriveKey(gossipKey []byte, label string) []byte {
	k, err := hkdf.Key(sha256.New, gossipKey, nil, keyInfo+label, sha256.Size)
	if err != nil {
		// Only a key length above 255*32 bytes fails.
		panic(fmt.Sprintf("derive discovery key: %v", err))
	}
	return k
}

// seal encodes a and appends its HMAC under key.
func seal(a announcement, key []byte) ([]byte, error) {
	if n := len(a.NodeID); n == 0 || n > maxNodeIDLen {
		return nil, fmt.Errorf("encode beacon: node ID is %d bytes, want 1..%d", n, maxNodeIDLen)
	}
	if a.Gossip.Port() == 0 {
		return nil, fmt.Errorf("encode beacon: gossip port is 0")
	}
	var ip []byte
	if addr := a.Gossip.Addr(); addr.IsValid() && !addr.IsUnspecified() {
		ip = addr.Unmap().AsSlice()
	}
	b := make([]byte, 0, MaxDatagram)
	b = append(b, magic...)
	b = append(b, version1)
	b = binary.BigEndian.AppendUint64(b, uint64(a.Time.UnixMilli()))
	b = binary.BigEndian.AppendUint16(b, a.Gossip.Port())
	b = append(b, byte(len(ip)))
	b = append(b, ip...)
	b = append(b, byte(len(a.NodeID)))
	b = append(b, a.NodeID...)
	m := hmac.New(sha256.New, key)
	m.Write(b)
	return m.Sum(b), nil
}

// checkFrame is open's first, cheap look: size, magic and version.
func checkFrame(b []byte) error {
	if len(b) > MaxDatagram {
		return fmt.Errorf("%w: %d bytes, at most %d", errOversized, len(b), MaxDatagram)
	}
	if len(b) < minDatagram || string(b[:4]) != magic {
		return fmt.Errorf("%w: not a patchring beacon", errMalformed)
	}
	if b[4] != version1 {
		return fmt.Errorf("%w: version %d", errMalformed, b[4])
	}
	return nil
}

// open checks a datagram's size and framing, verifies its HMAC under any
// of keys (derived keys, tried in order) and decodes it. It never panics
// and reads nothing beyond b.
func open(b []byte, keys [][]byte) (announcement, error) {
	if err := checkFrame(b); err != nil {
		return announcement{}, err
	}
	body, tag := b[:len(b)-tagLen], b[len(b)-tagLen:]
	ok := false
	for _, k := range keys {
		m := hmac.New(sha256.New, k)
		m.Write(body)
		if hmac.Equal(m.Sum(nil), tag) {
			ok = true
			break
		}
	}
	if !ok {
		return announcement{}, errBadAuth
	}
	var a announcement
	ms := binary.BigEndian.Uint64(body[5:13])
	if ms > 1<<62 {
		return announcement{}, fmt.Errorf("%w: absurd time %d", errMalformed, ms)
	}
	a.Time = time.UnixMilli(int64(ms)).UTC()
	port := binary.BigEndian.Uint16(body[13:15])
	if port == 0 {
		return announcement{}, fmt.Errorf("%w: gossip port 0", errMalformed)
	}
	ipLen := int(body[15])
	rest := body[headerLen:]
	if ipLen != 0 && ipLen != 4 && ipLen != 16 || len(rest) < ipLen+1 {
		return announcement{}, fmt.Errorf("%w: IP length %d", errMalformed, ipLen)
	}
	var ip netip.Addr
	if ipLen > 0 {
		ip, _ = netip.AddrFromSlice(rest[:ipLen])
		ip = ip.Unmap()
		if ip.IsUnspecified() {
			return announcement{}, fmt.Errorf("%w: unspecified gossip IP", errMalformed)
		}
	}
	rest = rest[ipLen:]
	idLen := int(rest[0])
	rest = rest[1:]
	if idLen == 0 || idLen > maxNodeIDLen || len(rest) != idLen {
		return announcement{}, fmt.Errorf("%w: node ID length %d with %d bytes left", errMalformed, idLen, len(rest))
	}
	a.NodeID = string(rest)
	a.Gossip = netip.AddrPortFrom(ip, port)
	return a, nil
}
