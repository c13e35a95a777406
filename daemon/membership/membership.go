// Package membership is this node's membership of its site: it joins the
// site's gossip pool and publishes the node's state there, admits the
// pool's live members as peers of the payload exchange (one WAN download
// per payload per site), takes TUF repository metadata from peers ahead of
// it (tufpeers.go), finds the pool on the LAN (discovery.go) and rotates
// the pool's gossip keys (keys.go). It is configured through Config and
// knows nothing of the daemon that wires it.
package membership

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/patchring/patchring/daemon/apitypes"
	"github.com/patchring/patchring/daemon/aptproxy"
	"github.com/patchring/patchring/daemon/config"
	"github.com/patchring/patchring/daemon/engine"
	"github.com/patchring/patchring/internal/rungroup"
	"github.com/patchring/patchring/internal/version"
	"github.com/patchring/patchring/p2p/content"
	"github.com/patchring/patchring/p2p/discovery"
	"github.com/patchring/patchring/p2p/exchange"
	"github.com/patchring/patchring/p2p/gossip"
	"github.com/patchring/patchring/p2p/site"
	"github.com/patchring/patchring/platform/apt/archive"
	pinv "github.com/patchring/patchring/platform/inventory"
	"github.com/patchring/patchring/platform/secretfile"
	"github.com/patchring/patchring/policy"
	"github.com/patchring/patchring/policy/credential"
	"github.com/patchring/patchring/policy/trust"
)

// Config is what a Membership needs from the rest of the agent. Nil
// functions and interfaces mean that part is off.
type Config struct {
	Log      *slog.Logger
	Identity crypto.PrivKey // the node key: its libp2p ID is the node ID
	NodeID   string
	Hostname string
	Site     string
	Tags     []string
	// Format is the package format this node installs ("deb" or "rpm";
	// "" unknown): announced, and payloads are shared for the WAN among
	// the members of the same format.
	Format string
	Gossip config.Gossip
	P2P    config.P2P
	// PeersFile keeps the gossip members last seen alive, offered as seeds
	// at the next start (gossip.Config.PeersFile); "" keeps none.
	PeersFile string
	// PolicyRefresh is the policy's refresh interval (how fresh verified
	// metadata must be to be served to peers).
	PolicyRefresh time.Duration
	// Content is the payload store; nil turns the payload exchange off.
	Content *content.Store
	// Trust is the agent's TUF client; nil without a policy source.
	Trust *trust.Client
	// Policy is the policy service; nil without a policy source.
	Policy Policy
	// CurrentPolicy returns the policy in force (nil before the first).
	CurrentPolicy func() (*policy.Policy, string)
	// Facts are this node's facts for ring selection.
	Facts func() policy.NodeFacts
	// Inventory returns the latest inventory snapshot (nil before one).
	Inventory func() *pinv.Snapshot
	// Engine returns the update engine, nil while there is none.
	Engine func() Engine
	// Reboot returns the reboot orchestrator, nil while there is none.
	Reboot func() RebootStatus
	// Exposure returns the node's vulnerability exposure (daemon/vulns);
	// nil without advisories.
	Exposure func() gossip.Exposure
	// Metrics registers the membership's counters; nil registers none.
	Metrics prometheus.Registerer
	// Fleet returns the verified fleet document in force; nil (or a nil
	// function) while the repository publishes none: then the gossip key
	// alone admits members.
	Fleet func() *credential.Trust
	// Credential returns this node's credential (wire form) as installed;
	// it is re-read on every tick so a renewal takes effect at once.
	Credential func() []byte
	// Reports serves this node's console report outbox to the site's
	// reporter (paths under reporter.PathPrefix); nil serves none.
	Reports exchange.Files
	// Unmanaged serves this node's sightings of devices without an agent
	// to its site's members (paths under UnmanagedPrefix); nil serves none.
	Unmanaged exchange.Files
}

// Policy is the policy service as the membership uses it.
type Policy interface {
	TimestampVersion() int64
	Trigger()
	Effective() apitypes.EffectivePolicy
}

// Engine is the update engine as the membership reports on it.
type Engine interface {
	Decisions() ([]policy.Decision, time.Time)
	History(limit int) ([]*engine.Tx, error)
	// HistoryVersion changes whenever the history does.
	HistoryVersion() uint64
}

// RebootStatus is the reboot orchestrator as the membership reports on it.
type RebootStatus interface {
	RebootStatus() apitypes.RebootStatus
}

