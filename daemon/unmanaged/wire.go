package unmanaged

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/patchring/patchring/platform/neighbor"
)

// FilePath is where a node serves its sightings to its site's members,
// on the file protocol of the payload exchange (admitted members only).
const FilePath = "unmanaged/v1"

// Limits of one node's sightings file. A member whose file breaks them is
// ignored as a whole (logged), never half-read.
const (
	MaxFileBytes   = 4 << 20
	maxSelf        = 64 // a node's own MACs, and its own addresses
	maxAddrsPerDev = 8
	maxHostname    = 63
	fileMagic      = "PRU1"
)

// Device is one device a node saw (or a site saw, in a View).
type Device struct {
	MAC       neighbor.MAC
	Addrs     []netip.Addr
	Hostname  string
	FirstSeen time.Time
	LastSeen  time.Time
}

// Report is what one node tells its site: its own MACs and addresses
// (from its inventory: what the site must not list) and the devices it
// saw.
type Report struct {
	SelfMACs  []neighbor.MAC
	SelfAddrs []netip.Addr
	Devices   []Device
}

// Marshal writes r compactly: "PRU1", then counts and fixed-size fields
// (MAC 6 bytes, addresses 4 or 16 with a length byte, times in Unix
// seconds, the host name with a length byte). Fields beyond the limits are
// dropped, so what Marshal writes Parse reads.
func (r *Report) Marshal() []byte {
	b := []byte(fileMagic)
	self := r.SelfMACs[:min(len(r.SelfMACs), maxSelf)]
	b = binary.BigEndian.AppendUint16(b, uint16(len(self)))
	for _, m := range self {
		b = append(b, m[:]...)
	}
	addrs := r.SelfAddrs[:min(len(r.SelfAddrs), maxSelf)]
	b = binary.BigEndian.AppendUint16(b, uint16(len(addrs)))
	for _, a := range addrs {
		b = appendAddr(b, a)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(r.Devices)))
	for _, d := range r.Devices {
		b = append(b, d.MAC[:]...)
		b = binary.BigEndian.AppendUint64(b, uint64(d.FirstSeen.Unix()))
		b = binary.BigEndian.AppendUint64(b, uint64(d.LastSeen.Unix()))
		as := d.Addrs[:min(len(d.Addrs), maxAddrsPerDev)]
		b = append(b, byte(len(as)))
		for _, a := range as {
			b = appendAddr(b, a)
		}
		h := d.Hostname
		if len(h) > maxHostname {
			h = ""
		}
		b = append(b, byte(len(h)))
		b = append(b, h...)
	}
	return b
}

func appendAddr(b []byte, a netip.Addr) []byte {
	s := a.Unmap().AsSlice()
	b = append(b, byte(len(s)))
	return append(b, s...)
}

var errMalformed = errors.New("malformed sightings")

type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n > len(r.b) {
		r.err = fmt.Errorf("%w: truncated", errMalformed)
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8() int {
	v := r.take(1)
	if v == nil {
		return 0
	}
	return int(v[0])
}

func (r *reader) u16() int {
	v := r.take(2)
	if v == nil {
		return 0
	}
	return int(binary.BigEndian.Uint16(v))
}

func (r *reader) addr() netip.Addr {
	n := r.u8()
	if n != 4 && n != 16 {
		if r.err == nil {
			r.err = fmt.Errorf("%w: address of %d bytes", errMalformed, n)
		}
		return netip.Addr{}
	}
	v := r.take(n)
	a, _ := netip.AddrFromSlice(v)
	return a
}

func (r *reader) time() time.Time {
	v := r.take(8)
	if v == nil {
		return time.Time{}
	}
	s := int64(binary.BigEndian.Uint64(v))
	if s < 0 || s > 1<<40 {
		r.err = fmt.Errorf("%w: time out of range", errMalformed)
		return time.Time{}
	}
	return time.Unix(s, 0).UTC()
}

// ParseReport reads a member's sightings file: untrusted input, refused
// whole when it is malformed, over a limit, or has trailing bytes; maxDevices
// bounds how many devices one member may report.
func ParseReport(b []byte, maxDevices int) (*Report, error) {
	if len(b) > MaxFileBytes {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", errMalformed, len(b), MaxFileBytes)
	}
	if len(b) < len(fileMagic) || string(b[:len(fileMagic)]) != fileMagic {
		return nil, fmt.Errorf("%w: not a sightings file", errMalformed)
	}
	r := &reader{b: b[len(fileMagic):]}
	out := &Report{}
	n := r.u16()
	if n > maxSelf {
		return nil, fmt.Errorf("%w: %d own MACs, at most %d", errMalformed, n, maxSelf)
	}
	for range n {
		if v := r.take(6); v != nil {
			out.SelfMACs = append(out.SelfMACs, neighbor.MAC(v))
		}
	}
	n = r.u16()
	if n > maxSelf {
		return nil, fmt.Errorf("%w: %d own addresses, at most %d", errMalformed, n, maxSelf)
	}
	for range n {
		if a := r.addr(); a.IsValid() {
			out.SelfAddrs = append(out.SelfAddrs, a)
		}
	}
	cnt := r.take(4)
	if r.err != nil {
		return nil, r.err
	}
	nd := int(binary.BigEndian.Uint32(cnt))
	if nd > maxDevices {
		return nil, fmt.Errorf("%w: %d devices, at most %d", errMalformed, nd, maxDevices)
	}
	for range nd {
		var d Device
		if v := r.take(6); v != nil {
			d.MAC = neighbor.MAC(v)
		}
		d.FirstSeen, d.LastSeen = r.time(), r.time()
		na := r.u8()
		if na > maxAddrsPerDev {
			return nil, fmt.Errorf("%w: %d addresses for one device, at most %d", errMalformed, na, maxAddrsPerDev)
		}
		for range na {
			if a := r.addr(); a.IsValid() {
				d.Addrs = append(d.Addrs, a)
			}
		}
		hl := r.u8()
		if hl > maxHostname {
			return nil, fmt.Errorf("%w: host name of %d bytes", errMalformed, hl)
		}
		d.Hostname = string(r.take(hl))
		if r.err != nil {
			return nil, r.err
		}
		if !d.MAC.Unicast() {
			return nil, fmt.Errorf("%w: device %s is not a unicast MAC", errMalformed, d.MAC)
		}
		if d.LastSeen.Before(d.FirstSeen) {
			return nil, fmt.Errorf("%w: device %s last seen before first seen", errMalformed, d.MAC)
		}
		if !validHostname(d.Hostname) {
			return nil, fmt.Errorf("%w: device %s: bad host name", errMalformed, d.MAC)
		}
		out.Devices = append(out.Devices, d)
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", errMalformed, len(r.b))
	}
	return out, nil
}

func validHostname(s string) bool {
	for _, c := range []byte(s) {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}
