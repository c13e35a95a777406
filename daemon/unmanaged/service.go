package unmanaged

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/patchring/patchring/daemon/apitypes"
	"github.com/patchring/patchring/p2p/exchange"
	"github.com/patchring/patchring/p2p/site"
	"github.com/patchring/patchring/platform/neighbor"
	"github.com/patchring/patchring/policy"
)

// Member is a live member of this node's site, as gossip describes it.
type Member struct {
	ID    string
	Addrs []netip.Addr // the addresses it gossips from and listens on
}

// Observer is the OS side: this node's LAN interfaces, its neighbour
// table, the receive-only listener and the sweep's prober.
type Observer interface {
	Interfaces() ([]neighbor.Iface, error)
	Neighbors(ctx context.Context) ([]neighbor.Observation, error)
	Listen(ctx context.Context, ifc neighbor.Iface, fn func(neighbor.Observation)) error
	NewProber(ifc neighbor.Iface, src netip.Addr) (Prober, error)
}

// Prober sends the sweep's ARP requests on one interface.
type Prober interface {
	Probe(dst netip.Addr) error
	Close() error
}

// OS is the Observer of the running system (platform/neighbor).
type OS struct{}

var _ Observer = OS{}

// Interfaces implements Observer.
func (OS) Interfaces() ([]neighbor.Iface, error) { return neighbor.Interfaces() }

// Neighbors implements Observer.
func (OS) Neighbors(ctx context.Context) ([]neighbor.Observation, error) {
	return neighbor.Neighbors(ctx)
}

// Listen implements Observer.
func (OS) Listen(ctx context.Context, ifc neighbor.Iface, fn func(neighbor.Observation)) error {
	return neighbor.Listen(ctx, ifc, fn)
}

// NewProber implements Observer.
func (OS) NewProber(ifc neighbor.Iface, src netip.Addr) (Prober, error) {
	return neighbor.NewProber(ifc, src)
}

// Config is what the service needs from the rest of the agent.
type Config struct {
	Log    *slog.Logger
	NodeID string
	Site   string
	// Policy returns the policy's unmanaged section in force (nil or the
	// zero value: the defaults, passive observation on).
	Policy func() policy.Unmanaged
	// Self returns this node's own MACs and addresses, from its
	// inventory: what neither it nor its members list.
	Self func() ([]neighbor.MAC, []netip.Addr)
	// Members returns the live members of this node's site, itself left
	// out; nil: a site of one.
	Members func() []Member
	// Fetch reads a member's sightings file (FilePath); nil: the view is
	// this node's own observations.
	Fetch func(ctx context.Context, member string) ([]byte, error)
	// OUI names vendors; nil reads DefaultOUIFile.
	OUI *OUI
	// OS observes the LAN; nil is the running system.
	OS Observer
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// Metrics registers the service's gauges and counters; nil registers none.
	Metrics prometheus.Registerer
}

// sweepKey is the rendezvous key that picks the site's sweeping node.
const sweepKey = "unmanaged-sweep"

type peerReport struct {
	rep *Report
	at  time.Time
}

// Service observes, records, shares and lists. Run drives it.
type Service struct {
	cfg Config
	log *slog.Logger

	mu        sync.Mutex
	on        bool
	devices   map[neighbor.MAC]*Device // this node's observations
	ifaces    []neighbor.Iface
	peers     map[string]peerReport
	file      []byte // the marshalled Report this node serves
	evicted   int64
	probes    int64
	lastSweep time.Time
	sweeping  bool
	peerErrs  map[string]string
	// former are the members that left: their own MACs and addresses
	// stay excluded for the expiry (an agent restarting or briefly
	// unreachable is still no unmanaged device).
	former map[string]formerMember
	poke   chan struct{} // PolicyChanged
}

type formerMember struct {
	macs  []neighbor.MAC
	addrs []netip.Addr
	left  time.Time
}