// Membership joins the node to its site: gossip carries every member's
// state (a hint, never an instruction), and the libp2p exchange shares
// verified payloads with the members, one WAN download per payload per
// site.
type Membership struct {
	cfg      Config
	log      *slog.Logger
	kr       *keyring
	g        *gossip.Gossip
	x        *exchange.Node // nil when payload sharing is off
	coord    *site.Coordinator
	aptCoord *site.Coordinator              // the apt proxy's files (aptPatience)
	aptFiles atomic.Pointer[exchange.Files] // ServeAptReleases
	// beacon finds the site's members on the LAN; nil when discovery is off.
	beacon *discovery.Beacon

	mu        sync.Mutex
	aptHeld   map[content.Hash]aptHeldBy // askToPrefetch
	lastState gossip.State
	published time.Time
	upRate    int64 // applied upload cap, bytes/s (0: unlimited)
	wanRate   int64 // applied WAN cap
	// membersChanged is when a member last joined or left: the WAN
	// fetcher is chosen only over a settled member list.
	membersChanged time.Time

	// What state derives from the engine's whole history and from the
	// inventory's package list, kept while they do not change: state is
	// built every couple of seconds, and a long history or a machine's
	// thousands of packages would be read again each time. Under stateMu
	// (publish holds it while it builds the state).
	stateMu     sync.Mutex
	hist        histSummary
	histVersion uint64
	histValid   bool
	invSnap     *pinv.Snapshot
	invDigest   string

	// The fleet document the members were last checked against, and
	// when (readmit; Run's goroutine alone).
	readmitTrust *credential.Trust
	readmitAt    time.Time
}

// histSummary is what a node's state says of its update history.
type histSummary struct {
	installed, failed int
	lastUpdate        time.Time
	results           []gossip.UpdateResult
}

// summarize derives a histSummary from the history, newest first.
func summarize(txs []*engine.Tx) histSummary {
	h := histSummary{results: updateResults(txs)}
	for _, tx := range txs {
		switch tx.Outcome {
		case engine.OutcomeInstalled:
			h.installed++
			if tx.Ended.After(h.lastUpdate) {
				h.lastUpdate = tx.Ended
			}
		case engine.OutcomeFailed, engine.OutcomeRolledBack:
			h.failed++
		}
	}
	return h
}

// history returns eng's history summary, read again only when it changed.
func (f *Membership) history(eng Engine) (histSummary, bool) {
	v := eng.HistoryVersion()
	if f.histValid && v == f.histVersion {
		return f.hist, true
	}
	txs, err := eng.History(0)
	if err != nil {
		return histSummary{}, false
	}
	f.hist, f.histVersion, f.histValid = summarize(txs), v, true
	return f.hist, true
}

// membershipSettle is how long the member list must stay unchanged before
// a node picks the site's WAN fetcher from it, and settleMax the longest
// it waits for that: nodes that have not heard of each other yet would
// each pick themselves.
const (
	membershipSettle = 3 * time.Second
	settleMax        = 20 * time.Second
)

