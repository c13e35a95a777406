package neighbor

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"

	"golang.org/x/sys/unix"
)

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// mdnsGroups are the link-layer multicast addresses of mDNS (224.0.0.251
// and ff02::fb), which the interface is asked to pass up: a receive
// filter on this host, nothing is sent.
var mdnsGroups = [][]byte{{0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb}, {0x33, 0x33, 0x00, 0x00, 0x00, 0xfb}}

// Listen receives the frames ifc receives anyway (no promiscuous mode;
// the mDNS multicast groups are added to its receive filter) on a packet
// socket bound to it, and calls fn with each frame's observation until
// ctx ends. It sends nothing. A socket filter in the kernel (listenFilter)
// passes only what a neighbour announces: ARP, frames sent to a broadcast
// or multicast address (DHCP, mDNS, NDP solicitations) and neighbour
// discovery sent to this node; the unicast traffic of a busy node (its
// own downloads, gossip) never wakes the listener, and a neighbour that
// talks only to this node is in the kernel's neighbour table (Neighbors).
// The socket waits in Go's poller, so an idle LAN costs no wakeups. It
// needs CAP_NET_RAW.
func Listen(ctx context.Context, ifc Iface, fn func(Observation)) error {
	// Protocol 0 receives nothing until the filter is attached and the
	// socket bound, so no unfiltered frame is queued in between.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("listen on %s: packet socket: %w", ifc.Name, err)
	}
	f := os.NewFile(uintptr(fd), "packet:"+ifc.Name) // owns fd from here
	defer f.Close()
	prog, err := listenFilter()
	if err != nil {
		return fmt.Errorf("listen on %s: %w", ifc.Name, err)
	}
	sf := make([]unix.SockFilter, len(prog))
	for i, ins := range prog {
		sf[i] = unix.SockFilter{Code: ins.Op, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
	}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: uint16(len(sf)), Filter: &sf[0]}); err != nil {
		return fmt.Errorf("listen on %s: attach the socket filter: %w", ifc.Name, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifc.Index}); err != nil {
		return fmt.Errorf("listen on %s: bind: %w", ifc.Name, err)
	}
	for _, g := range mdnsGroups {
		mr := unix.PacketMreq{Ifindex: int32(ifc.Index), Type: unix.PACKET_MR_MULTICAST, Alen: 6}
		copy(mr.Address[:], g)
		if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mr); err != nil {
			return fmt.Errorf("listen on %s: mdns group: %w", ifc.Name, err)
		}
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("listen on %s: %w", ifc.Name, err)
	}
	stop := context.AfterFunc(ctx, func() { f.Close() }) // wakes the read below
	defer stop()
	buf := make([]byte, 2048)
	for {
		var n int
		var from unix.Sockaddr
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			n, from, rerr = unix.Recvfrom(int(fd), buf, 0)
			return !errors.Is(rerr, unix.EAGAIN)
		})
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			err = rerr
		}
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return fmt.Errorf("listen on %s: %w", ifc.Name, err)
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue // the filter drops these already
		}
		if o, ok := ParseFrame(buf[:n]); ok && o.MAC != ifc.MAC {
			o.Ifindex = ifc.Index
			fn(o)
		}
	}
}

// Prober sends ARP requests on one interface: the active sweep's probes.
type Prober struct {
	fd  int
	ifc Iface
	src netip.Addr
}

// NewProber opens a packet socket on ifc to send ARP requests from src
// (one of ifc's IPv4 addresses). It needs CAP_NET_RAW.
func NewProber(ifc Iface, src netip.Addr) (*Prober, error) {
	if !src.Is4() {
		return nil, fmt.Errorf("arp prober on %s: %s is not an IPv4 address", ifc.Name, src)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0) // protocol 0: send only
	if err != nil {
		return nil, fmt.Errorf("arp prober on %s: packet socket: %w", ifc.Name, err)
	}
	return &Prober{fd: fd, ifc: ifc, src: src}, nil
}

// Probe sends one ARP request for dst, which must be inside one of the
// interface's IPv4 subnets (never beyond the local link).
func (p *Prober) Probe(dst netip.Addr) error {
	in := false
	for _, pf := range p.ifc.Prefixes {
		if pf.Addr().Is4() && pf.Masked().Contains(dst) {
			in = true
		}
	}
	if !in || !dst.Is4() {
		return fmt.Errorf("arp probe for %s: not in a subnet of %s", dst, p.ifc.Name)
	}
	to := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: p.ifc.Index, Halen: 6}
	copy(to.Addr[:], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	if err := unix.Sendto(p.fd, ARPRequest(p.ifc.MAC, p.src, dst), 0, to); err != nil {
		return fmt.Errorf("arp probe for %s on %s: %w", dst, p.ifc.Name, err)
	}
	return nil
}

// Close closes the prober's socket.
func (p *Prober) Close() error { return unix.Close(p.fd) }
