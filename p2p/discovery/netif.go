package discovery

import (
	"net"
	"net/netip"
	"slices"
)

// iface is what discovery needs of a network interface.
type iface struct {
	Name      string
	Up        bool
	Broadcast bool // the interface supports broadcast
	Prefixes  []netip.Prefix
}

// systemInterfaces lists the host's interfaces with their addresses.
func systemInterfaces() ([]iface, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	out := make([]iface, 0, len(ifs))
	for _, ni := range ifs {
		addrs, err := ni.Addrs()
		if err != nil {
			continue // the interface went away meanwhile
		}
		it := iface{Name: ni.Name, Up: ni.Flags&net.FlagUp != 0, Broadcast: ni.Flags&net.FlagBroadcast != 0}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(ipn.IP)
			if !ok {
				continue
			}
			ones, bits := ipn.Mask.Size()
			ip = ip.Unmap()
			if ip.Is4() && bits == 128 {
				ones -= 96
			}
			if bits == 0 || ones < 0 || ones > ip.BitLen() {
				continue // not a canonical mask
			}
			it.Prefixes = append(it.Prefixes, netip.PrefixFrom(ip, ones))
		}
		out = append(out, it)
	}
	return out, nil
}

// target is one destination of the beacon and the gossip IP to announce
// there (invalid: let receivers use the source address).
type target struct {
	Dest     netip.Addr
	Announce netip.Addr
}

// scope is what the beacon derives from the interfaces each round: where to
// send and which source addresses count as the site's subnet.
type scope struct {
	Targets []target
	Local   []netip.Prefix // the site's subnets: datagrams from elsewhere are dropped
}

// broadcastAddr is the directed broadcast address of an IPv4 prefix, if it
// has one (not /31 or /32).
func broadcastAddr(p netip.Prefix) (netip.Addr, bool) {
	if !p.Addr().Is4() || p.Bits() > 30 || p.Bits() < 0 {
		return netip.Addr{}, false
	}
	a := p.Addr().As4()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v |= ^uint32(0) >> p.Bits()
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

// computeScope picks the interfaces of the site: the one holding the
// announced gossip IP (or whose subnet contains it), or every interface that
// is up when that IP is unspecified or on none of them. It sends to the directed broadcast address of
// each of their IPv4 subnets (or to explicit destinations), announcing the
// gossip IP if it is specific, else the interface's own address in that
// subnet.
func computeScope(ifs []iface, gossipIP netip.Addr, explicit []netip.Addr) scope {
	gossipIP = gossipIP.Unmap()
	specific := gossipIP.IsValid() && !gossipIP.IsUnspecified()
	var chosen []iface
	if specific {
		// The interface holding the IP, else one whose subnet contains it
		// (127.0.0.2 is on lo's 127.0.0.1/8).
		for _, match := range []func(netip.Prefix) bool{
			func(p netip.Prefix) bool { return p.Addr() == gossipIP },
			func(p netip.Prefix) bool { return p.Masked().Contains(gossipIP) },
		} {
			for _, it := range ifs {
				if slices.ContainsFunc(it.Prefixes, match) {
					chosen = append(chosen, it)
				}
			}
			if len(chosen) > 0 {
				break
			}
		}
	}
	if len(chosen) == 0 {
		for _, it := range ifs {
			if it.Up {
				chosen = append(chosen, it)
			}
		}
	}
	var sc scope
	for _, it := range chosen {
		sc.Local = append(sc.Local, it.Prefixes...)
	}
	announce := func(own netip.Addr) netip.Addr {
		if specific {
			return gossipIP
		}
		return own
	}
	if len(explicit) > 0 {
		for _, d := range explicit {
			t := target{Dest: d.Unmap()}
			if specific {
				t.Announce = gossipIP
			} else {
				for _, p := range sc.Local {
					if p.Masked().Contains(t.Dest) {
						t.Announce = p.Addr()
						break
					}
				}
			}
			sc.Targets = append(sc.Targets, t)
		}
		return sc
	}
	seen := map[netip.Addr]bool{}
	for _, it := range chosen {
		if !it.Up || !it.Broadcast {
			continue
		}
		for _, p := range it.Prefixes {
			b, ok := broadcastAddr(p)
			if !ok || seen[b] {
				continue
			}
			seen[b] = true
			sc.Targets = append(sc.Targets, target{Dest: b, Announce: announce(p.Addr())})
		}
	}
	return sc
}

// candidate is the gossip address to offer for a beacon from src that
// announced ann, given the site's subnets. The source must be on one of
// them; an announced IP must be the source itself or on the source's
// subnet; without one, the source's IP is used with the announced port.
func candidate(src netip.Addr, ann netip.AddrPort, local []netip.Prefix) (netip.AddrPort, bool) {
	src = src.Unmap()
	var home netip.Prefix
	for _, p := range local {
		if p.Masked().Contains(src) {
			home = p.Masked()
			break
		}
	}
	if !home.IsValid() || ann.Port() == 0 {
		return netip.AddrPort{}, false
	}
	ip := ann.Addr().Unmap()
	switch {
	case !ip.IsValid() || ip.IsUnspecified():
		ip = src
	case ip != src && !home.Contains(ip):
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(ip, ann.Port()), true
}