// waitSettled waits until the member list has not changed for
// membershipSettle (at most settleMax).
func (f *Membership) waitSettled(ctx context.Context) {
	deadline := time.Now().Add(settleMax)
	for {
		f.mu.Lock()
		quiet := time.Since(f.membersChanged)
		f.mu.Unlock()
		if quiet >= membershipSettle || time.Now().After(deadline) {
			return
		}
		t := time.NewTimer(membershipSettle - quiet)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// readGossipKeys reads a keyring file: one base64 key per line, the
// primary first; blank lines and # comments are skipped. A file other users
// can read or change is refused.
func readGossipKeys(path string) ([][]byte, error) {
	if path == "" {
		return nil, fmt.Errorf("gossip: gossip.key_file is required: the pool is encrypted (create one with `patchring fleet keygen FILE`)")
	}
	data, err := secretfile.Read(path, "gossip key file")
	if err != nil {
		return nil, fmt.Errorf("gossip: %w", err)
	}
	var keys [][]byte
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, err := base64.StdEncoding.DecodeString(line)
		if err != nil {
			return nil, fmt.Errorf("gossip: key file %s:%d: not base64: %w", path, i+1, err)
		}
		switch len(k) {
		case 16, 24, 32:
		default:
			return nil, fmt.Errorf("gossip: key file %s:%d: a key has 16, 24 or 32 bytes, this one %d", path, i+1, len(k))
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("gossip: key file %s holds no key", path)
	}
	return keys, nil
}

// New joins nothing yet: it reads the gossip keyring, opens the gossip
// pool, the payload exchange (when p2p is on and there is a content store)
// and the LAN discovery beacon; Run runs them.
func New(cfg Config) (*Membership, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	keys, err := readGossipKeys(cfg.Gossip.KeyFile)
	if err != nil {
		return nil, err
	}
	f := &Membership{cfg: cfg, log: cfg.Log, kr: &keyring{path: cfg.Gossip.KeyFile, keys: keys}, aptHeld: map[content.Hash]aptHeldBy{}}
	host, port := "0.0.0.0", 7946
	if cfg.Gossip.Listen != "" {
		h, p, err := net.SplitHostPort(cfg.Gossip.Listen)
		if err != nil {
			return nil, fmt.Errorf("gossip.listen %q: %w", cfg.Gossip.Listen, err)
		}
		host = h
		if port, err = strconv.Atoi(p); err != nil {
			return nil, fmt.Errorf("gossip.listen %q: bad port", cfg.Gossip.Listen)
		}
	}
	gc := gossip.Config{
		Identity: cfg.Identity,
		Hostname: cfg.Hostname,
		Site:     cfg.Site,
		BindAddr: host,
		BindPort: port,
		Seeds:    cfg.Gossip.Seeds,
		Keys:     keys,
		Label:    cfg.Gossip.Label,

		PeersFile: cfg.PeersFile,
	}
	if cfg.Fleet != nil {
		gc.Admitter = gossip.FleetAdmitter{Fleet: cfg.Fleet}
	}
	if cfg.Credential != nil {
		gc.Credential = cfg.Credential()
	}
	g, err := gossip.New(gc, cfg.Log)
	if err != nil {
		return nil, err
	}
	f.g = g
	if cfg.P2P.Enabled && cfg.Content != nil {
		listen := cfg.P2P.Listen
		if listen == "" {
			listen = "/ip4/0.0.0.0/tcp/0"
		}
		x, err := exchange.New(exchange.Config{
			Store:       cfg.Content,
			Identity:    cfg.Identity,
			ListenAddrs: []string{listen},
			Logger:      cfg.Log,
		})
		if err != nil {
			g.Close()
			return nil, fmt.Errorf("p2p: %w", err)
		}
		f.x = x
		f.serveMeta()
		f.coord, err = site.New(site.Config{
			Self:        cfg.NodeID,
			Members:     f.ringMembers,
			Holders:     f.holders,
			WaitTimeout: 20 * time.Second,
			Logger:      cfg.Log,
		})
		if err == nil {
			// apt's files are asked for on demand, by whichever nodes run
			// apt: the node that ranks first for a file may not want it
			// at all, or may want it later, when its own apt run gets
			// there. So the others give it aptPatience (seconds, not the
			// payloads' 20 s) from its latest progress through the files
			// they hold (aptProgress): a fetcher running the same apt
			// cycle behind them is waited for (up to aptMaxWait), one
			// that shows nothing new is not.
			f.aptCoord, err = site.New(site.Config{
				Self: cfg.NodeID,
				Members: func() []site.Member {
					return withoutAvoided(f, f.ringMembers(), func(m site.Member) string { return m.ID })
				},
				Holders: func(key string) []string {
					return withoutAvoided(f, f.aptHolders(key), func(id string) string { return id })
				},
				Poll:        500 * time.Millisecond,
				WaitTimeout: aptPatience,
				Stagger:     aptPatience / 2,
				Progress:    f.aptProgress,
				MaxWait:     aptMaxWait,
				Logger:      cfg.Log,
			})
		}
		if err != nil {
			x.Close()
			g.Close()
			return nil, fmt.Errorf("p2p: %w", err)
		}
	}
	if f.beacon, err = f.startDiscovery(g); err != nil {
		if f.x != nil {
			f.x.Close()
		}
		g.Close()
		return nil, err
	}
	f.registerMetrics(cfg.Metrics)
	return f, nil
}

// Name names the part in the agent's logs and errors.
func (f *Membership) Name() string { return "fleet" }

// PeerFetcher is what fetches payloads through the site for the engine;
// nil when the payload exchange is off.
func (f *Membership) PeerFetcher() engine.PeerFetcher {
	if f.x == nil {
		return nil
	}
	return f
}

// Lease is the site's reboot lease, shared over gossip.
func (f *Membership) Lease() *gossip.Lease { return f.g.Lease() }

// Run runs gossip (and the exchange), publishes this node's state and
// acts on what it hears: refresh the policy when a peer holds a newer one
// (verified through TUF, never taken from the peer), admit members to the
// exchange.
func (f *Membership) Run(ctx context.Context) error {
	grp, ctx := rungroup.New(ctx)
	grp.Go("gossip", f.g.Run)
	if f.x != nil {
		grp.Go("p2p exchange", f.x.Run)
	}
	if f.beacon != nil {
		grp.Go("discovery", f.beacon.Run)
	}
	sub := f.g.Subscribe(64)
	defer sub.Close()
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	f.publish()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case ev, ok := <-sub.Events():
			if !ok {
				break loop
			}
			switch ev.Kind {
			case gossip.EventPolicyVersion:
				if f.cfg.Policy != nil && int64(ev.PolicyVersion) > f.cfg.Policy.TimestampVersion() {
					f.log.Info("fleet: a peer holds newer policy metadata; refreshing", "peer_version", ev.PolicyVersion)
					f.admit()
					f.useMetaPeers()
					f.cfg.Policy.Trigger()
				}
			default:
				if ev.Kind == gossip.EventJoin || ev.Kind == gossip.EventLeave {
					f.mu.Lock()
					f.membersChanged = time.Now()
					f.mu.Unlock()
				}
				f.admit()
				f.useMetaPeers()
			}
		case <-tick.C:
			f.readmit()
			f.publish()
			f.admit()
			f.useMetaPeers()
		}
	}
	lctx, lcancel := context.WithTimeout(context.Background(), 2*time.Second)
	f.g.Leave(lctx)
	lcancel()
	err := grp.Stop() // also when a part failed: the others stop too
	f.g.Close()
	return err
}

// readmit takes this node's credential as now installed and checks every
// member's again against the fleet document in force: a member revoked by
// a new fleet.json leaves the pool's member list (and with it the
// exchange's allow-list, the gates' counts, the lease and the root probe's
// confirmations) at the next tick; one whose credential expired within
// readmitEvery. (A member is checked when it joins and when its
// credential changes in any case.)
func (f *Membership) readmit() {
	if f.cfg.Credential != nil {
		if err := f.g.SetCredential(f.cfg.Credential()); err != nil {
			f.log.Warn("fleet: credential", "err", err)
		}
	}
	var tr *credential.Trust
	if f.cfg.Fleet != nil {
		tr = f.cfg.Fleet()
	}
	now := time.Now()
	if tr == f.readmitTrust && now.Sub(f.readmitAt) < readmitEvery {
		return
	}
	f.readmitTrust, f.readmitAt = tr, now
	f.g.Readmit()
}

