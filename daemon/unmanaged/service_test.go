package unmanaged

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/patchring/patchring/daemon/apitypes"
	"github.com/patchring/patchring/p2p/exchange"
	"github.com/patchring/patchring/platform/neighbor"
	"github.com/patchring/patchring/policy"
)

var (
	ifcA = neighbor.Iface{Name: "eth0", Index: 2, MAC: neighbor.MAC{0x02, 0, 0, 0, 0, 0x0a},
		Prefixes: []netip.Prefix{netip.MustParsePrefix("10.200.1.10/24")}}
	ifcB = neighbor.Iface{Name: "eth0", Index: 2, MAC: neighbor.MAC{0x02, 0, 0, 0, 0, 0x0b},
		Prefixes: []netip.Prefix{netip.MustParsePrefix("10.200.1.11/24")}}
	printer = neighbor.MAC{0x00, 0x00, 0x48, 0x11, 0x22, 0x33} // an Epson OUI
	camera  = neighbor.MAC{0x02, 0xca, 0xfe, 0, 0, 1}
)

// fakeOS is the Observer of a test: fixed interfaces and neighbour table,
// a listener fed from a channel, probers that record what they send.
type fakeOS struct {
	ifc neighbor.Iface

	mu        sync.Mutex
	neigh     []neighbor.Observation
	frames    chan neighbor.Observation
	listening int
	probes    []probe
	now       func() time.Time
}

type probe struct {
	dst netip.Addr
	at  time.Time
}

func newFakeOS(ifc neighbor.Iface) *fakeOS {
	return &fakeOS{ifc: ifc, frames: make(chan neighbor.Observation, 16), now: time.Now}
}

func (f *fakeOS) Interfaces() ([]neighbor.Iface, error) { return []neighbor.Iface{f.ifc}, nil }

func (f *fakeOS) Neighbors(ctx context.Context) ([]neighbor.Observation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.neigh), nil
}

func (f *fakeOS) Listen(ctx context.Context, ifc neighbor.Iface, fn func(neighbor.Observation)) error {
	f.mu.Lock()
	f.listening++
	f.mu.Unlock()
	for {
		select {
		case <-ctx.Done():
			return nil
		case o := <-f.frames:
			fn(o)
		}
	}
}

func (f *fakeOS) NewProber(ifc neighbor.Iface, src netip.Addr) (Prober, error) {
	return fakeProber{f}, nil
}

type fakeProber struct{ f *fakeOS }

func (p fakeProber) Probe(dst netip.Addr) error {
	p.f.mu.Lock()
	defer p.f.mu.Unlock()
	p.f.probes = append(p.f.probes, probe{dst, p.f.now()})
	return nil
}
func (p fakeProber) Close() error { return nil }

func policyOf(u policy.Unmanaged) func() policy.Unmanaged {
	return func() policy.Unmanaged { return u }
}

func obs(mac neighbor.MAC, src neighbor.Source, host string, addrs ...string) neighbor.Observation {
	o := neighbor.Observation{MAC: mac, Source: src, Ifindex: 2, Hostname: host}
	for _, a := range addrs {
		o.Addrs = append(o.Addrs, netip.MustParseAddr(a))
	}
	return o
}

// tick runs one round of Run's work without its timer.
func tick(t testing.TB, s *Service) {
	t.Helper()
	u := s.settings()
	ifs, _ := s.cfg.OS.Interfaces()
	s.mu.Lock()
	s.on, s.ifaces = u.UnmanagedOn(), ifs
	s.mu.Unlock()
	nb, _ := s.cfg.OS.Neighbors(context.Background())
	for _, o := range nb {
		s.Observe(o)
	}
	s.expire(u)
	s.fetchPeers(context.Background())
}

