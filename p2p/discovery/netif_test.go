package discovery

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
)

func TestBroadcastAddr(t *testing.T) {
	for _, tc := range []struct {
		prefix, want string // want "" means none
	}{
		{"10.1.0.5/24", "10.1.0.255"},
		{"10.200.1.10/24", "10.200.1.255"},
		{"172.16.5.9/12", "172.31.255.255"},
		{"192.168.1.1/30", "192.168.1.3"},
		{"0.0.0.0/0", "255.255.255.255"},
		{"192.168.1.1/31", ""},
		{"192.168.1.1/32", ""},
		{"fd00::1/64", ""},
	} {
		t.Run(tc.prefix, func(t *testing.T) {
			got, ok := broadcastAddr(netip.MustParsePrefix(tc.prefix))
			if tc.want == "" {
				if ok {
					t.Fatalf("broadcast %s, want none", got)
				}
				return
			}
			if !ok || got != netip.MustParseAddr(tc.want) {
				t.Fatalf("broadcast %s (%v), want %s", got, ok, tc.want)
			}
		})
	}
}

func TestComputeScope(t *testing.T) {
	p := netip.MustParsePrefix
	a := netip.MustParseAddr
	ifs := []iface{
		{Name: "lo", Up: true, Prefixes: []netip.Prefix{p("127.0.0.1/8"), p("::1/128")}},
		{Name: "eth0", Up: true, Broadcast: true, Prefixes: []netip.Prefix{p("10.1.0.5/24"), p("10.2.0.5/16"), p("fd00::5/64")}},
		{Name: "wg0", Up: true, Prefixes: []netip.Prefix{p("10.9.0.1/24")}}, // no broadcast
		{Name: "eth1", Up: true, Broadcast: true, Prefixes: []netip.Prefix{p("192.168.7.5/24"), p("192.168.8.1/32")}},
		{Name: "eth2", Up: false, Broadcast: true, Prefixes: []netip.Prefix{p("172.16.0.5/24")}},
	}
	for _, tc := range []struct {
		name     string
		gossip   string
		explicit []netip.Addr
		targets  []target
		local    []string
	}{
		{
			name:   "gossip on eth0: its subnets only, announcing the gossip IP",
			gossip: "10.1.0.5",
			targets: []target{
				{a("10.1.0.255"), a("10.1.0.5")},
				{a("10.2.255.255"), a("10.1.0.5")},
			},
			local: []string{"10.1.0.5/24", "10.2.0.5/16", "fd00::5/64"},
		},
		{
			name:   "unspecified: every broadcast interface that is up, announcing its own address",
			gossip: "0.0.0.0",
			targets: []target{
				{a("10.1.0.255"), a("10.1.0.5")},
				{a("10.2.255.255"), a("10.2.0.5")},
				{a("192.168.7.255"), a("192.168.7.5")},
			},
			local: []string{"127.0.0.1/8", "::1/128", "10.1.0.5/24", "10.2.0.5/16", "fd00::5/64", "10.9.0.1/24", "192.168.7.5/24", "192.168.8.1/32"},
		},
		{
			name:   "gossip on loopback: nowhere to broadcast",
			gossip: "127.0.0.1",
			local:  []string{"127.0.0.1/8", "::1/128"},
		},
		{
			name:   "gossip on another loopback address: lo only, nowhere to broadcast",
			gossip: "127.0.0.2",
			local:  []string{"127.0.0.1/8", "::1/128"},
		},
		{
			name:   "gossip IP on no interface (NAT): every interface",
			gossip: "203.0.113.9",
			targets: []target{
				{a("10.1.0.255"), a("203.0.113.9")},
				{a("10.2.255.255"), a("203.0.113.9")},
				{a("192.168.7.255"), a("203.0.113.9")},
			},
			local: []string{"127.0.0.1/8", "::1/128", "10.1.0.5/24", "10.2.0.5/16", "fd00::5/64", "10.9.0.1/24", "192.168.7.5/24", "192.168.8.1/32"},
		},
		{
			name:     "explicit targets, gossip IP unspecified: the address on the target's subnet",
			gossip:   "0.0.0.0",
			explicit: []netip.Addr{a("192.168.7.255"), a("10.50.0.1")},
			targets:  []target{{a("192.168.7.255"), a("192.168.7.5")}, {Dest: a("10.50.0.1")}},
			local:    []string{"127.0.0.1/8", "::1/128", "10.1.0.5/24", "10.2.0.5/16", "fd00::5/64", "10.9.0.1/24", "192.168.7.5/24", "192.168.8.1/32"},
		},
		{
			name:     "explicit targets, specific gossip IP",
			gossip:   "10.1.0.5",
			explicit: []netip.Addr{a("10.1.0.255")},
			targets:  []target{{a("10.1.0.255"), a("10.1.0.5")}},
			local:    []string{"10.1.0.5/24", "10.2.0.5/16", "fd00::5/64"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc := computeScope(ifs, a(tc.gossip), tc.explicit)
			if !slices.Equal(sc.Targets, tc.targets) {
				t.Errorf("targets %v, want %v", sc.Targets, tc.targets)
			}
			var local []string
			for _, p := range sc.Local {
				local = append(local, p.String())
			}
			if !slices.Equal(local, tc.local) {
				t.Errorf("local %v, want %v", local, tc.local)
			}
		})
	}
}

func TestCandidate(t *testing.T) {
	local := []netip.Prefix{netip.MustParsePrefix("10.1.0.5/24"), netip.MustParsePrefix("fd00::5/64")}
	for _, tc := range []struct {
		src, ann, want string // want "" means dropped
	}{
		{"10.1.0.7", "10.1.0.7:7946", "10.1.0.7:7946"},
		{"10.1.0.7", ":7946", "10.1.0.7:7946"},
		{"10.1.0.7", "10.1.0.8:9000", "10.1.0.8:9000"},
		{"::ffff:10.1.0.7", ":7946", "10.1.0.7:7946"},
		{"fd00::7", ":7946", "[fd00::7]:7946"},
		{"10.1.0.7", "10.1.1.8:7946", ""},
		{"10.1.0.7", "127.0.0.1:7946", ""},
		{"10.2.0.7", "10.2.0.7:7946", ""},
		{"10.1.0.7", ":0", ""},
	} {
		t.Run(fmt.Sprintf("%s announcing %s", tc.src, tc.ann), func(t *testing.T) {
			var ann netip.AddrPort
			if h, ok := cutPort(tc.ann); ok {
				ann = netip.AddrPortFrom(netip.Addr{}, h)
			} else {
				ann = netip.MustParseAddrPort(tc.ann)
			}
			got, ok := candidate(netip.MustParseAddr(tc.src), ann, local)
			switch {
			case tc.want == "" && ok:
				t.Fatalf("offered %s, want dropped", got)
			case tc.want != "" && (!ok || got.String() != tc.want):
				t.Fatalf("candidate %s (%v), want %s", got, ok, tc.want)
			}
		})
	}
}

// cutPort parses ":port" (no IP).
func cutPort(s string) (uint16, bool) {
	var p uint16
	if _, err := fmt.Sscanf(s, ":%d", &p); err != nil || s[0] != ':' {
		return 0, false
	}
	return p, true
}

func TestSystemInterfacesHaveLoopback(t *testing.T) {
	ifs, err := systemInterfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range ifs {
		if slices.Contains(it.Prefixes, netip.MustParsePrefix("127.0.0.1/8")) {
			return
		}
	}
	t.Fatalf("no interface with 127.0.0.1/8 in %+v", ifs)
}