// readmitEvery is how often every member's credential is checked again
// while the fleet document stays the same: expiry is the one change that
// comes without a new document.
const readmitEvery = time.Minute

// admit lets the live members of the pool connect to the exchange.
func (f *Membership) admit() {
	if f.x == nil {
		return
	}
	sharing := f.applySharing()
	var ids []peer.ID
	for _, m := range f.g.Members() {
		if m.Local || m.Liveness != gossip.LivenessAlive {
			continue
		}
		if id, err := peer.Decode(m.NodeID); err == nil {
			ids = append(ids, id)
		}
	}
	if !sharing {
		ids = nil // the policy turned sharing off: serve and fetch nothing
	}
	f.x.SetAllowed(ids)
}

// applySharing applies the signed policy's peer-sharing settings to the
// exchange (upload cap per node, WAN cap) and reports whether sharing is
// on. Without a policy, sharing is on and unlimited.
func (f *Membership) applySharing() bool {
	ps := f.sharing()
	up, wan := ps.UploadRate.BytesPerSecond(), ps.WANRate.BytesPerSecond()
	f.mu.Lock()
	changed := up != f.upRate || wan != f.wanRate
	f.upRate, f.wanRate = up, wan
	f.mu.Unlock()
	if changed {
		f.x.SetRates(up, wan)
		f.log.Info("fleet: peer sharing rates from the policy", "upload_bytes_per_s", up, "wan_bytes_per_s", wan, "enabled", ps.Enabled)
	}
	return ps.Enabled
}

func (f *Membership) currentPolicy() (*policy.Policy, string) {
	if f.cfg.CurrentPolicy == nil {
		return nil, ""
	}
	return f.cfg.CurrentPolicy()
}

func (f *Membership) sharing() policy.PeerSharing {
	if p, _ := f.currentPolicy(); p != nil {
		return p.PeerSharing
	}
	return policy.PeerSharing{Enabled: true}
}

// state is what this node tells its site about itself.
func (f *Membership) state() gossip.State {
	st := gossip.State{Tags: f.cfg.Tags, AgentVersion: version.Version}
	if f.cfg.Facts != nil {
		st.Tags = f.cfg.Facts().Tags // the credential's while fleet.json is published
	}
	if p, _ := f.currentPolicy(); p != nil {
		st.Ring, _ = policy.RingFor(p, f.cfg.Facts())
	}
	if f.cfg.Policy != nil {
		st.PolicyVersion = uint64(max(f.cfg.Policy.TimestampVersion(), 0))
	}
	if f.cfg.Inventory != nil {
		if snap := f.cfg.Inventory(); snap != nil {
			if snap != f.invSnap { // a snapshot does not change once taken
				f.invSnap, f.invDigest = snap, snap.Digest().Packages
			}
			st.InventoryDigest = f.invDigest
		}
	}
	var eng Engine
	if f.cfg.Engine != nil {
		eng = f.cfg.Engine()
	}
	if eng != nil {
		ds, _ := eng.Decisions()
		for _, dec := range ds {
			switch dec.Action {
			case "install-now", "install-at", "wait-window", "wait-gate", "wait-deferral":
				st.Updates.Pending++
			}
		}
		if h, ok := f.history(eng); ok {
			st.Results = slices.Clone(h.results) // the state outlives the cache entry
			st.Updates.Installed, st.Updates.Failed, st.LastUpdate = h.installed, h.failed, h.lastUpdate
		}
	}
	if f.cfg.Exposure != nil {
		st.Exposure = f.cfg.Exposure()
	}
	st.Format = f.cfg.Format
	var rb RebootStatus
	if f.cfg.Reboot != nil {
		rb = f.cfg.Reboot()
	}
	if rb != nil {
		rs := rb.RebootStatus()
		st.Reboot = gossip.RebootState{Required: rs.Required, Since: rs.Since, Deadline: rs.EffectiveDeadline, RefusedByUser: rs.Refused,
			HookHeld: rs.Held != "", Unhealthy: rs.Unhealthy != ""}
	}
	if f.x != nil {
		for _, a := range f.x.AddrInfo().Addrs {
			st.Addrs = append(st.Addrs, a.String())
		}
		var hashes [][32]byte
		for _, info := range f.cfg.Content.List() {
			hashes = append(hashes, info.Hash)
		}
		// Downloads in progress too: members fetch from them while they run.
		for _, h := range f.cfg.Content.Partials() {
			hashes = append(hashes, h)
		}
		st.Content = gossip.NewContentIndex(hashes)
	}
	return st
}

func (f *Membership) publish() {
	f.stateMu.Lock()
	st := f.state()
	f.stateMu.Unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	if sameState(st, f.lastState) && time.Since(f.published) < time.Minute {
		return
	}
	err := f.g.SetLocal(st)
	// A signed state must fit one gossip packet: with long addresses and
	// tags, carry fewer update results rather than no state at all.
	for errors.Is(err, gossip.ErrStateTooLarge) && len(st.Results) > 0 {
		st.Results = st.Results[:len(st.Results)/2]
		err = f.g.SetLocal(st)
	}
	if err != nil {
		f.log.Warn("fleet: publish state", "err", err)
		return
	}
	f.lastState, f.published = st, time.Now()
}

