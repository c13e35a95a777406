package neighbor

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"
	"time"
)

var (
	devMAC = MAC{0x02, 0x11, 0x22, 0x33, 0x44, 0x55}
	bcast  = MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
)

func eth(dst, src MAC, typ uint16, payload []byte) []byte {
	b := append(append(append([]byte{}, dst[:]...), src[:]...), byte(typ>>8), byte(typ))
	return append(b, payload...)
}

func ipv4(src, dst netip.Addr, proto byte, payload []byte) []byte {
	h := make([]byte, 20)
	h[0] = 0x45
	binary.BigEndian.PutUint16(h[2:4], uint16(20+len(payload)))
	h[8], h[9] = 64, proto
	s, d := src.As4(), dst.As4()
	copy(h[12:16], s[:])
	copy(h[16:20], d[:])
	return append(h, payload...)
}

func ipv6(src, dst netip.Addr, next byte, payload []byte) []byte {
	h := make([]byte, 40)
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:6], uint16(len(payload)))
	h[6], h[7] = next, 255
	s, d := src.As16(), dst.As16()
	copy(h[8:24], s[:])
	copy(h[24:40], d[:])
	return append(h, payload...)
}

func udp(sport, dport uint16, payload []byte) []byte {
	h := make([]byte, 8)
	binary.BigEndian.PutUint16(h[0:2], sport)
	binary.BigEndian.PutUint16(h[2:4], dport)
	binary.BigEndian.PutUint16(h[4:6], uint16(8+len(payload)))
	return append(h, payload...)
}

// DHCPDiscover builds a client's DHCPDISCOVER with a host name.
func dhcpDiscover(mac MAC, hostname string, requested netip.Addr) []byte {
	b := make([]byte, 240)
	b[0], b[1], b[2] = 1, 1, 6
	copy(b[28:34], mac[:])
	binary.BigEndian.PutUint32(b[236:240], 0x63825363)
	b = append(b, 53, 1, 1)
	b = append(b, 12, byte(len(hostname)))
	b = append(b, hostname...)
	if requested.IsValid() {
		r := requested.As4()
		b = append(b, 50, 4, r[0], r[1], r[2], r[3])
	}
	return append(b, 255)
}

func dnsLabels(name string) []byte {
	var b []byte
	start := 0
	for i := 0; i <= len(name); i++ {
		if i == len(name) || name[i] == '.' {
			b = append(b, byte(i-start))
			b = append(b, name[start:i]...)
			start = i + 1
		}
	}
	return append(b, 0)
}

// mdnsAnnounce builds an unsolicited mDNS response with an A record.
func mdnsAnnounce(name string, ip netip.Addr) []byte {
	b := []byte{0, 0, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0}
	b = append(b, dnsLabels(name)...)
	a := ip.As4()
	b = append(b, 0, 1, 0x80, 1, 0, 0, 0, 120, 0, 4, a[0], a[1], a[2], a[3])
	return b
}