// New returns the service; it observes nothing until Run.
func New(cfg Config) *Service {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.OUI == nil {
		cfg.OUI = &OUI{}
	}
	if cfg.OS == nil {
		cfg.OS = OS{}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Service{cfg: cfg, log: cfg.Log, devices: map[neighbor.MAC]*Device{}, peers: map[string]peerReport{}, peerErrs: map[string]string{}, former: map[string]formerMember{}, poke: make(chan struct{}, 1)}
	s.registerMetrics(cfg.Metrics)
	return s
}

// Name names the part in the agent's logs.
func (s *Service) Name() string { return "unmanaged" }

// PolicyChanged tells Run that the policy may have changed: it re-reads it
// at once instead of at the next round.
func (s *Service) PolicyChanged() {
	select {
	case s.poke <- struct{}{}:
	default:
	}
}

// policyRecheck bounds how long a policy change nobody announced through
// PolicyChanged waits.
const policyRecheck = time.Minute

func (s *Service) settings() policy.Unmanaged {
	if s.cfg.Policy == nil {
		return policy.Unmanaged{}
	}
	return s.cfg.Policy()
}

// Run observes on the policy's interval until ctx ends: reads the
// neighbour table, keeps the listeners on the LAN interfaces running,
// expires old sightings, fetches the members' sightings and, where the
// policy enables it and this node is the site's pick, sweeps.
func (s *Service) Run(ctx context.Context) error {
	var (
		wg          sync.WaitGroup
		stopListen  context.CancelFunc
		listenedSet string
	)
	stopListeners := func() {
		if stopListen != nil {
			stopListen()
			stopListen = nil
		}
		listenedSet = ""
	}
	defer func() {
		stopListeners()
		wg.Wait()
	}()
	// The policy is read when PolicyChanged says so, when the round's
	// interval has passed, and at least every policyRecheck: a round runs
	// when its interval has passed since the last one, or at once when
	// the section changed (the first policy arrives after the start).
	check := time.NewTimer(policyRecheck)
	defer check.Stop()
	var (
		last     time.Time
		lastSeen policy.Unmanaged
		first    = true
	)
	for {
		if !first {
			select {
			case <-ctx.Done():
				return nil
			case <-s.poke:
			case <-check.C:
			}
		}
		u := s.settings()
		now := s.cfg.Now()
		if !first && reflect.DeepEqual(u, lastSeen) && now.Sub(last) < u.EffectiveInterval() {
			check.Reset(min(policyRecheck, u.EffectiveInterval()-now.Sub(last)))
			continue
		}
		first, last, lastSeen = false, now, u
		check.Reset(min(policyRecheck, u.EffectiveInterval()))
		if !u.UnmanagedOn() {
			stopListeners()
			s.switchOff()
			continue
		}
		ifaces, err := s.cfg.OS.Interfaces()
		if err != nil {
			s.log.Warn("unmanaged: interfaces", "err", err)
		}
		s.mu.Lock()
		s.on, s.ifaces = true, ifaces
		s.mu.Unlock()
		if set := ifaceSet(ifaces); set != listenedSet {
			stopListeners()
			lctx, cancel := context.WithCancel(ctx)
			stopListen, listenedSet = cancel, set
			for _, ifc := range ifaces {
				wg.Go(func() {
					if err := s.cfg.OS.Listen(lctx, ifc, s.Observe); err != nil && lctx.Err() == nil {
						s.log.Info("unmanaged: passive listening unavailable; the neighbour table alone is read", "iface", ifc.Name, "err", err)
					}
				})
			}
		}
		if obs, err := s.cfg.OS.Neighbors(ctx); err != nil {
			s.log.Warn("unmanaged: neighbour table", "err", err)
		} else {
			for _, o := range obs {
				s.Observe(o)
			}
		}
		s.expire(u)
		s.fetchPeers(ctx)
		s.maybeSweep(ctx, u, ifaces, &wg)
	}
}

func ifaceSet(ifs []neighbor.Iface) string {
	var b bytes.Buffer
	for _, i := range ifs {
		fmt.Fprintf(&b, "%d/%s/%v;", i.Index, i.MAC, i.Prefixes)
	}
	return b.String()
}

// switchOff forgets everything: with discovery off nothing is kept or
// served.
func (s *Service) switchOff() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.on {
		s.log.Info("unmanaged: discovery is off by policy; forgetting what was seen")
	}
	s.on = false
	clear(s.devices)
	clear(s.peers)
	clear(s.former)
	s.file = nil
}