func sameState(a, b gossip.State) bool {
	return a.Ring == b.Ring && a.PolicyVersion == b.PolicyVersion && a.InventoryDigest == b.InventoryDigest &&
		a.Updates == b.Updates && a.Reboot == b.Reboot && a.Content.Equal(b.Content) && a.Exposure == b.Exposure &&
		strings.Join(a.Addrs, ",") == strings.Join(b.Addrs, ",") && a.LastUpdate.Equal(b.LastUpdate) && a.Format == b.Format
}

// ringMembers are the live members of this node's site and ring that
// install the same package format: the nodes that become due for an
// update at the same moment and want the same files, among which one
// fetches each over the WAN. Later rings find it held on the LAN. (An rpm
// node never fetches a .deb: ranked first for one, it would only make the
// Debian nodes wait out their patience.) Members that announce no format
// (older agents) are counted.
func (f *Membership) ringMembers() []site.Member {
	ring := ""
	if p, _ := f.currentPolicy(); p != nil {
		ring, _ = policy.RingFor(p, f.cfg.Facts())
	}
	return sameRing(f.g.Members(), f.cfg.Site, ring, f.cfg.Format)
}

// sameRing picks ringMembers out of members. A member whose signed state
// has not reached this node yet (StateVersion 0: memberlist reports it
// alive before gossip brings its state) is counted unless its credential
// names another site: ranked first, it is waited for; left out, the node
// ranked after it would take the first place for itself and fetch a
// second copy over the WAN.
func sameRing(members []gossip.Member, siteName, ring, format string) []site.Member {
	var out []site.Member
	for _, m := range members {
		if m.Liveness != gossip.LivenessAlive {
			continue
		}
		if m.StateVersion == 0 && !m.Local {
			// Its site is in its state too; its credential, when
			// admission is on, says it before.
			if m.Credential == nil || m.Credential.Site == siteName {
				out = append(out, site.Member{ID: m.NodeID})
			}
			continue
		}
		if m.Site != siteName {
			continue
		}
		if ring != "" && !m.Local && m.State.Ring != ring {
			continue
		}
		if !m.Local && format != "" && m.State.Format != "" && m.State.Format != format {
			continue
		}
		out = append(out, site.Member{ID: m.NodeID})
	}
	return out
}

// holders are the live members that announce holding the payload key.
func (f *Membership) holders(key string) []string {
	h, err := content.ParseHash(key)
	if err != nil {
		return nil
	}
	var out []string
	for _, m := range f.g.Members() {
		if !m.Local && m.Liveness == gossip.LivenessAlive && m.State.Content.MayHave(h) {
			out = append(out, m.NodeID)
		}
	}
	return out
}

// addrInfos turns member IDs into libp2p addresses from their gossiped
// state.
func (f *Membership) addrInfos(ids []string) []peer.AddrInfo {
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	var out []peer.AddrInfo
	for _, m := range f.g.Members() {
		if !want[m.NodeID] {
			continue
		}
		if ai, ok := memberAddrInfo(m); ok {
			out = append(out, ai)
		}
	}
	return out
}

// memberAddrInfo is member m's libp2p identity and the addresses it
// gossips; ok is false when it has no valid ID or no valid address.
func memberAddrInfo(m gossip.Member) (ai peer.AddrInfo, ok bool) {
	id, err := peer.Decode(m.NodeID)
	if err != nil {
		return ai, false
	}
	ai.ID = id
	for _, s := range m.State.Addrs {
		if a, err := ma.NewMultiaddr(s); err == nil {
			ai.Addrs = append(ai.Addrs, a)
		}
	}
	return ai, len(ai.Addrs) > 0
}

var _ engine.PeerFetcher = (*Membership)(nil)

// FetchFromPeers gets a payload for the engine: the site's chosen node
// fetches it over the WAN, the others from the LAN, falling back to the
// origin when nothing arrives. The exchange verifies the whole payload
// against h before the store shows it.
func (f *Membership) FetchFromPeers(ctx context.Context, h content.Hash, size int64, origin func(ctx context.Context, offset int64) (io.ReadCloser, error)) error {
	return f.fetchVia(ctx, f.coord, h, size, origin)
}

// withoutAvoided drops the peers the exchange currently avoids (after bad
// data or failures) from ids: for apt files, which nodes run apt for,
// one at a time, a node does not wait for a peer that lied or failed to
// fetch a file for it, nor try it again, but goes on to the next in
// rendezvous order or to the vendor.
func withoutAvoided[T any](f *Membership, ids []T, id func(T) string) []T {
	now := time.Now()
	avoid := map[string]bool{}
	for _, p := range f.x.Peers() {
		if p.AvoidUntil.After(now) {
			avoid[p.ID.String()] = true
		}
	}
	if len(avoid) == 0 {
		return ids
	}
	out := make([]T, 0, len(ids))
	for _, v := range ids {
		if !avoid[id(v)] {
			out = append(out, v)
		}
	}
	return out
}