func TestParseFrame(t *testing.T) {
	dev := netip.MustParseAddr("10.200.1.50")
	agent := netip.MustParseAddr("10.200.1.10")
	ll := netip.MustParseAddr("fe80::11:22ff:fe33:4455")
	arp := ARPRequest(devMAC, dev, agent)
	tests := []struct {
		name  string
		frame []byte
		ok    bool
		want  Observation
	}{
		{"arp request", arp, true, Observation{MAC: devMAC, Addrs: []netip.Addr{dev}, Source: SourceARP}},
		{"arp probe from 0.0.0.0", ARPRequest(devMAC, netip.IPv4Unspecified(), dev), true, Observation{MAC: devMAC, Source: SourceARP}},
		{"arp sender mismatch", eth(bcast, devMAC, etherTypeARP, ARPRequest(MAC{2, 9, 9, 9, 9, 9}, dev, agent)[14:]), false, Observation{}},
		{"ping", eth(MAC{2, 1, 1, 1, 1, 1}, devMAC, etherTypeIPv4, ipv4(dev, agent, 1, []byte{8, 0, 0, 0})), true,
			Observation{MAC: devMAC, Addrs: []netip.Addr{dev}, Source: SourceIP}},
		{"dhcp discover", eth(bcast, devMAC, etherTypeIPv4, ipv4(netip.IPv4Unspecified(), netip.MustParseAddr("255.255.255.255"), 17,
			udp(68, 67, dhcpDiscover(devMAC, "Printer-3", dev)))), true,
			Observation{MAC: devMAC, Addrs: []netip.Addr{dev}, Hostname: "printer-3", Source: SourceDHCP}},
		{"dhcp relayed (chaddr is not the sender)", eth(bcast, devMAC, etherTypeIPv4, ipv4(netip.IPv4Unspecified(), netip.MustParseAddr("255.255.255.255"), 17,
			udp(68, 67, dhcpDiscover(MAC{2, 7, 7, 7, 7, 7}, "other", dev)))), false, Observation{}},
		{"mdns announcement", eth(MAC{1, 0, 0x5e, 0, 0, 0xfb}, devMAC, etherTypeIPv4, ipv4(dev, netip.MustParseAddr("224.0.0.251"), 17,
			udp(5353, 5353, mdnsAnnounce("camera.local", dev)))), true,
			Observation{MAC: devMAC, Addrs: []netip.Addr{dev}, Hostname: "camera", Source: SourceMDNS}},
		{"ndp neighbour solicitation", eth(MAC{0x33, 0x33, 0xff, 0, 0, 1}, devMAC, etherTypeIPv6, ipv6(ll, netip.MustParseAddr("ff02::1:ff00:1"), 58, []byte{135, 0, 0, 0})), true,
			Observation{MAC: devMAC, Addrs: []netip.Addr{ll}, Source: SourceNDP}},
		{"multicast source", eth(bcast, MAC{1, 2, 3, 4, 5, 6}, etherTypeIPv4, ipv4(dev, agent, 1, nil)), false, Observation{}},
		{"truncated", arp[:20], false, Observation{}},
		{"other ethertype", eth(bcast, devMAC, 0x88cc, make([]byte, 40)), false, Observation{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ParseFrame(tc.frame)
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v (%+v)", ok, tc.ok, got)
			}
			if !ok {
				return
			}
			if got.MAC != tc.want.MAC || got.Hostname != tc.want.Hostname || got.Source != tc.want.Source || !slices.Equal(got.Addrs, tc.want.Addrs) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestMDNSCompressionLoopRefused(t *testing.T) {
	b := []byte{0, 0, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0x80, 1, 0, 0, 0, 120, 0, 4, 10, 0, 0, 1}
	f := eth(bcast, devMAC, etherTypeIPv4, ipv4(netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("224.0.0.251"), 17, udp(5353, 5353, b)))
	o, ok := ParseFrame(f)
	if !ok || o.Hostname != "" || o.Source != SourceIP {
		t.Fatalf("self-pointing name: got %+v ok=%v, want the IP source alone", o, ok)
	}
}

func TestARPTarget(t *testing.T) {
	want := netip.MustParseAddr("192.168.7.9")
	got, ok := ARPTarget(ARPRequest(devMAC, netip.MustParseAddr("192.168.7.1"), want))
	if !ok || got != want {
		t.Fatalf("ARPTarget = %v %v, want %v", got, ok, want)
	}
}

func nlmsg(typ uint16, body []byte) []byte {
	b := make([]byte, nlmsgHdrLen)
	binary.NativeEndian.PutUint32(b[0:4], uint32(nlmsgHdrLen+len(body)))
	binary.NativeEndian.PutUint16(b[4:6], typ)
	b = append(b, body...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func rtattr(typ uint16, v []byte) []byte {
	b := make([]byte, 4)
	binary.NativeEndian.PutUint16(b[0:2], uint16(4+len(v)))
	binary.NativeEndian.PutUint16(b[2:4], typ)
	b = append(b, v...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func ndmsg(ifindex int, state uint16, ip netip.Addr, mac []byte) []byte {
	b := make([]byte, ndmsgLen)
	binary.NativeEndian.PutUint32(b[4:8], uint32(ifindex))
	binary.NativeEndian.PutUint16(b[8:10], state)
	b = append(b, rtattr(ndaDst, ip.AsSlice())...)
	if mac != nil {
		b = append(b, rtattr(ndaLLAddr, mac)...)
	}
	ci := make([]byte, 16)
	binary.NativeEndian.PutUint32(ci[0:4], 1500) // confirmed 15 s ago
	binary.NativeEndian.PutUint32(ci[8:12], 3000)
	return append(b, rtattr(ndaCacheInfo, ci)...)
}

func TestParseNeighbors(t *testing.T) {
	ip4, ip6 := netip.MustParseAddr("10.200.1.50"), netip.MustParseAddr("fe80::1")
	buf := append(nlmsg(rtmNewNeigh, ndmsg(3, 0x02, ip4, devMAC[:])), nlmsg(rtmNewNeigh, ndmsg(3, 0x04, ip6, devMAC[:]))...)
	buf = append(buf, nlmsg(rtmNewNeigh, ndmsg(3, nudFailed, netip.MustParseAddr("10.200.1.51"), devMAC[:]))...)
	buf = append(buf, nlmsg(rtmNewNeigh, ndmsg(3, nudIncomplet, netip.MustParseAddr("10.200.1.52"), nil))...)
	buf = append(buf, nlmsg(rtmNewNeigh, ndmsg(3, 0x02, netip.MustParseAddr("10.200.1.53"), []byte{1, 2, 3}))...)
	buf = append(buf, nlmsg(nlmsgDone, make([]byte, 4))...)
	obs, done, err := ParseNeighbors(buf)
	if err != nil || !done {
		t.Fatalf("done=%v err=%v", done, err)
	}
	if len(obs) != 2 || obs[0].Addrs[0] != ip4 || obs[1].Addrs[0] != ip6 || obs[0].MAC != devMAC || obs[0].Ifindex != 3 || obs[0].Age != 15*time.Second {
		t.Fatalf("got %+v, want the reachable IPv4 and stale IPv6 entries", obs)
	}
	if _, _, err := ParseNeighbors(buf[:7+nlmsgHdrLen]); err == nil {
		t.Fatal("a truncated message was accepted")
	}
}