// Observe records one observation, keeping only the addresses inside the
// receiving interface's subnets (and IPv6 link-local ones): traffic
// routed from elsewhere carries a router's MAC with a remote address.
// Observations from this node's own interfaces are dropped.
func (s *Service) Observe(o neighbor.Observation) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.on || !o.MAC.Unicast() {
		return
	}
	var ifc *neighbor.Iface
	for i := range s.ifaces {
		if s.ifaces[i].MAC == o.MAC {
			return
		}
		if s.ifaces[i].Index == o.Ifindex {
			ifc = &s.ifaces[i]
		}
	}
	if ifc == nil {
		return // not a LAN interface (loopback, tunnels)
	}
	var addrs []netip.Addr
	for _, a := range o.Addrs {
		if onLink(*ifc, a) {
			addrs = append(addrs, a.Unmap())
		}
	}
	if len(addrs) == 0 && o.Source != neighbor.SourceARP && o.Source != neighbor.SourceNDP && o.Source != neighbor.SourceDHCP {
		return // an IP frame from off the link: the router's MAC, not a device here
	}
	now := s.cfg.Now().UTC().Truncate(time.Second)
	seen := now.Add(-o.Age).Truncate(time.Second)
	d := s.devices[o.MAC]
	if d == nil {
		perNode, _ := s.caps()
		if len(s.devices) >= perNode {
			s.evictOldest(len(s.devices) - perNode + max(1, perNode/8))
		}
		d = &Device{MAC: o.MAC, FirstSeen: seen, LastSeen: seen}
		s.devices[o.MAC] = d
	}
	if seen.After(d.LastSeen) {
		d.LastSeen = seen
	}
	if seen.Before(d.FirstSeen) {
		d.FirstSeen = seen
	}
	for _, a := range addrs {
		d.Addrs = addAddr(d.Addrs, a)
	}
	if o.Hostname != "" {
		d.Hostname = o.Hostname
	}
}

func (s *Service) caps() (perNode, perSite int) { return s.settings().Caps() }

// evictOldest drops the n devices seen longest ago. A full table drops an
// eighth of its cap at once, so a flood of new MACs costs one sort per
// cap/8 devices, not a scan per frame.
func (s *Service) evictOldest(n int) {
	all := make([]*Device, 0, len(s.devices))
	for _, d := range s.devices {
		all = append(all, d)
	}
	slices.SortFunc(all, func(a, b *Device) int { return a.LastSeen.Compare(b.LastSeen) })
	for _, d := range all[:min(n, len(all))] {
		delete(s.devices, d.MAC)
		s.evicted++
	}
}

// addAddr keeps the newest maxAddrsPerDev addresses, the newest last.
func addAddr(as []netip.Addr, a netip.Addr) []netip.Addr {
	if i := slices.Index(as, a); i >= 0 {
		as = slices.Delete(as, i, i+1)
	}
	as = append(as, a)
	if len(as) > maxAddrsPerDev {
		as = as[len(as)-maxAddrsPerDev:]
	}
	return as
}