// aptPatience is how long a node waits for the site's fetcher of an apt
// file to appear as a holder, counted from the fetcher's latest progress
// (aptProgress), before it fetches from the vendor itself; aptMaxWait caps
// that wait, well inside apt's own 120 s timeout.
const (
	aptPatience = 4 * time.Second
	aptMaxWait  = 30 * time.Second
)

// aptProgressFiles bounds how many of this node's most recently used files
// aptProgress looks for.
const aptProgressFiles = 256

// aptProgress is how far member id has come through the files this node
// holds: how many of this node's most recently used files (and downloads
// in progress) id's gossiped content index announces. It grows while id
// runs the same apt cycle behind this node, and not while it fetches
// unrelated files (except for the Bloom filter's false positives, which
// only make a node wait longer, up to aptMaxWait).
func (f *Membership) aptProgress(id string) int {
	var idx gossip.ContentIndex
	found := false
	for _, m := range f.g.Members() {
		if m.NodeID == id && !m.Local {
			idx, found = m.State.Content, true
			break
		}
	}
	if !found || idx.Len() == 0 || f.cfg.Content == nil {
		return 0
	}
	return sharedFiles(idx, f.cfg.Content.Partials(), f.cfg.Content.List())
}

// sharedFiles counts the partial downloads and the first aptProgressFiles
// of held (most recently used first) that idx announces.
func sharedFiles(idx gossip.ContentIndex, partials []content.Hash, held []content.Info) int {
	n := 0
	for _, h := range partials {
		if idx.MayHave(h) {
			n++
		}
	}
	for _, info := range held[:min(len(held), aptProgressFiles)] {
		if idx.MayHave(info.Hash) {
			n++
		}
	}
	return n
}

// AptFetcher is the site path for the apt proxy's index files and .debs:
// FetchFromPeers with the apt coordinator's shorter patience. Nil without
// the exchange.
func (f *Membership) AptFetcher() engine.PeerFetcher {
	if f.x == nil {
		return nil
	}
	return aptFetcher{f}
}

type aptFetcher struct{ f *Membership }

// AptReleases gets apt's InRelease files through the site (the apt
// proxy's SiteReleases); nil when payload sharing is off.
func (f *Membership) AptReleases() aptproxy.SiteReleases {
	if f.x == nil {
		return nil
	}
	return aptFetcher{f}
}

// aptReleaseWait bounds the wait for the site's fetcher of a release,
// which may be reading it from the vendor: apt waits 120 s for a file.
const aptReleaseWait = 30 * time.Second

// FetchRelease implements aptproxy.SiteReleases: the member ranked first
// for the distribution (among the live, not avoided members) serves it.
func (a aptFetcher) FetchRelease(ctx context.Context, durl string) ([]byte, string, error) {
	f := a.f
	owner := f.cfg.NodeID
	if f.sharing().Enabled {
		owner = f.aptCoord.Fetcher("aptrelease:" + durl)
	}
	if owner == f.cfg.NodeID {
		return nil, owner, aptproxy.ErrSiteFetcher
	}
	ctx, cancel := context.WithTimeout(ctx, aptReleaseWait)
	defer cancel()
	data, err := f.FetchMemberFile(ctx, owner, aptproxy.ReleasePath(durl), archive.MaxReleaseSize)
	return data, owner, err
}

// BadRelease implements aptproxy.SiteReleases.
func (a aptFetcher) BadRelease(from string, err error) {
	if id, derr := peer.Decode(from); derr == nil {
		a.f.x.ReportBadData(id, fmt.Errorf("apt release: %w", err))
	}
}

// ServeAptReleases serves the site's members the InRelease files this
// node fetches for them (aptproxy.ReleasePrefix); the apt proxy starts
// after the membership, so it is set here rather than in Config.
func (f *Membership) ServeAptReleases(files exchange.Files) {
	f.aptFiles.Store(&files)
}

// aptReleaseFiles serves ServeAptReleases' files once they are set.
type aptReleaseFiles struct{ f *Membership }

func (r aptReleaseFiles) OpenFile(ctx context.Context, path string) (io.ReadCloser, int64, error) {
	files := r.f.aptFiles.Load()
	if files == nil {
		return nil, 0, fmt.Errorf("%s: no apt proxy here: %w", path, exchange.ErrFileNotFound)
	}
	return (*files).OpenFile(ctx, path)
}

func (a aptFetcher) FetchFromPeers(ctx context.Context, h content.Hash, size int64, origin func(ctx context.Context, offset int64) (io.ReadCloser, error)) error {
	a.f.askToPrefetch(ctx, h)
	return a.f.fetchVia(ctx, a.f.aptCoord, h, size, origin)
}

// aptPrefetchPoll is how often a node asks the fetcher whether a file it
// asked it to prefetch is there; aptPrefetchHeld is how long a fetcher
// that said so counts as a holder (the site's gossip says so too by then).
const (
	aptPrefetchPoll = 250 * time.Millisecond
	aptPrefetchHeld = time.Minute
)

