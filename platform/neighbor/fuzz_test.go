package neighbor

import (
	"net/netip"
	"testing"
)

// FuzzParseFrame: captured frames are untrusted; the parser must not
// panic, and what it returns must be well formed.
func FuzzParseFrame(f *testing.F) {
	dev := netip.MustParseAddr("10.200.1.50")
	f.Add(ARPRequest(devMAC, dev, netip.MustParseAddr("10.200.1.10")))
	f.Add(eth(bcast, devMAC, etherTypeIPv4, ipv4(netip.IPv4Unspecified(), netip.MustParseAddr("255.255.255.255"), 17, udp(68, 67, dhcpDiscover(devMAC, "printer", dev)))))
	f.Add(eth(bcast, devMAC, etherTypeIPv4, ipv4(dev, netip.MustParseAddr("224.0.0.251"), 17, udp(5353, 5353, mdnsAnnounce("camera.local", dev)))))
	f.Add(eth(bcast, devMAC, etherTypeIPv6, ipv6(netip.MustParseAddr("fe80::1"), netip.MustParseAddr("ff02::1"), 58, []byte{136, 0, 0, 0})))
	f.Fuzz(func(t *testing.T, b []byte) {
		o, ok := ParseFrame(b)
		if !ok {
			return
		}
		if !o.MAC.Unicast() || len(o.Addrs) > maxAddrsPerFrame || len(o.Hostname) > maxHostname {
			t.Fatalf("bad observation %+v", o)
		}
		for _, a := range o.Addrs {
			if !usable(a) {
				t.Fatalf("unusable address %s", a)
			}
		}
	})
}

// FuzzParseNeighbors: netlink answers are parsed defensively too.
func FuzzParseNeighbors(f *testing.F) {
	f.Add(append(nlmsg(rtmNewNeigh, ndmsg(3, 0x02, netip.MustParseAddr("10.0.0.2"), devMAC[:])), nlmsg(nlmsgDone, make([]byte, 4))...))
	f.Add(nlmsg(nlmsgError, []byte{0xf3, 0xff, 0xff, 0xff}))
	f.Fuzz(func(t *testing.T, b []byte) {
		obs, _, _ := ParseNeighbors(b)
		for _, o := range obs {
			if !o.MAC.Unicast() || len(o.Addrs) != 1 {
				t.Fatalf("bad observation %+v", o)
			}
		}
	})
}
