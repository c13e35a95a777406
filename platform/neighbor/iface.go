package neighbor

import (
	"encoding/binary"
	"net"
	"net/netip"
)

// Iface is a LAN interface of this node: up, not loopback, with an
// Ethernet address.
type Iface struct {
	Name     string
	Index    int
	MAC      MAC
	Prefixes []netip.Prefix // its directly attached subnets (address/bits)
}

// Interfaces lists this node's LAN interfaces (up, not loopback, with an
// Ethernet address) and their subnets.
func Interfaces() ([]Iface, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	var out []Iface
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 || len(ifc.HardwareAddr) != 6 {
			continue
		}
		i := Iface{Name: ifc.Name, Index: ifc.Index, MAC: MAC(ifc.HardwareAddr)}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if pn, ok := a.(*net.IPNet); ok {
				ip, ok := netip.AddrFromSlice(pn.IP)
				if !ok {
					continue
				}
				bits, _ := pn.Mask.Size()
				i.Prefixes = append(i.Prefixes, netip.PrefixFrom(ip.Unmap(), bits))
			}
		}
		out = append(out, i)
	}
	return out, nil
}

// ARPRequest builds the broadcast Ethernet frame of an ARP request from
// (srcMAC, srcIP) asking who has dst (both IPv4).
func ARPRequest(srcMAC MAC, srcIP, dst netip.Addr) []byte {
	b := make([]byte, 42)
	copy(b[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(b[6:12], srcMAC[:])
	binary.BigEndian.PutUint16(b[12:14], etherTypeARP)
	p := b[14:]
	binary.BigEndian.PutUint16(p[0:2], 1)
	binary.BigEndian.PutUint16(p[2:4], etherTypeIPv4)
	p[4], p[5] = 6, 4
	binary.BigEndian.PutUint16(p[6:8], 1) // request
	copy(p[8:14], srcMAC[:])
	s4, d4 := srcIP.As4(), dst.As4()
	copy(p[14:18], s4[:])
	// target hardware address stays zero
	copy(p[24:28], d4[:])
	return b
}

// ARPTarget returns the address an ARP request frame asks for; ok is
// false for any other frame. Tests use it to count a sweep's probes.
func ARPTarget(b []byte) (netip.Addr, bool) {
	if len(b) < 42 || binary.BigEndian.Uint16(b[12:14]) != etherTypeARP {
		return netip.Addr{}, false
	}
	p := b[14:]
	if binary.BigEndian.Uint16(p[6:8]) != 1 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4([4]byte(p[24:28])), true
}