func TestObserveKeepsOnLinkAddressesOnly(t *testing.T) {
	t.Parallel()
	os := newFakeOS(ifcA)
	s := New(Config{NodeID: "A", Site: "branch", OS: os, OUI: &OUI{Path: "testdata/oui.csv"}})
	tick(t, s)
	s.Observe(obs(printer, neighbor.SourceDHCP, "printer-3", "10.200.1.50"))
	s.Observe(obs(printer, neighbor.SourceIP, "", "10.200.1.50", "fe80::200:48ff:fe11:2233"))
	s.Observe(obs(camera, neighbor.SourceIP, "", "192.0.2.7"))      // routed from elsewhere: the router's MAC, not here
	s.Observe(obs(ifcA.MAC, neighbor.SourceARP, "", "10.200.1.10")) // this node itself
	s.Observe(obs(camera, neighbor.SourceIP, "", "10.200.1.255"))   // broadcast address
	v := s.View()
	if len(v.Devices) != 1 {
		t.Fatalf("devices %+v, want the printer alone", v.Devices)
	}
	d := v.Devices[0]
	if d.MAC != printer.String() || d.Hostname != "printer-3" || d.Vendor != "SEIKO EPSON CORPORATION" ||
		!slices.Equal(d.Addrs, []string{"10.200.1.50", "fe80::200:48ff:fe11:2233"}) || !slices.Equal(d.SeenBy, []string{"A"}) {
		t.Fatalf("printer = %+v", d)
	}
}

func TestCapEvictsTheOldestAndExpiryDrops(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	os := newFakeOS(ifcA)
	u := policy.Unmanaged{MaxPerNode: 2, Expiry: policy.Duration(10 * time.Minute)}
	s := New(Config{NodeID: "A", OS: os, Now: clock, Policy: policyOf(u)})
	tick(t, s)
	for i := range 3 {
		s.Observe(obs(neighbor.MAC{2, 0, 0, 0, 1, byte(i)}, neighbor.SourceARP, "", "10.200.1."+string(rune('1'+i))))
		now = now.Add(time.Minute)
	}
	v := s.View()
	if len(v.Devices) != 2 || v.Devices[0].MAC != "02:00:00:00:01:01" || s.evicted != 1 {
		t.Fatalf("after 3 devices with a cap of 2: %+v (evicted %d)", v.Devices, s.evicted)
	}
	now = now.Add(9 * time.Minute) // device 1 seen 11 min ago, device 2 10 min ago
	tick(t, s)
	if v := s.View(); len(v.Devices) != 1 || v.Devices[0].MAC != "02:00:00:00:01:02" {
		t.Fatalf("after expiry: %+v", v.Devices)
	}
	// A stale neighbour entry keeps its age: it does not refresh the device.
	os.mu.Lock()
	os.neigh = []neighbor.Observation{{MAC: camera, Addrs: []netip.Addr{netip.MustParseAddr("10.200.1.77")}, Source: neighbor.SourceNeighbor, Ifindex: 2, Age: time.Hour}}
	os.mu.Unlock()
	tick(t, s)
	if v := s.View(); slices.ContainsFunc(v.Devices, func(d apitypes.UnmanagedDevice) bool { return d.MAC == camera.String() }) {
		t.Fatalf("a neighbour entry confirmed an hour ago is listed: %+v", v.Devices)
	}
}

// testSite joins services as members of one site: each fetches the others'
// files through their OpenFile, as the exchange's file protocol would.
type testSite struct {
	mu  sync.Mutex
	svc map[string]*Service
	ips map[string][]netip.Addr
}

func (st *testSite) members(self string) func() []Member {
	return func() []Member {
		st.mu.Lock()
		defer st.mu.Unlock()
		var out []Member
		for id := range st.svc {
			if id != self {
				out = append(out, Member{ID: id, Addrs: st.ips[id]})
			}
		}
		slices.SortFunc(out, func(a, b Member) int { return compareStr(a.ID, b.ID) })
		return out
	}
}

func compareStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (st *testSite) fetch(ctx context.Context, id string) ([]byte, error) {
	st.mu.Lock()
	s := st.svc[id]
	st.mu.Unlock()
	rc, _, err := s.OpenFile(ctx, FilePath)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func TestSiteViewMergesAndExcludesMembers(t *testing.T) {
	t.Parallel()
	st := &testSite{svc: map[string]*Service{}, ips: map[string][]netip.Addr{
		"A": {netip.MustParseAddr("10.200.1.10")}, "B": {netip.MustParseAddr("10.200.1.11")},
	}}
	osA, osB := newFakeOS(ifcA), newFakeOS(ifcB)
	a := New(Config{NodeID: "A", Site: "branch", OS: osA, Members: st.members("A"), Fetch: st.fetch})
	// B's inventory names a second interface of B (its Wi-Fi) that A sees.
	wifiB := neighbor.MAC{0x02, 0, 0, 0, 0, 0xbb}
	b := New(Config{NodeID: "B", Site: "branch", OS: osB, Members: st.members("B"), Fetch: st.fetch,
		Self: func() ([]neighbor.MAC, []netip.Addr) {
			return []neighbor.MAC{ifcB.MAC, wifiB}, []netip.Addr{netip.MustParseAddr("10.200.1.11"), netip.MustParseAddr("10.200.1.99")}
		}})
	st.svc["A"], st.svc["B"] = a, b
	tick(t, a)
	tick(t, b)
	a.Observe(obs(printer, neighbor.SourceARP, "", "10.200.1.50"))
	a.Observe(obs(ifcB.MAC, neighbor.SourceARP, "", "10.200.1.11")) // member B
	a.Observe(obs(wifiB, neighbor.SourceIP, "", "10.200.1.99"))     // member B's other interface
	b.Observe(obs(printer, neighbor.SourceMDNS, "epson", "10.200.1.50"))
	b.Observe(obs(camera, neighbor.SourceDHCP, "cam", "10.200.1.60"))
	b.Observe(obs(ifcA.MAC, neighbor.SourceARP, "", "10.200.1.10")) // member A
	// An unknown MAC using a member's gossip address is that member.
	b.Observe(obs(neighbor.MAC{2, 9, 9, 9, 9, 9}, neighbor.SourceIP, "", "10.200.1.10"))
	tick(t, a)
	tick(t, b)
	tick(t, a) // A fetches B's file as B now serves it
	for _, s := range []*Service{a, b} {
		v := s.View()
		var macs []string
		for _, d := range v.Devices {
			macs = append(macs, d.MAC)
		}
		if want := []string{printer.String(), camera.String()}; !slices.Equal(macs, want) {
			t.Fatalf("%s lists %v, want %v", s.cfg.NodeID, macs, want)
		}
		if p := v.Devices[0]; !slices.Equal(p.SeenBy, []string{"A", "B"}) || p.Hostname != "epson" || !slices.Equal(p.Addrs, []string{"10.200.1.50"}) {
			t.Fatalf("%s: printer %+v", s.cfg.NodeID, p)
		}
		if c := v.Devices[1]; !slices.Equal(c.SeenBy, []string{"B"}) || c.Vendor != "(locally administered)" {
			t.Fatalf("%s: camera %+v", s.cfg.NodeID, c)
		}
		if v.Members != 1 {
			t.Fatalf("%s merged %d members", s.cfg.NodeID, v.Members)
		}
	}
	// Member B leaves: its sightings go with it.
	st.mu.Lock()
	delete(st.svc, "B")
	st.mu.Unlock()
	tick(t, a)
	if v := a.View(); len(v.Devices) != 1 || v.Devices[0].MAC != printer.String() {
		t.Fatalf("after B left: %+v", v.Devices)
	}
}

func TestSweepStaysInSubnetAndRate(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		os := newFakeOS(neighbor.Iface{Name: "eth0", Index: 2, MAC: ifcA.MAC, Prefixes: []netip.Prefix{
			netip.MustParsePrefix("10.200.1.10/27"), // swept: 30 hosts, less this node
			netip.MustParsePrefix("10.9.0.5/24"),    // attached, but not in the policy's subnets
		}})
		u := policy.Unmanaged{Sweep: &policy.Sweep{Subnets: []string{"10.200.0.0/16"}, Rate: 10, Every: policy.Duration(time.Hour)}}
		s := New(Config{NodeID: "A", Site: "branch", OS: os, Policy: policyOf(u)})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- s.Run(ctx) }()
		time.Sleep(10 * time.Second)
		synctest.Wait()
		os.mu.Lock()
		probes := slices.Clone(os.probes)
		os.mu.Unlock()
		if len(probes) != 29 {
			t.Fatalf("%d probes, want 29 (10.200.1.1-30 less 10.200.1.10)", len(probes))
		}
		sub := netip.MustParsePrefix("10.200.1.0/27")
		for i, p := range probes {
			if !sub.Contains(p.dst) || p.dst == netip.MustParseAddr("10.200.1.10") || p.dst == netip.MustParseAddr("10.200.1.0") || p.dst == netip.MustParseAddr("10.200.1.31") {
				t.Fatalf("probe %d to %s", i, p.dst)
			}
			if i > 0 && p.at.Sub(probes[i-1].at) < 100*time.Millisecond {
				t.Fatalf("probes %d and %d %s apart, over 10/s", i-1, i, p.at.Sub(probes[i-1].at))
			}
		}
		if v := s.View(); v.Probes != 29 || !v.Sweep {
			t.Fatalf("view: probes %d sweep %v", v.Probes, v.Sweep)
		}
		// No second sweep before `every`.
		time.Sleep(30 * time.Minute)
		synctest.Wait()
		if v := s.View(); v.Probes != 29 {
			t.Fatalf("swept again within the hour: %d probes", v.Probes)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

func TestOneMemberOfTheSiteSweeps(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		st := &testSite{svc: map[string]*Service{}}
		u := policy.Unmanaged{Sweep: &policy.Sweep{Sites: []string{"branch"}, Rate: 100}}
		var oss []*fakeOS
		ctx, cancel := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		for _, id := range []string{"A", "B", "C"} {
			o := newFakeOS(ifcA)
			oss = append(oss, o)
			s := New(Config{NodeID: id, Site: "branch", OS: o, Policy: policyOf(u), Members: st.members(id), Fetch: st.fetch})
			st.mu.Lock()
			st.svc[id] = s
			st.mu.Unlock()
		}
		for _, s := range st.svc {
			wg.Go(func() { s.Run(ctx) })
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		sweepers := 0
		for _, o := range oss {
			o.mu.Lock()
			if len(o.probes) > 0 {
				sweepers++
			}
			o.mu.Unlock()
		}
		if sweepers != 1 {
			t.Fatalf("%d members swept, want 1", sweepers)
		}
		cancel()
		wg.Wait()
	})
}

func TestDiscoveryOffRecordsAndSendsNothing(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		off := false
		os := newFakeOS(ifcA)
		os.neigh = []neighbor.Observation{obs(printer, neighbor.SourceNeighbor, "", "10.200.1.50")}
		s := New(Config{NodeID: "A", Site: "branch", OS: os, Policy: policyOf(policy.Unmanaged{Enabled: &off})})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- s.Run(ctx) }()
		time.Sleep(5 * time.Minute)
		synctest.Wait()
		s.Observe(obs(camera, neighbor.SourceARP, "", "10.200.1.60"))
		if v := s.View(); v.Enabled || len(v.Devices) != 0 || v.Observed != 0 {
			t.Fatalf("discovery off: %+v", v)
		}
		if _, _, err := s.OpenFile(ctx, FilePath); !errors.Is(err, exchange.ErrFileNotFound) {
			t.Fatalf("discovery off serves sightings: %v", err)
		}
		os.mu.Lock()
		listening, probes := os.listening, len(os.probes)
		os.mu.Unlock()
		if listening != 0 || probes != 0 {
			t.Fatalf("discovery off: %d listeners, %d probes", listening, probes)
		}
		cancel()
		<-done
	})
}

