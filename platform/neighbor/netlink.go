package neighbor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Netlink constants (linux/netlink.h, linux/rtnetlink.h,
// linux/neighbour.h), here so that the parser builds and is fuzzed on
// every OS.
const (
	nlmsgHdrLen  = 16
	nlmsgError   = 2
	nlmsgDone    = 3
	rtmNewNeigh  = 28
	rtmGetNeigh  = 30
	ndmsgLen     = 12
	ndaDst       = 1
	ndaLLAddr    = 2
	ndaCacheInfo = 3
	userHZ       = 100 // clock_t ticks per second in nda_cacheinfo
	nudIncomplet = 0x01
	nudFailed    = 0x20
	nudNoARP     = 0x40
)

// ParseNeighbors reads one buffer of netlink messages answering an
// RTM_GETNEIGH dump: an observation per neighbour entry with an Ethernet
// address (entries that are incomplete, failed or need no resolution are
// left out). done is true when the buffer holds the dump's end. A kernel
// error message is returned as an error.
func ParseNeighbors(b []byte) (obs []Observation, done bool, err error) {
	for len(b) >= nlmsgHdrLen {
		l := int(binary.NativeEndian.Uint32(b[0:4]))
		typ := binary.NativeEndian.Uint16(b[4:6])
		if l < nlmsgHdrLen || l > len(b) {
			return obs, false, fmt.Errorf("netlink: message of %d bytes in %d", l, len(b))
		}
		body := b[nlmsgHdrLen:l]
		switch typ {
		case nlmsgDone:
			return obs, true, nil
		case nlmsgError:
			if len(body) >= 4 {
				if code := int32(binary.NativeEndian.Uint32(body[0:4])); code != 0 {
					return obs, false, fmt.Errorf("netlink: error %d", -code)
				}
			}
			return obs, false, errors.New("netlink: error message")
		case rtmNewNeigh:
			if o, ok := parseNdmsg(body); ok {
				obs = append(obs, o)
			}
		}
		next := (l + 3) &^ 3
		if next > len(b) {
			break
		}
		b = b[next:]
	}
	return obs, false, nil
}

func parseNdmsg(b []byte) (Observation, bool) {
	var o Observation
	if len(b) < ndmsgLen {
		return o, false
	}
	o.Ifindex = int(int32(binary.NativeEndian.Uint32(b[4:8])))
	state := binary.NativeEndian.Uint16(b[8:10])
	if state&(nudIncomplet|nudFailed|nudNoARP) != 0 || state == 0 {
		return o, false
	}
	var haveMAC bool
	attrs := b[ndmsgLen:]
	for len(attrs) >= 4 {
		al := int(binary.NativeEndian.Uint16(attrs[0:2]))
		at := binary.NativeEndian.Uint16(attrs[2:4]) & 0x3fff
		if al < 4 || al > len(attrs) {
			return o, false
		}
		v := attrs[4:al]
		switch at {
		case ndaDst:
			switch len(v) {
			case 4:
				o.Addrs = append(o.Addrs, netip.AddrFrom4([4]byte(v)))
			case 16:
				o.Addrs = append(o.Addrs, netip.AddrFrom16([16]byte(v)))
			}
		case ndaLLAddr:
			if len(v) == 6 {
				o.MAC, haveMAC = MAC(v), true
			}
		case ndaCacheInfo:
			// struct nda_cacheinfo: confirmed, used, updated, refcnt
			// (clock ticks since). The entry was last heard from when
			// it was confirmed or updated, whichever is later.
			if len(v) >= 12 {
				ticks := min(binary.NativeEndian.Uint32(v[0:4]), binary.NativeEndian.Uint32(v[8:12]))
				o.Age = time.Duration(ticks) * time.Second / userHZ
			}
		}
		next := (al + 3) &^ 3
		if next >= len(attrs) {
			break
		}
		attrs = attrs[next:]
	}
	if !haveMAC || !o.MAC.Unicast() || len(o.Addrs) != 1 || !usable(o.Addrs[0]) {
		return o, false
	}
	o.Source = SourceNeighbor
	return o, true
}

// neighDumpRequest is the RTM_GETNEIGH dump request for every family.
func neighDumpRequest(seq uint32) []byte {
	const flags = 0x1 | 0x300 // NLM_F_REQUEST | NLM_F_DUMP
	b := make([]byte, nlmsgHdrLen+ndmsgLen)
	binary.NativeEndian.PutUint32(b[0:4], uint32(len(b)))
	binary.NativeEndian.PutUint16(b[4:6], rtmGetNeigh)
	binary.NativeEndian.PutUint16(b[6:8], flags)
	binary.NativeEndian.PutUint32(b[8:12], seq)
	return b // ndmsg all zero: AF_UNSPEC
}
