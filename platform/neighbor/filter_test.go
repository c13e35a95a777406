package neighbor

import (
	"net/netip"
	"testing"

	"golang.org/x/net/bpf"
)

// TestFrameFilter runs the socket filter's program in x/net/bpf's VM on
// the frames Listen must see and on the ones it must not be woken for.
func TestFrameFilter(t *testing.T) {
	vm, err := bpf.NewVM(frameFilter())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := listenFilter(); err != nil {
		t.Fatal(err)
	}
	dev := netip.MustParseAddr("10.200.1.50")
	agent := netip.MustParseAddr("10.200.1.10")
	agentMAC := MAC{2, 1, 1, 1, 1, 1}
	ll := netip.MustParseAddr("fe80::11:22ff:fe33:4455")
	agentLL := netip.MustParseAddr("fe80::1:1ff:fe01:101")
	tests := []struct {
		name  string
		frame []byte
		pass  bool
	}{
		{"arp request (broadcast)", ARPRequest(devMAC, dev, agent), true},
		{"arp reply (unicast)", eth(agentMAC, devMAC, etherTypeARP, ARPRequest(devMAC, dev, agent)[14:]), true},
		{"dhcp discover (broadcast)", eth(bcast, devMAC, etherTypeIPv4, ipv4(netip.IPv4Unspecified(), netip.MustParseAddr("255.255.255.255"), 17,
			udp(68, 67, dhcpDiscover(devMAC, "printer-3", dev)))), true},
		{"mdns (multicast)", eth(MAC{1, 0, 0x5e, 0, 0, 0xfb}, devMAC, etherTypeIPv4, ipv4(dev, netip.MustParseAddr("224.0.0.251"), 17,
			udp(5353, 5353, mdnsAnnounce("camera.local", dev)))), true},
		{"ndp solicitation (multicast)", eth(MAC{0x33, 0x33, 0xff, 0, 0, 1}, devMAC, etherTypeIPv6, ipv6(ll, netip.MustParseAddr("ff02::1:ff00:1"), 58, []byte{135, 0, 0, 0})), true},
		{"ndp advertisement (unicast)", eth(agentMAC, devMAC, etherTypeIPv6, ipv6(ll, agentLL, 58, []byte{136, 0, 0, 0})), true},
		{"ndp router solicitation (unicast)", eth(agentMAC, devMAC, etherTypeIPv6, ipv6(ll, agentLL, 58, []byte{133, 0, 0, 0})), true},
		{"ping (unicast)", eth(agentMAC, devMAC, etherTypeIPv4, ipv4(dev, agent, 1, []byte{8, 0, 0, 0})), false},
		{"gossip (unicast udp)", eth(agentMAC, devMAC, etherTypeIPv4, ipv4(dev, agent, 17, udp(7946, 7946, make([]byte, 100)))), false},
		{"icmpv6 echo (unicast)", eth(agentMAC, devMAC, etherTypeIPv6, ipv6(ll, agentLL, 58, []byte{128, 0, 0, 0})), false},
		{"icmpv6 redirect (unicast, type 137)", eth(agentMAC, devMAC, etherTypeIPv6, ipv6(ll, agentLL, 58, []byte{137, 0, 0, 0})), false},
		{"ipv6 udp (unicast)", eth(agentMAC, devMAC, etherTypeIPv6, ipv6(ll, agentLL, 17, udp(1, 2, nil))), false},
		{"runt", []byte{1, 2, 3}, false},
	}
	for _, tc := range tests {
		n, err := vm.Run(tc.frame)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := n > 0; got != tc.pass {
			t.Errorf("%s: filter passes %d bytes, want pass=%v", tc.name, n, tc.pass)
		}
		if tc.pass && n < len(tc.frame) {
			t.Errorf("%s: filter cuts the frame to %d of %d bytes", tc.name, n, len(tc.frame))
		}
	}
}
