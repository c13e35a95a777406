package neighbor

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strings"
	"time"
)

// ErrUnsupported is returned where this OS has no implementation.
var ErrUnsupported = errors.New("neighbour observation is not supported on this OS")

// Source says how a device was observed.
type Source uint8

// Sources of observations.
const (
	SourceNeighbor Source = iota + 1 // the kernel's neighbour table
	SourceARP                        // an ARP request or reply
	SourceNDP                        // an ICMPv6 neighbour discovery message
	SourceDHCP                       // a DHCP/BOOTP request from a client
	SourceMDNS                       // an mDNS announcement
	SourceIP                         // the source of another IPv4/IPv6 frame
)

func (s Source) String() string {
	switch s {
	case SourceNeighbor:
		return "neighbor"
	case SourceARP:
		return "arp"
	case SourceNDP:
		return "ndp"
	case SourceDHCP:
		return "dhcp"
	case SourceMDNS:
		return "mdns"
	case SourceIP:
		return "ip"
	}
	return "unknown"
}

// MAC is an Ethernet (EUI-48) address.
type MAC [6]byte

func (m MAC) String() string { return net.HardwareAddr(m[:]).String() }

// Unicast reports whether m can name one device: not multicast or
// broadcast, not all zeros.
func (m MAC) Unicast() bool { return m[0]&1 == 0 && m != MAC{} }

// ParseMAC reads "aa:bb:cc:dd:ee:ff".
func ParseMAC(s string) (MAC, error) {
	hw, err := net.ParseMAC(s)
	if err != nil {
		return MAC{}, err
	}
	if len(hw) != 6 {
		return MAC{}, errors.New("not an EUI-48 address: " + s)
	}
	return MAC(hw), nil
}

// Observation is one sighting of a device: its MAC, the addresses it used
// (none, one or a few, not yet checked against this node's subnets: the
// caller does that) and the host name it announced, if any.
type Observation struct {
	MAC      MAC
	Addrs    []netip.Addr
	Hostname string
	Source   Source
	Ifindex  int
	// Age is how long ago the kernel last confirmed a neighbour table
	// entry (a stale entry can stay in the table long after its device
	// left); zero for captured frames, which are seen now.
	Age time.Duration
}

// Limits on what one frame can contribute.
const (
	maxAddrsPerFrame = 8
	maxHostname      = 63
)

// Ethernet types.
const (
	etherTypeIPv4 = 0x0800
	etherTypeARP  = 0x0806
	etherTypeVLAN = 0x8100
	etherTypeIPv6 = 0x86dd
)

// ParseFrame reads one received Ethernet frame and returns what it says
// about its sender; ok is false for frames that say nothing useful (our
// own multicast, malformed, or from a multicast source address). It never
// panics and allocates in proportion to the frame.
func ParseFrame(b []byte) (o Observation, ok bool) {
	if len(b) < 14 {
		return o, false
	}
	copy(o.MAC[:], b[6:12])
	typ := binary.BigEndian.Uint16(b[12:14])
	p := b[14:]
	if typ == etherTypeVLAN {
		if len(p) < 4 {
			return o, false
		}
		typ = binary.BigEndian.Uint16(p[2:4])
		p = p[4:]
	}
	if !o.MAC.Unicast() {
		return o, false
	}
	switch typ {
	case etherTypeARP:
		return parseARP(o, p)
	case etherTypeIPv4:
		return parseIPv4(o, p)
	case etherTypeIPv6:
		return parseIPv6(o, p)
	}
	return o, false
}

// parseARP takes the sender of an Ethernet/IPv4 ARP packet. The sender's
// hardware address must be the frame's source (proxies and spoofers
// aside, a mismatch is not one device), and 0.0.0.0 (an address probe)
// gives the MAC alone.
func parseARP(o Observation, p []byte) (Observation, bool) {
	if len(p) < 28 || binary.BigEndian.Uint16(p[0:2]) != 1 || binary.BigEndian.Uint16(p[2:4]) != etherTypeIPv4 || p[4] != 6 || p[5] != 4 {
		return o, false
	}
	if MAC(p[8:14]) != o.MAC {
		return o, false
	}
	o.Source = SourceARP
	if ip := netip.AddrFrom4([4]byte(p[14:18])); usable(ip) {
		o.Addrs = append(o.Addrs, ip)
	}
	return o, true
}