// TestPolicyChangeAppliesAtOnce: a policy that turns discovery on is acted
// on as soon as PolicyChanged says so, and without it within policyRecheck;
// an idle service does not wake before either.
func TestPolicyChangeAppliesAtOnce(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		off, on := false, true
		var mu sync.Mutex
		u := policy.Unmanaged{Enabled: &off}
		os := newFakeOS(ifcA)
		s := New(Config{NodeID: "A", Site: "branch", OS: os, Policy: func() policy.Unmanaged {
			mu.Lock()
			defer mu.Unlock()
			return u
		}})
		set := func(v *bool) {
			mu.Lock()
			u.Enabled = v
			mu.Unlock()
		}
		enabled := func() bool { // what Run acts on, not what View reads
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.on
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- s.Run(ctx) }()
		synctest.Wait()
		if enabled() {
			t.Fatal("enabled with discovery off")
		}
		set(&on)
		s.PolicyChanged()
		synctest.Wait()
		if !enabled() {
			t.Fatal("PolicyChanged: discovery still off")
		}
		// Unannounced: seen at the next recheck, not before.
		set(&off)
		time.Sleep(policyRecheck - time.Second)
		synctest.Wait()
		if !enabled() {
			t.Fatal("switched off before the recheck")
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if enabled() {
			t.Fatalf("still on %v after an unannounced change", policyRecheck)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}