func onLink(ifc neighbor.Iface, a netip.Addr) bool {
	a = a.Unmap()
	if a.Is6() && a.IsLinkLocalUnicast() {
		return true
	}
	for _, p := range ifc.Prefixes {
		if p.Masked().Contains(a) {
			if p.Addr().Is4() && p.Bits() <= 30 {
				m := p.Masked()
				if a == m.Addr() || a == lastAddr(m) {
					return false // network and broadcast addresses
				}
			}
			return true
		}
	}
	return false
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// expire drops devices unseen for the policy's expiry and rebuilds the
// file this node serves.
func (s *Service) expire(u policy.Unmanaged) {
	now := s.cfg.Now()
	cut := now.Add(-u.EffectiveExpiry())
	macs, addrs := s.self()
	s.mu.Lock()
	defer s.mu.Unlock()
	for m, d := range s.devices {
		if d.LastSeen.Before(cut) {
			delete(s.devices, m)
		}
	}
	rep := Report{SelfMACs: macs, SelfAddrs: addrs}
	for _, d := range s.devices {
		rep.Devices = append(rep.Devices, *d)
	}
	slices.SortFunc(rep.Devices, func(a, b Device) int { return bytes.Compare(a.MAC[:], b.MAC[:]) })
	s.file = rep.Marshal()
}

// self is this node's own MACs and addresses: its inventory's, and its
// LAN interfaces' as last read.
func (s *Service) self() ([]neighbor.MAC, []netip.Addr) {
	var macs []neighbor.MAC
	var addrs []netip.Addr
	if s.cfg.Self != nil {
		macs, addrs = s.cfg.Self()
	}
	s.mu.Lock()
	for _, i := range s.ifaces {
		if !slices.Contains(macs, i.MAC) {
			macs = append(macs, i.MAC)
		}
		for _, p := range i.Prefixes {
			if !slices.Contains(addrs, p.Addr()) {
				addrs = append(addrs, p.Addr())
			}
		}
	}
	s.mu.Unlock()
	return macs, addrs
}

// OpenFile serves this node's sightings (FilePath) to its site's members
// on the exchange's file protocol.
func (s *Service) OpenFile(ctx context.Context, path string) (io.ReadCloser, int64, error) {
	s.mu.Lock()
	b := s.file
	s.mu.Unlock()
	if path != FilePath || b == nil {
		return nil, 0, fmt.Errorf("unmanaged sightings %s: %w", path, exchange.ErrFileNotFound)
	}
	return io.NopCloser(bytes.NewReader(b)), int64(len(b)), nil
}

var _ exchange.Files = (*Service)(nil)

// fetchPeers reads every live member's sightings; a member whose file
// cannot be read or parsed keeps its last good one until it leaves.
func (s *Service) fetchPeers(ctx context.Context) {
	if s.cfg.Members == nil {
		return
	}
	members := s.cfg.Members()
	live := map[string]bool{}
	for _, m := range members {
		live[m.ID] = true
		if s.cfg.Fetch == nil {
			continue
		}
		fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		b, err := s.cfg.Fetch(fctx, m.ID)
		cancel()
		var rep *Report
		if err == nil {
			rep, err = ParseReport(b, policy.MaxUnmanagedPerNode)
		}
		s.mu.Lock()
		if err != nil {
			if s.peerErrs[m.ID] != err.Error() {
				s.log.Info("unmanaged: sightings of a member", "member", m.ID, "err", err)
			}
			s.peerErrs[m.ID] = err.Error()
		} else {
			delete(s.peerErrs, m.ID)
			s.peers[m.ID] = peerReport{rep: rep, at: s.cfg.Now()}
		}
		s.mu.Unlock()
	}
	s.mu.Lock()
	now := s.cfg.Now()
	for id, p := range s.peers {
		if !live[id] {
			s.former[id] = formerMember{macs: p.rep.SelfMACs, addrs: p.rep.SelfAddrs, left: now}
			delete(s.peers, id)
		}
	}
	for id := range live {
		delete(s.former, id)
	}
	expiry := s.settings().EffectiveExpiry()
	for id, f := range s.former {
		if now.Sub(f.left) > expiry {
			delete(s.former, id)
		}
	}
	for id := range s.peerErrs {
		if !live[id] {
			delete(s.peerErrs, id)
		}
	}
	s.mu.Unlock()
}

// View is the site's unmanaged devices as this node knows them: its own
// sightings and its live members', merged by MAC, less every device a
// member claims (a MAC or an address of a member's inventory, or an
// address a member gossips from), less what expired, at most the site cap
// (the most recently seen kept), sorted by MAC.
func (s *Service) View() apitypes.Unmanaged {
	u := s.settings()
	out := apitypes.Unmanaged{Site: s.cfg.Site, Enabled: u.UnmanagedOn(), Sweep: len(u.SweepSubnets(s.cfg.Site, s.attached())) > 0}
	if !out.Enabled {
		return out
	}
	var members []Member
	if s.cfg.Members != nil {
		members = s.cfg.Members()
	}
	selfMACs, selfAddrs := s.self()
	now := s.cfg.Now()
	cut := now.Add(-u.EffectiveExpiry())
	_, perSite := u.Caps()

	s.mu.Lock()
	exMAC := map[neighbor.MAC]bool{}
	exIP := map[netip.Addr]bool{}
	for _, m := range selfMACs {
		exMAC[m] = true
	}
	for _, a := range selfAddrs {
		exIP[a.Unmap()] = true
	}
	for _, m := range members {
		for _, a := range m.Addrs {
			exIP[a.Unmap()] = true
		}
	}
	type src struct {
		id      string
		devices []Device
	}
	srcs := []src{{s.cfg.NodeID, nil}}
	for _, d := range s.devices {
		srcs[0].devices = append(srcs[0].devices, *d)
	}
	for _, f := range s.former {
		for _, m := range f.macs {
			exMAC[m] = true
		}
		for _, a := range f.addrs {
			exIP[a.Unmap()] = true
		}
	}
	for id, p := range s.peers {
		for _, m := range p.rep.SelfMACs {
			exMAC[m] = true
		}
		for _, a := range p.rep.SelfAddrs {
			exIP[a.Unmap()] = true
		}
		srcs = append(srcs, src{id, p.rep.Devices})
	}
	out.Observed = len(s.devices)
	out.Members = len(s.peers)
	out.Probes = s.probes
	out.LastSweep = s.lastSweep
	s.mu.Unlock()

	merged := map[neighbor.MAC]*apitypes.UnmanagedDevice{}
	addrs := map[neighbor.MAC][]netip.Addr{}
	for _, sr := range srcs {
		for _, d := range sr.devices {
			if d.LastSeen.Before(cut) {
				continue
			}
			m := merged[d.MAC]
			if m == nil {
				m = &apitypes.UnmanagedDevice{MAC: d.MAC.String(), FirstSeen: d.FirstSeen, LastSeen: d.LastSeen}
				merged[d.MAC] = m
			}
			if d.FirstSeen.Before(m.FirstSeen) {
				m.FirstSeen = d.FirstSeen
			}
			if !d.LastSeen.Before(m.LastSeen) {
				m.LastSeen = d.LastSeen
				if d.Hostname != "" {
					m.Hostname = d.Hostname
				}
			} else if m.Hostname == "" {
				m.Hostname = d.Hostname
			}
			for _, a := range d.Addrs {
				if !slices.Contains(addrs[d.MAC], a.Unmap()) {
					addrs[d.MAC] = append(addrs[d.MAC], a.Unmap())
				}
			}
			if !slices.Contains(m.SeenBy, sr.id) {
				m.SeenBy = append(m.SeenBy, sr.id)
			}
		}
	}
	var list []apitypes.UnmanagedDevice
	for mac, m := range merged {
		claimed := exMAC[mac]
		for _, a := range addrs[mac] {
			claimed = claimed || exIP[a]
		}
		if claimed {
			continue
		}
		as := addrs[mac]
		slices.SortFunc(as, func(a, b netip.Addr) int { return a.Compare(b) })
		for _, a := range as {
			m.Addrs = append(m.Addrs, a.String())
		}
		slices.Sort(m.SeenBy)
		m.Vendor = s.cfg.OUI.Vendor(mac)
		list = append(list, *m)
	}
	slices.SortFunc(list, func(a, b apitypes.UnmanagedDevice) int { return b.LastSeen.Compare(a.LastSeen) })
	if len(list) > perSite {
		out.Dropped = len(list) - perSite
		list = list[:perSite]
	}
	slices.SortFunc(list, func(a, b apitypes.UnmanagedDevice) int { return cmp.Compare(a.MAC, b.MAC) })
	out.Devices = list
	return out
}

func (s *Service) attached() []netip.Prefix {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []netip.Prefix
	for _, i := range s.ifaces {
		out = append(out, i.Prefixes...)
	}
	return out
}

// APIUnmanaged answers GET /v1/fleet/unmanaged.
func (s *Service) APIUnmanaged(ctx context.Context) (apitypes.Unmanaged, error) {
	if err := ctx.Err(); err != nil {
		return apitypes.Unmanaged{}, err
	}
	return s.View(), nil
}

// maybeSweep starts a sweep when the policy enables one here, this node
// is the site's pick (rendezvous over the live members and itself), none
// is running and the last one is older than the policy's every.
func (s *Service) maybeSweep(ctx context.Context, u policy.Unmanaged, ifaces []neighbor.Iface, wg *sync.WaitGroup) {
	type target struct {
		ifc neighbor.Iface
		pf  netip.Prefix
	}
	var targets []target
	for _, ifc := range ifaces {
		for _, pf := range u.SweepSubnets(s.cfg.Site, ifc.Prefixes) {
			targets = append(targets, target{ifc, pf})
		}
	}
	if len(targets) == 0 {
		return
	}
	ms := []site.Member{{ID: s.cfg.NodeID}}
	if s.cfg.Members != nil {
		for _, m := range s.cfg.Members() {
			ms = append(ms, site.Member{ID: m.ID})
		}
	}
	if pick, _ := site.Choose(sweepKey, ms); pick.ID != s.cfg.NodeID {
		return
	}
	now := s.cfg.Now()
	s.mu.Lock()
	if s.sweeping || (!s.lastSweep.IsZero() && now.Sub(s.lastSweep) < u.Sweep.EffectiveEvery()) {
		s.mu.Unlock()
		return
	}
	s.sweeping, s.lastSweep = true, now
	s.mu.Unlock()
	rate := u.Sweep.EffectiveRate()
	wg.Go(func() {
		defer func() {
			s.mu.Lock()
			s.sweeping = false
			s.mu.Unlock()
		}()
		for _, t := range targets {
			if err := s.sweep(ctx, t.ifc, t.pf, rate); err != nil {
				s.log.Warn("unmanaged: sweep", "iface", t.ifc.Name, "subnet", t.pf, "err", err)
			}
		}
	})
}

// sweep sends one ARP request to every host address of pf (not this
// node's own), at most rate a second. The answers reach the listener.
func (s *Service) sweep(ctx context.Context, ifc neighbor.Iface, pf netip.Prefix, rate int) error {
	var src netip.Addr
	for _, p := range ifc.Prefixes {
		if p.Masked() == pf.Masked() {
			src = p.Addr()
		}
	}
	if !src.IsValid() {
		return errors.New("no address of this node in the subnet")
	}
	pr, err := s.cfg.OS.NewProber(ifc, src)
	if err != nil {
		return err
	}
	defer pr.Close()
	s.log.Info("unmanaged: sweeping", "iface", ifc.Name, "subnet", pf, "rate_per_s", rate)
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	first, last := pf.Masked().Addr(), lastAddr(pf)
	for a := first.Next(); a.IsValid() && a.Less(last); a = a.Next() {
		if a == src {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if err := pr.Probe(a); err != nil {
			return err
		}
		s.mu.Lock()
		s.probes++
		s.mu.Unlock()
	}
	return nil
}

func (s *Service) registerMetrics(r prometheus.Registerer) {
	if r == nil {
		return
	}
	r.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "patchring_unmanaged_devices", Help: "Devices on the site's LAN that run no agent, as this node's site view lists them.",
	}, func() float64 { return float64(len(s.View().Devices)) }))
	r.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "patchring_unmanaged_observed", Help: "Devices this node itself observed (within its cap and the expiry), members included.",
	}, func() float64 {
		s.mu.Lock()
		defer s.mu.Unlock()
		return float64(len(s.devices))
	}))
	r.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "patchring_unmanaged_probes_total", Help: "ARP requests this node sent in active sweeps.",
	}, func() float64 {
		s.mu.Lock()
		defer s.mu.Unlock()
		return float64(s.probes)
	}))
	r.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "patchring_unmanaged_evicted_total", Help: "Devices this node dropped to stay within its cap.",
	}, func() float64 {
		s.mu.Lock()
		defer s.mu.Unlock()
		return float64(s.evicted)
	}))
}
