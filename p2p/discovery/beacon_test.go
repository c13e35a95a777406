package discovery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patchring/patchring/internal/testutil"
)

// sink records the candidates a beacon offers.
type sink struct {
	mu    sync.Mutex
	addrs []string
}

var _ Sink = (*sink)(nil)

func (s *sink) AddSeeds(addrs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addrs = append(s.addrs, addrs...)
}

func (s *sink) got() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.addrs)
}

// clock is a settable wall clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// freeUDPPort returns a UDP port that was free on 127.0.0.1 a moment ago.
func freeUDPPort(t testing.TB) int {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// siteIfaces is a host on the site LAN 10.1.0.0/24 (address .5), with
// loopback and a second, unrelated network.
func siteIfaces() ([]iface, error) {
	return []iface{
		{Name: "lo", Up: true, Prefixes: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8")}},
		{Name: "eth0", Up: true, Broadcast: true, Prefixes: []netip.Prefix{netip.MustParsePrefix("10.1.0.5/24")}},
		{Name: "eth1", Up: true, Broadcast: true, Prefixes: []netip.Prefix{netip.MustParsePrefix("192.168.7.5/24")}},
	}, nil
}

// newTestBeacon makes a beacon on 127.0.0.1 (not run) that believes it is
// 10.1.0.5 on the site LAN, with a fake clock and a recording sink.
func newTestBeacon(t testing.TB, keys ...[]byte) (*Beacon, *sink, *clock) {
	t.Helper()
	s, c := &sink{}, &clock{now: testTime}
	if len(keys) == 0 {
		keys = [][]byte{testKey}
	}
	b, err := New(Config{
		NodeID: "self", Label: testLabel, Keys: func() [][]byte { return keys },
		Gossip: netip.MustParseAddrPort("10.1.0.5:7946"), Port: freeUDPPort(t), ListenAddr: netip.MustParseAddr("127.0.0.1"),
		Sink: s, Now: c.Now, interfaces: siteIfaces,
	}, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b, s, c
}

func beaconFrom(t testing.TB, id string, at time.Time, gossip string, key []byte, label string) []byte {
	t.Helper()
	var ap netip.AddrPort
	if g, err := netip.ParseAddrPort(gossip); err == nil {
		ap = g
	} else {
		ap = netip.AddrPortFrom(netip.Addr{}, 7946) // "use my source address"
	}
	return mustSeal(t, announcement{NodeID: id, Time: at, Gossip: ap}, deriveKey(key, label))
}

// TestReceive: what a beacon accepts and offers, and what it drops and
// counts, one datagram at a time.
func TestReceive(t *testing.T) {
	peer := netip.MustParseAddr("10.1.0.7")
	type dgram struct {
		b   []byte
		src netip.Addr
	}
	for _, tc := range []struct {
		name  string
		keys  [][]byte // the receiver's keyring (default: testKey)
		dgram func(t testing.TB, now time.Time) []dgram
		want  []string // offered candidates
		stats Stats
	}{
		{"valid", nil, func(t testing.TB, now time.Time) []dgram {
			return []dgram{{beaconFrom(t, "peer", now, "10.1.0.7:7946", testKey, testLabel), peer}}
		}, []string{"10.1.0.7:7946"}, Stats{Accepted: 1}},
		{"no announced ip: the source's", nil, func(t testing.TB, now time.Time) []dgram {
			return []dgram{{beaconFrom(t, "peer", now, "", testKey, testLabel), peer}}
		}, []string{"10.1.0.7:7946"}, Stats{Accepted: 1}},
		{"announced ip on the source's subnet", nil, func(t testing.TB, now time.Time) []dgram {
			return []dgram{{beaconFrom(t, "peer", now, "10.1.0.99:8000", testKey, testLabel), peer}}
		}, []string{"10.1.0.99:8000"}, Stats{Accepted: 1}},
		{"under an installed, non-primary key (rotation)", [][]byte{otherKey, testKey}, func(t testing.TB, now time.Time) []dgram {
			return []dgram{{beaconFrom(t, "peer", now, "10.1.0.7:7946", testKey, testLabel), peer}}
		}, []string{"10.1.0.7:7946"}, Stats{Accepted: 1}},
		{"newer beacons of one sender", nil, func(t testing.TB, now time.Time) []dgram {
			return []dgram{
				{beaconFrom(t, "peer", now.Add(-time.Second), "10.1.0.7:7946", testKey, testLabel), peer},
				{beaconFrom(t, "peer", now, "10.1.0.7:7946", testKey, testLabel), peer},
			}
		}, []string{"10.1.0.7:7946", "10.1.0.7:7946"}, Stats{Accepted: 2}},
		{"own beacon", nil, func(t testing.TB, now time.Time) []dgram {
			return []dgram{{beaconFrom(t, "self", now, "10.1.0.5:7946", testKey, testLabel), netip.MustParseAddr("10.1.0.5")}}
		}, nil, Stats{Own: 1}},
		{"another fleet key", nil, func(t testing.TB, now time.Time) []dgram {
			return []dgram{{beaconFrom(t, "peer", now, "10.1.0.7:7946", otherKey, testLabel), peer}}
		}, nil, Stats{BadAuth: 1}},
		{"another label", nil, func(t testing.TB, now time.Time) []dgram {
			return []dgram{{beaconFrom(t, "peer", now, "10.1.0.7:7946", testKey, "other-fleet"), peer}}
		}, nil, Stats{BadAuth: 1}},
		{"stale", nil, func(t testing.TB, now time.Time) []dgram {
			return []dgram{{beaconFrom(t, "peer", now.Add(-61*time.Second), "10.1.0.7:7946", testKey, testLabel), peer}}
		}, nil, Stats{Stale: 1}},
		{"from the future", nil, func(t testing.TB, now time.Time) []dgram {
			return []dgram{{beaconFrom(t, "peer", now.Add(61*time.Second), "10.1.0.7:7946", testKey, testLabel), peer}}
		}, nil, Stats{Stale: 1}},
		{"replayed", nil, func(t testing.TB, now time.Time) []dgram {
			b := beaconFrom(t, "peer", now, "10.1.0.7:7946", testKey, testLabel)
			return []dgram{{b, peer}, {b, peer}, {b, netip.MustParseAddr("10.1.0.66")}}
		}, []string{"10.1.0.7:7946"}, Stats{Accepted: 1, Replayed: 2}},
		{"older than the sender's last", nil, func(t testing.TB, now time.Time) []dgram {
			return []dgram{
				{beaconFrom(t, "peer", now, "10.1.0.7:7946", testKey, testLabel), peer},
				{beaconFrom(t, "peer", now.Add(-time.Second), "10.1.0.8:7946", testKey, testLabel), peer},
			}
		}, []string{"10.1.0.7:7946"}, Stats{Accepted: 1, Replayed: 1}},
		{"source outside the site's subnet", nil, func(t testing.TB, now time.Time) []dgram {
			return []dgram{
				{beaconFrom(t, "peer", now, "", testKey, testLabel), netip.MustParseAddr("10.9.0.7")},
				// eth1 is a network of this host, but not the gossip interface's.
				{beaconFrom(t, "peer", now, "192.168.7.9:7946", testKey, testLabel), netip.MustParseAddr("192.168.7.9")},
			}
		}, nil, Stats{Foreign: 2}},
		{"announcing an address off the source's subnet", nil, func(t testing.TB, now time.Time) []dgram {
			return []dgram{{beaconFrom(t, "peer", now, "10.9.0.7:7946", testKey, testLabel), peer}}
		}, nil, Stats{Foreign: 1}},
		{"oversized", nil, func(t testing.TB, now time.Time) []dgram {
			return []dgram{{make([]byte, MaxDatagram+1), peer}}
		}, nil, Stats{Oversized: 1}},
		{"not a beacon", nil, func(t testing.TB, now time.Time) []dgram {
			return []dgram{{[]byte("M-SEARCH * HTTP/1.1\r\n\r\n........................................"), peer}}
		}, nil, Stats{Malformed: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, s, c := newTestBeacon(t, tc.keys...)
			for _, d := range tc.dgram(t, c.Now()) {
				b.receive(d.b, d.src)
			}
			if got := s.got(); !slices.Equal(got, tc.want) {
				t.Errorf("offered %q, want %q", got, tc.want)
			}
			if got := b.Stats(); got != tc.stats {
				t.Errorf("stats %+v, want %+v", got, tc.stats)
			}
		})
	}
}

// TestReceiveBoundsSenders: at most maxSenders node IDs are tracked; a new
// one beyond that is refused until the oldest are past MaxAge.
func TestReceiveBoundsSenders(t *testing.T) {
	b, s, c := newTestBeacon(t)
	peer := netip.MustParseAddr("10.1.0.7")
	for i := range maxSenders {
		b.receive(beaconFrom(t, fmt.Sprintf("peer-%d", i), c.Now(), "", testKey, testLabel), peer)
	}
	b.receive(beaconFrom(t, "one-too-many", c.Now(), "", testKey, testLabel), peer)
	if st := b.Stats(); st.Accepted != maxSenders || st.Rejected != 1 {
		t.Fatalf("stats %+v, want %d accepted and 1 rejected", st, maxSenders)
	}
	c.Advance(b.cfg.MaxAge + time.Second)
	b.receive(beaconFrom(t, "one-too-many", c.Now(), "", testKey, testLabel), peer)
	if st := b.Stats(); st.Accepted != maxSenders+1 {
		t.Fatalf("after MaxAge: stats %+v, want the newcomer accepted", st)
	}
	if n := len(b.last); n != 1 {
		t.Errorf("tracking %d senders after pruning, want 1", n)
	}
	if n := len(s.got()); n != maxSenders+1 {
		t.Errorf("offered %d candidates", n)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	good := func() Config {
		return Config{NodeID: "self", Label: testLabel, Keys: func() [][]byte { return [][]byte{testKey} },
			Gossip: netip.MustParseAddrPort("10.1.0.5:7946"), Sink: &sink{}}
	}
	for _, tc := range []struct {
		name string
		edit func(*Config)
	}{
		{"no node id", func(c *Config) { c.NodeID = "" }},
		{"no label", func(c *Config) { c.Label = "" }},
		{"no keys", func(c *Config) { c.Keys = nil }},
		{"no sink", func(c *Config) { c.Sink = nil }},
		{"no gossip port", func(c *Config) { c.Gossip = netip.MustParseAddrPort("10.1.0.5:0") }},
		{"port out of range", func(c *Config) { c.Port = 70000 }},
		{"negative interval", func(c *Config) { c.Interval = -time.Second }},
		{"ipv6 listen address", func(c *Config) { c.ListenAddr = netip.MustParseAddr("::1") }},
		{"ipv6 target", func(c *Config) { c.Targets = []netip.Addr{netip.MustParseAddr("ff02::1")} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good()
			tc.edit(&c)
			b, err := New(c, nil)
			if !errors.Is(err, ErrConfig) {
				if b != nil {
					b.Close()
				}
				t.Fatalf("New = %v, want ErrConfig", err)
			}
		})
	}
}

// loopbackBeacon runs a beacon on 127.0.0.x:port that sends to targets
// (unicast: loopback has no broadcast) and announces gossip 127.0.0.x:7946.
// edit, if set, changes the config first.
func loopbackBeacon(t testing.TB, x, port int, key []byte, targets []netip.Addr, edit ...func(*Config)) (*Beacon, *sink) {
	t.Helper()
	ip := netip.AddrFrom4([4]byte{127, 0, 0, byte(x)})
	s := &sink{}
	cfg := Config{
		NodeID: fmt.Sprintf("node-%d", x), Label: testLabel, Keys: func() [][]byte { return [][]byte{key} },
		Gossip: netip.AddrPortFrom(ip, 7946), Port: port, ListenAddr: ip, Targets: targets,
		Interval: 20 * time.Millisecond, Sink: s,
	}
	for _, e := range edit {
		e(&cfg)
	}
	b, err := New(cfg, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return b, s
}

// TestBeaconsOverLoopback: real sockets. Three beacons of a fleet hear each
// other (and count their own), one with another key is heard but never
// offered.
func TestBeaconsOverLoopback(t *testing.T) {
	port := freeUDPPort(t)
	var targets []netip.Addr
	for x := 1; x <= 4; x++ {
		targets = append(targets, netip.AddrFrom4([4]byte{127, 0, 0, byte(x)}))
	}
	var beacons []*Beacon
	var sinks []*sink
	for x := 1; x <= 3; x++ {
		b, s := loopbackBeacon(t, x, port, testKey, targets)
		beacons, sinks = append(beacons, b), append(sinks, s)
	}
	outsider, outSink := loopbackBeacon(t, 4, port, otherKey, targets)

	testutil.WaitFor(t, 10*time.Second, "every node hearing the others and refusing the outsider", func() error {
		for j, b := range beacons {
			if st := b.Stats(); st.Own == 0 || st.BadAuth == 0 {
				return fmt.Errorf("node-%d stats %+v: not yet its own beacon and the outsider's", j+1, st)
			}
		}
		if st := outsider.Stats(); st.BadAuth == 0 {
			return fmt.Errorf("the outsider has refused no beacon yet: %+v", st)
		}
		for j, s := range sinks {
			got := s.got()
			for x := 1; x <= 3; x++ {
				want := fmt.Sprintf("127.0.0.%d:7946", x)
				if x != j+1 && !slices.Contains(got, want) {
					return fmt.Errorf("node-%d has not heard %s", j+1, want)
				}
			}
		}
		return nil
	})
	for j, s := range sinks {
		if got := s.got(); slices.Contains(got, "127.0.0.4:7946") || slices.Contains(got, fmt.Sprintf("127.0.0.%d:7946", j+1)) {
			t.Errorf("node-%d offered %q: its own or the outsider's address", j+1, got)
		}
		if st := beacons[j].Stats(); st.Own == 0 || st.BadAuth == 0 || st.Sent == 0 {
			t.Errorf("node-%d stats %+v: want own beacons, the outsider's refused, beacons sent", j+1, st)
		}
	}
	if got := outSink.got(); len(got) != 0 {
		t.Errorf("the outsider accepted %q", got)
	}
	if st := outsider.Stats(); st.BadAuth == 0 {
		t.Errorf("outsider stats %+v", st)
	}
}

// A node in a pool of n sends each round's beacon with probability 1/n
// (the site sends about one per round), one alone every round, and every
// node its first at once.
func TestBeaconRateFollowsPoolSize(t *testing.T) {
	var rounds, pool atomic.Int64
	pool.Store(20)
	b, _ := loopbackBeacon(t, 1, freeUDPPort(t), testKey, []netip.Addr{netip.AddrFrom4([4]byte{127, 0, 0, 9})}, func(c *Config) {
		c.Interval = time.Millisecond
		c.PoolSize = func() int { rounds.Add(1); return int(pool.Load()) }
	})
	testutil.WaitFor(t, 30*time.Second, "400 rounds in a pool of 20", func() error {
		if r := rounds.Load(); r < 400 {
			return fmt.Errorf("%d rounds", r)
		}
		return nil
	})
	pool.Store(1)
	sent, r := b.Stats().Sent, rounds.Load()
	// The first beacon, then 1 in 20 of about 400 rounds: 20 expected,
	// outside 4..60 with a chance under 1e-5.
	if sent < 4 || sent > 60 {
		t.Fatalf("%d beacons in %d rounds in a pool of 20, want about %d", sent, r, 1+r/20)
	}
	testutil.WaitFor(t, 30*time.Second, "every round's beacon sent when alone", func() error {
		if got, want := b.Stats().Sent-sent, uint64(50); got < want {
			return fmt.Errorf("%d beacons since alone, %d rounds", got, rounds.Load()-r)
		}
		return nil
	})
	s2 := b.Stats().Sent
	r2 := rounds.Load() // read after: a round counts itself before it sends
	if got, want := s2-sent, uint64(r2-r); got+3 < want {
		t.Fatalf("%d beacons in %d rounds alone, want one a round", got, want)
	}
}