func parseIPv4(o Observation, p []byte) (Observation, bool) {
	if len(p) < 20 || p[0]>>4 != 4 {
		return o, false
	}
	ihl := int(p[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(p[2:4]))
	if ihl < 20 || total < ihl || len(p) < ihl {
		return o, false
	}
	if total < len(p) {
		p = p[:total] // Ethernet padding
	}
	src := netip.AddrFrom4([4]byte(p[12:16]))
	o.Source = SourceIP
	if usable(src) {
		o.Addrs = append(o.Addrs, src)
	}
	fragmented := binary.BigEndian.Uint16(p[6:8])&0x3fff != 0
	if p[9] != 17 || fragmented {
		return o, len(o.Addrs) > 0
	}
	return parseUDP(o, p[ihl:])
}

func parseIPv6(o Observation, p []byte) (Observation, bool) {
	if len(p) < 40 || p[0]>>4 != 6 {
		return o, false
	}
	plen := int(binary.BigEndian.Uint16(p[4:6]))
	next := p[6]
	src := netip.AddrFrom16([16]byte(p[8:24]))
	body := p[40:]
	if plen < len(body) {
		body = body[:plen]
	}
	o.Source = SourceIP
	if usable(src) {
		o.Addrs = append(o.Addrs, src)
	}
	switch next {
	case 58: // ICMPv6: 133-136 are router/neighbour solicitations and advertisements
		if len(body) >= 1 && body[0] >= 133 && body[0] <= 136 {
			o.Source = SourceNDP
			return o, true
		}
	case 17:
		return parseUDP(o, body)
	}
	return o, len(o.Addrs) > 0
}

func parseUDP(o Observation, p []byte) (Observation, bool) {
	if len(p) < 8 {
		return o, len(o.Addrs) > 0
	}
	sport, dport := binary.BigEndian.Uint16(p[0:2]), binary.BigEndian.Uint16(p[2:4])
	ulen := int(binary.BigEndian.Uint16(p[4:6]))
	body := p[8:]
	if ulen >= 8 && ulen-8 < len(body) {
		body = body[:ulen-8]
	}
	switch {
	case sport == 68 && dport == 67:
		return parseDHCP(o, body)
	case sport == 5353 || dport == 5353:
		return parseMDNS(o, body)
	}
	return o, len(o.Addrs) > 0
}

// parseDHCP reads a BOOTREQUEST: the client's hardware address (which must
// be the frame's source: a relay's frames are not the client), its
// current or requested address and the host name it sends (option 12).
func parseDHCP(o Observation, p []byte) (Observation, bool) {
	const fixed = 236
	if len(p) < fixed+4 || p[0] != 1 || p[1] != 1 || p[2] != 6 {
		return o, len(o.Addrs) > 0
	}
	if MAC(p[28:34]) != o.MAC {
		return o, len(o.Addrs) > 0
	}
	o.Source = SourceDHCP
	if ci := netip.AddrFrom4([4]byte(p[12:16])); usable(ci) {
		o.Addrs = appendAddr(o.Addrs, ci)
	}
	if binary.BigEndian.Uint32(p[fixed:fixed+4]) != 0x63825363 {
		return o, true
	}
	opts := p[fixed+4:]
	for len(opts) > 0 {
		code := opts[0]
		if code == 255 {
			break
		}
		if code == 0 {
			opts = opts[1:]
			continue
		}
		if len(opts) < 2 || len(opts) < 2+int(opts[1]) {
			break
		}
		v := opts[2 : 2+int(opts[1])]
		switch code {
		case 12:
			if h, ok := cleanHostname(string(v)); ok {
				o.Hostname = h
			}
		case 50:
			if len(v) == 4 {
				if ip := netip.AddrFrom4([4]byte(v)); usable(ip) {
					o.Addrs = appendAddr(o.Addrs, ip)
				}
			}
		}
		opts = opts[2+len(v):]
	}
	return o, true
}

// parseMDNS reads an mDNS response: the owner name of its A and AAAA
// records (NAME.local) becomes the host name, their addresses the
// device's. Name compression is followed only backwards (no loops).
func parseMDNS(o Observation, p []byte) (Observation, bool) {
	if len(p) < 12 || p[2]&0x80 == 0 { // not a response
		return o, len(o.Addrs) > 0
	}
	qd := int(binary.BigEndian.Uint16(p[4:6]))
	rrs := int(binary.BigEndian.Uint16(p[6:8])) + int(binary.BigEndian.Uint16(p[8:10])) + int(binary.BigEndian.Uint16(p[10:12]))
	off := 12
	for range min(qd, 64) {
		_, n, ok := dnsName(p, off)
		if !ok || n+4 > len(p) {
			return o, len(o.Addrs) > 0
		}
		off = n + 4
	}
	found := false
	for range min(rrs, 64) {
		name, n, ok := dnsName(p, off)
		if !ok || n+10 > len(p) {
			break
		}
		typ := binary.BigEndian.Uint16(p[n : n+2])
		rdlen := int(binary.BigEndian.Uint16(p[n+8 : n+10]))
		rd := n + 10
		if rd+rdlen > len(p) {
			break
		}
		var ip netip.Addr
		switch {
		case typ == 1 && rdlen == 4:
			ip = netip.AddrFrom4([4]byte(p[rd : rd+4]))
		case typ == 28 && rdlen == 16:
			ip = netip.AddrFrom16([16]byte(p[rd : rd+16]))
		}
		if ip.IsValid() {
			if h, ok := cleanHostname(strings.TrimSuffix(strings.ToLower(name), ".local")); ok && o.Hostname == "" {
				o.Hostname = h
			}
			if usable(ip) {
				o.Addrs = appendAddr(o.Addrs, ip)
			}
			found = true
		}
		off = rd + rdlen
	}
	if found {
		o.Source = SourceMDNS
	}
	return o, found || len(o.Addrs) > 0
}

// dnsName reads a (possibly compressed) name at off; next is the offset
// after it in the message.
func dnsName(p []byte, off int) (name string, next int, ok bool) {
	var labels []string
	next = -1
	pos := off
	for hops := 0; hops < 16; {
		if pos >= len(p) {
			return "", 0, false
		}
		l := int(p[pos])
		switch {
		case l == 0:
			if next < 0 {
				next = pos + 1
			}
			return strings.Join(labels, "."), next, true
		case l&0xc0 == 0xc0:
			if pos+1 >= len(p) {
				return "", 0, false
			}
			ptr := int(binary.BigEndian.Uint16(p[pos:pos+2]) & 0x3fff)
			if next < 0 {
				next = pos + 2
			}
			if ptr >= pos {
				return "", 0, false // only backwards: no loops
			}
			pos = ptr
			hops++
		case l&0xc0 != 0:
			return "", 0, false
		default:
			if pos+1+l > len(p) || len(labels) >= 16 {
				return "", 0, false
			}
			labels = append(labels, string(p[pos+1:pos+1+l]))
			pos += 1 + l
		}
	}
	return "", 0, false
}

// cleanHostname keeps a host name of letters, digits, '-', '_' and '.',
// at most 63 bytes; anything else is not taken.
func cleanHostname(s string) (string, bool) {
	s = strings.TrimRight(s, ".\x00")
	if s == "" || len(s) > maxHostname {
		return "", false
	}
	for _, c := range []byte(s) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			return "", false
		}
	}
	return strings.ToLower(s), true
}

// usable is an address that can name a device on the LAN: not
// unspecified, multicast, broadcast or loopback.
func usable(ip netip.Addr) bool {
	if !ip.IsValid() || ip.IsUnspecified() || ip.IsMulticast() || ip.IsLoopback() {
		return false
	}
	if ip.Is4() && ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return false
	}
	return true
}

func appendAddr(as []netip.Addr, ip netip.Addr) []netip.Addr {
	for _, a := range as {
		if a == ip {
			return as
		}
	}
	if len(as) >= maxAddrsPerFrame {
		return as
	}
	return append(as, ip)
}