// askToPrefetch asks the site's fetcher of an apt file that no member
// holds yet to fetch it now (aptproxy.PrefetchPath), rather than when its
// own apt gets there, if ever, and asks again until it holds the file,
// gossip announces a holder, or aptMaxWait passes. A fetcher that says it
// holds the file counts as a holder at once (aptHolders): gossip takes a
// few seconds to say so on a busy site, longer than the patience. A
// fetcher that does not know the file, is busy or does not answer changes
// nothing: the coordinator's wait follows as before.
func (f *Membership) askToPrefetch(ctx context.Context, h content.Hash) {
	if !f.sharing().Enabled || len(f.holders(h.String())) > 0 {
		return
	}
	owner := f.aptCoord.Fetcher(h.String())
	if owner == f.cfg.NodeID {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, aptMaxWait)
	defer cancel()
	for {
		b, err := f.FetchMemberFile(ctx, owner, aptproxy.PrefetchPath(h), 1)
		if err != nil {
			f.log.Debug("fleet: apt prefetch request", "sha256", h.String(), "fetcher", owner, "err", err)
			return
		}
		if string(b) == aptproxy.PrefetchHeld {
			f.mu.Lock()
			f.aptHeld[h] = aptHeldBy{id: owner, until: time.Now().Add(aptPrefetchHeld)}
			f.mu.Unlock()
			return
		}
		if len(f.holders(h.String())) > 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(aptPrefetchPoll):
		}
	}
}

// aptHeldBy is a fetcher that said it holds a prefetched file.
type aptHeldBy struct {
	id    string
	until time.Time
}

// aptHolders are the holders of an apt file: gossip's, and a fetcher that
// said it holds the file after a prefetch request.
func (f *Membership) aptHolders(key string) []string {
	out := f.holders(key)
	h, err := content.ParseHash(key)
	if err != nil {
		return out
	}
	now := time.Now()
	f.mu.Lock()
	for k, v := range f.aptHeld {
		if now.After(v.until) {
			delete(f.aptHeld, k)
		}
	}
	held, ok := f.aptHeld[h]
	f.mu.Unlock()
	if ok && !slices.Contains(out, held.id) {
		out = append(out, held.id)
	}
	return out
}

func (f *Membership) fetchVia(ctx context.Context, coord *site.Coordinator, h content.Hash, size int64, origin func(ctx context.Context, offset int64) (io.ReadCloser, error)) error {
	pf := &payloadFetch{f: f, h: h, size: size, origin: origin}
	if !f.sharing().Enabled {
		// Sharing is off: straight from the origin, through the exchange
		// so the WAN cap still applies.
		return pf.f.x.Fetch(ctx, h, size, nil, exchange.FetchOptions{Origin: exchange.OriginFunc(origin), OriginFirst: true})
	}
	if len(f.holders(h.String())) == 0 {
		f.waitSettled(ctx)
	}
	via, err := coord.Obtain(ctx, h.String(), pf)
	if err != nil {
		return err
	}
	f.log.Info("fleet: payload obtained", "sha256", h.String(), "via", via.String())
	f.publish()
	return nil
}

type payloadFetch struct {
	f      *Membership
	h      content.Hash
	size   int64
	origin func(ctx context.Context, offset int64) (io.ReadCloser, error)
}

func (p *payloadFetch) FromOrigin(ctx context.Context) error {
	return p.f.x.Fetch(ctx, p.h, p.size, p.f.addrInfos(p.f.holders(p.h.String())), exchange.FetchOptions{
		Origin: exchange.OriginFunc(p.origin), OriginFirst: true,
	})
}

func (p *payloadFetch) FromPeers(ctx context.Context, holders []string) error {
	// No origin here: holders may hold it partly (downloads in progress are
	// announced), and who goes to the origin is the coordinator's choice.
	return p.f.x.Fetch(ctx, p.h, p.size, p.f.addrInfos(holders), exchange.FetchOptions{
		MorePeers: func() []peer.AddrInfo { return p.f.addrInfos(p.f.holders(p.h.String())) },
	})
}

// Fleet returns the site as gossip describes it.
func (f *Membership) Fleet() apitypes.Fleet {
	out := apitypes.Fleet{Site: f.cfg.Site}
	for _, r := range f.g.Refused() {
		out.Refused = append(out.Refused, apitypes.RefusedMember{NodeID: r.NodeID, Addr: r.Addr, Reason: r.Reason, At: r.At, Count: r.Count})
	}
	for _, m := range f.g.Members() {
		site, tags := m.Site, m.State.Tags
		var credExp time.Time
		if m.Credential != nil {
			site, tags, credExp = m.Credential.Site, m.Credential.Tags, m.Credential.NotAfter
		}
		out.Members = append(out.Members, apitypes.FleetMember{
			Credentialed: m.Credential != nil, CredExpires: credExp, Visiting: m.Visiting,
			NodeID: m.NodeID, Hostname: m.Hostname, Site: site, Ring: m.State.Ring, Format: m.State.Format, Tags: tags,
			Liveness: m.Liveness.String(), LastSeen: m.LastSeen, Local: m.Local,
			PolicyVersion: m.State.PolicyVersion, AgentVersion: m.State.AgentVersion,
			Pending: m.State.Updates.Pending, Installed: m.State.Updates.Installed, Failed: m.State.Updates.Failed,
			LastUpdate:     m.State.LastUpdate,
			RebootRequired: m.State.Reboot.Required, RebootDeadline: m.State.Reboot.Deadline, RebootRefused: m.State.Reboot.RefusedByUser,
			RebootHeld: m.State.Reboot.HookHeld, Unhealthy: m.State.Reboot.Unhealthy,
			Content: m.State.Content.Len(),
			Exposure: apitypes.VulnSummary{Critical: m.State.Exposure.Critical, High: m.State.Exposure.High,
				Medium: m.State.Exposure.Medium, Low: m.State.Exposure.Low, KEV: m.State.Exposure.KEV,
				NoFix: m.State.Exposure.NoFix, Version: int64(min(m.State.Exposure.AdvisoryVersion, 1<<62))},
		})
	}
	return out
}

// Peers returns this node's payload traffic with each peer.
func (f *Membership) Peers() apitypes.Peers {
	var out apitypes.Peers
	if f.x == nil {
		return out
	}
	t := f.x.Totals()
	out.FromPeers, out.FromOrigin, out.ToPeers = t.FromPeers, t.FromOrigin, t.ToPeers
	out.BandwidthOptimization = t.BandwidthOptimization()
	for _, p := range f.x.Peers() {
		out.Peers = append(out.Peers, apitypes.PeerTraffic{ID: p.ID.String(), BytesIn: p.BytesIn, BytesOut: p.BytesOut,
			BadData: p.BadData, Failures: p.Failures, AvoidUntil: p.AvoidUntil, LastError: p.LastError})
	}
	return out
}

// updateResults are the latest outcomes of this node's install
// transactions, newest first, one per update: what the site's ring gates
// count. Every package a batch transaction installed is an update of its
// own (what apt's solver added too); a removal is not an update. A failed
// batch is followed by one transaction per dependency component, whose
// newer outcomes then say which part failed.
func updateResults(txs []*engine.Tx) []gossip.UpdateResult {
	seen := map[gossip.ResultID]bool{}
	var out []gossip.UpdateResult
	for _, tx := range txs { // newest first
		if tx.Kind != engine.KindInstall || tx.Outcome == "" || tx.Outcome == engine.OutcomeAborted {
			continue
		}
		for _, it := range tx.Items {
			if it.To == "" {
				continue
			}
			r := gossip.NewUpdateResult(it.Source, it.Package, it.To, tx.Outcome == engine.OutcomeInstalled && tx.RolledBy == 0)
			if seen[r.ID] || len(out) >= gossip.MaxResults {
				continue
			}
			seen[r.ID] = true
			out = append(out, r)
		}
	}
	return out
}

// siteResults is what the site's members gossip about their outcomes,
// counted per ring and update: the FleetView the engine's gates read.
type siteResults struct {
	total  map[string]int // members per ring
	byRing map[string]map[gossip.ResultID]policy.RingStats
}

var _ policy.FleetView = (*siteResults)(nil)

// Get implements policy.FleetView.
func (s *siteResults) Get(ring string, k policy.UpdateKey) policy.RingStats {
	rs := s.byRing[ring][gossip.ResultIDOf(k.Source, k.Package, k.Version)]
	rs.Total = s.total[ring]
	return rs
}

// FleetStats counts, per ring and update, the site's members that
// succeeded or failed with it, from what the members gossip about
// themselves. Gates compare these with the policy's thresholds; a member
// can lie about itself, which moves a gate by one node at most. Only
// admitted members are listed (with fleet.json published: distinct nodes
// with a valid credential, one vote each, as the node ID is the
// credential's); members visiting from another site do not count.
func (f *Membership) FleetStats() policy.FleetView {
	return countResults(f.g.Members())
}

func countResults(members []gossip.Member) *siteResults {
	s := &siteResults{total: map[string]int{}, byRing: map[string]map[gossip.ResultID]policy.RingStats{}}
	for _, m := range members {
		if m.State.Ring == "" || (m.Liveness != gossip.LivenessAlive && !m.Local) || m.Visiting {
			continue
		}
		s.total[m.State.Ring]++
		byUpdate := s.byRing[m.State.Ring]
		if byUpdate == nil {
			byUpdate = map[gossip.ResultID]policy.RingStats{}
			s.byRing[m.State.Ring] = byUpdate
		}
		counted := map[gossip.ResultID]bool{} // one vote per member and update
		for _, r := range m.State.Results {
			if counted[r.ID] {
				continue
			}
			counted[r.ID] = true
			rs := byUpdate[r.ID]
			if r.Succeeded {
				rs.Succeeded++
			} else {
				rs.Failed++
			}
			byUpdate[r.ID] = rs
		}
	}
	return s
}

// Rejoined reports whether this node is back in its site's gossip: at
// least one other member is alive, or, for a node with no seeds to join
// (a site of one), its own state is published. A self-updated agent must
// rejoin before it counts as healthy.
func (f *Membership) Rejoined() error {
	local := false
	for _, m := range f.g.Members() {
		if m.Local {
			local = true
			continue
		}
		if m.Liveness == gossip.LivenessAlive {
			return nil
		}
	}
	switch {
	case !local:
		return errors.New("gossip: this node's state is not published yet")
	case len(f.cfg.Gossip.Seeds) > 0:
		return fmt.Errorf("gossip: no other member of the site is alive yet (seeds %s)", strings.Join(f.cfg.Gossip.Seeds, ", "))
	}
	return nil
}
