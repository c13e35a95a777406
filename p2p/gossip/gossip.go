package gossip

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Errors callers branch on.
var (
	ErrClosed         = errors.New("gossip is closed")
	ErrStateTooLarge  = errors.New("state does not fit a gossip message")
	ErrAlreadyRunning = errors.New("gossip is already running")
)

const (
	// maxUnknown bounds the members we track that memberlist has not (yet)
	// reported, so signed messages about made-up node IDs cannot grow the
	// table without limit.
	maxUnknown = 1024
	// maxLamportJump rejects messages whose Lamport time is absurdly far
	// ahead of ours: a member could otherwise push every clock to the top
	// of the range and make all later messages look stale.
	maxLamportJump = 1 << 32
	// leaveTimeout bounds the graceful leave when Run's context ends.
	leaveTimeout = 3 * time.Second
	// pullInterval rate-limits state requests to and replies for one node.
	pullInterval = time.Second
	// maxPullsPerRound caps the state requests one pull round sends (see
	// duePullsLocked).
	maxPullsPerRound = 4
	// gossipNodes is how many members each gossip round sends to
	// (memberlist's LAN default is 3 every 200 ms). Four every 300 ms
	// spread a message as fast (each round reaches more) with a third
	// fewer rounds, and an idle agent wakes for every round.
	gossipNodes = 4
	// maxValidNames bounds the cache of member names already checked.
	maxValidNames = 8192
)

// Gossip is one node's membership in its site's gossip pool.
type Gossip struct {
	cfg   Config
	log   *slog.Logger
	clock Clock
	id    peer.ID
	name  string
	priv  crypto.PrivKey

	ml        *memberlist.Memberlist
	localAddr string
	keyring   *memberlist.Keyring
	lamport   lamportClock
	live      atomic.Int32 // alive or suspect members, self included

	// One queue per broadcast class; leases go first, content last.
	leaseQ, stateQ, contentQ *memberlist.TransmitLimitedQueue

	mu       sync.Mutex
	members  map[string]*member
	unknown  int
	hint     PolicyHint
	pulls    map[string]time.Time // nodes whose meta shows a state we lack, since when
	replies  map[string]struct{}  // nodes that asked for ours
	lastPull map[string]time.Time
	valid    map[string]bool // member names that passed NotifyAlive's check
	left     bool
	leaseTTL map[string]time.Duration // per group, the TTL TryAcquire was last given
	// credential is this node's own, in its node meta.
	credential  []byte
	refusals    map[string]*Refusal // nodes refused admission, bounded
	refusedBy   map[string]uint64   // refusals by RefusalReason
	selfProblem string              // why our own credential fails, last logged

	leaseMu sync.Mutex // serializes TryAcquire / Release

	// testDrop, set by tests only, loses the verified signed messages it
	// returns true for, as a lossy or slow network would.
	testDrop atomic.Pointer[func(p *parsedMsg) bool]

	subsMu sync.Mutex
	subs   map[*Subscription]struct{}

	metaCh chan struct{}
	pullCh chan struct{}

	seedMu     sync.Mutex
	discovered map[string]*discoveredSeed // from AddSeeds, by host:port
	seedCh     chan struct{}              // wakes the join loop for a new candidate

	stats counters

	lifeMu   sync.Mutex // serializes Leave and shutdown
	closed   atomic.Bool
	running  atomic.Bool
	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup // subscription pumps
}

// member is what this node knows about one node (itself included).
type member struct {
	name     string
	id       peer.ID
	pub      crypto.PubKey
	known    bool // memberlist reported it
	addr     string
	node     memberlist.Node // our copy: memberlist's own nodes change under it
	liveness Liveness
	lastSeen time.Time // when it stopped being alive (lastSeenAt)
	changed  time.Time // when liveness last changed or we first heard of it
	meta     nodeMeta
	leaving  bool // its last state said it is leaving on purpose
	// admitted: its credential verified (always true with admission off);
	// cred is what it says (nil with admission off); refusal says why not.
	admitted bool
	cred     *Credential
	refusal  string

	hostname, site string
	keyring        KeyringInfo
	state          State
	stateLT        uint64
	stateMsg       []byte
	contentLT      uint64
	contentMsg     []byte
	leases         map[string]*leaseRecord
}

type leaseRecord struct {
	ltime  uint64
	phase  leasePhase
	expiry time.Time
	// at is the clock time a remote record arrived (zero for this node's
	// own): a remote expiry counts only up to at + the lease TTL.
	at  time.Time
	msg []byte
}

// until returns when r stops counting: its expiry as sent, but for a
// record from another member at most ttl (the policy's lease TTL) after it
// arrived. A member holding the fleet key could otherwise hold a slot for
// a century with one message.
func (r *leaseRecord) until(ttl time.Duration) time.Time {
	if r.at.IsZero() || ttl <= 0 {
		return r.expiry
	}
	if c := r.at.Add(ttl); c.Before(r.expiry) {
		return c
	}
	return r.expiry
}

// PolicyHint is the highest policy (TUF timestamp) version heard from a
// peer. It only suggests refreshing the policy through TUF.
type PolicyHint struct {
	Version uint64
	From    string // node ID that announced it
	HeardAt time.Time
}

// New validates cfg, binds the gossip port and starts memberlist's
// listeners. Call Run to join the pool; call Close if Run is never called.
// A nil logger discards logs.
func New(cfg Config, logger *slog.Logger) (*Gossip, error) {
	c, id, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("node", id.ShortString())
	keyring, err := memberlist.NewKeyring(c.Keys[1:], c.Keys[0])
	if err != nil {
		return nil, fmt.Errorf("gossip keyring: %w", err)
	}
	g := &Gossip{
		cfg:       c,
		log:       logger,
		clock:     c.Clock,
		id:        id,
		name:      id.String(),
		priv:      c.Identity,
		keyring:   keyring,
		members:   make(map[string]*member),
		pulls:     make(map[string]time.Time),
		valid:     make(map[string]bool),
		replies:   make(map[string]struct{}),
		lastPull:  make(map[string]time.Time),
		leaseTTL:  make(map[string]time.Duration),
		refusals:  make(map[string]*Refusal),
		refusedBy: make(map[string]uint64),

		credential: c.Credential,
		subs:       make(map[*Subscription]struct{}),
		metaCh:     make(chan struct{}, 1),
		pullCh:     make(chan struct{}, 1),
		seedCh:     make(chan struct{}, 1),
		stop:       make(chan struct{}),

		discovered: make(map[string]*discoveredSeed),
	}
	mlc := memberlist.DefaultLANConfig()
	numNodes := func() int { return max(1, int(g.live.Load())) }
	g.leaseQ = &memberlist.TransmitLimitedQueue{NumNodes: numNodes, RetransmitMult: mlc.RetransmitMult}
	g.stateQ = &memberlist.TransmitLimitedQueue{NumNodes: numNodes, RetransmitMult: mlc.RetransmitMult}
	g.contentQ = &memberlist.TransmitLimitedQueue{NumNodes: numNodes, RetransmitMult: mlc.RetransmitMult}

	self := &member{name: g.name, id: id, pub: c.Identity.GetPublic(), known: true,
		liveness: LivenessAlive, hostname: c.Hostname, site: c.Site, changed: g.clock.Now(), admitted: true}
	g.members[g.name] = self
	g.live.Store(1) // onNode counts the others as they come and go
	if cred, err := g.admitCheck(g.name, c.Credential); err == nil {
		self.cred = cred
	} else {
		g.selfProblemOnce(err)
	}
	g.mu.Lock()
	err = g.announceStateLocked()
	g.mu.Unlock()
	if err != nil {
		return nil, err
	}

	tr, err := newTransport(c.BindAddr, c.BindPort, logger)
	if err != nil {
		return nil, fmt.Errorf("start gossip on %s: %w", net.JoinHostPort(c.BindAddr, strconv.Itoa(c.BindPort)), err)
	}
	mlc.Name = g.name
	mlc.Transport = tr
	mlc.BindAddr = c.BindAddr
	mlc.BindPort = tr.port()
	mlc.AdvertisePort = tr.port()
	mlc.AdvertiseAddr = c.AdvertiseAddr
	mlc.Keyring = keyring
	mlc.Label = c.Label
	mlc.ProbeInterval = c.ProbeInterval
	mlc.ProbeTimeout = c.ProbeTimeout
	mlc.GossipInterval = c.GossipInterval
	mlc.GossipNodes = gossipNodes
	mlc.PushPullInterval = c.PushPullInterval
	mlc.SuspicionMult = c.SuspicionMult
	mlc.GossipToTheDeadTime = max(c.PushPullInterval, 10*c.ProbeInterval)
	// A node that restarts on another address (DHCP) may take its name back
	// once its old incarnation has been dead this long.
	mlc.DeadNodeReclaimTime = 30 * time.Second
	// Our messages are compact and signed (incompressible); memberlist's
	// per-packet LZW costs more CPU than the LAN bandwidth it saves.
	mlc.EnableCompression = false
	mlc.DelegateProtocolVersion, mlc.DelegateProtocolMin, mlc.DelegateProtocolMax = 1, 1, 1
	mlc.Delegate = &delegate{g}
	mlc.Events = &eventDelegate{g}
	mlc.Alive = &aliveDelegate{g}
	mlc.Merge = &mergeDelegate{g}
	mlc.Conflict = &conflictDelegate{g}
	mlc.Logger = newStdLogger(logger)
	ml, err := memberlist.Create(mlc)
	if err != nil {
		_ = tr.Shutdown()
		return nil, fmt.Errorf("start gossip on %s: %w", net.JoinHostPort(c.BindAddr, strconv.Itoa(c.BindPort)), err)
	}
	g.ml = ml
	// memberlist's LocalNode is not safe to read while it updates the
	// node, so read the address once, before anything runs.
	g.localAddr = ml.LocalNode().Address()
	return g, nil
}

// NodeID is this node's ID (its libp2p peer ID).
func (g *Gossip) NodeID() string { return g.name }

// LocalAddr is the host:port this node's gossip listens on and advertises;
// other nodes can use it as a seed.
func (g *Gossip) LocalAddr() string { return g.localAddr }

// Run joins the seeds (after a random delay of up to Config.JoinJitter, then
// with jittered exponential backoff, and again whenever the node finds
// itself alone) and the candidates offered by AddSeeds, keeps the member table fresh and serves state requests,
// until ctx ends (then it leaves the pool gracefully and shuts down) or
// Close is called (then it stops at once). It returns nil on a clean stop.
func (g *Gossip) Run(ctx context.Context) error {
	if g.closed.Load() {
		return ErrClosed
	}
	if !g.running.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	g.loadPeers()
	for _, loop := range []func(context.Context){g.joinLoop, g.maintainLoop, g.metaLoop, g.pullLoop, g.peersLoop} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			loop(ctx)
		}()
	}
	select {
	case <-ctx.Done():
	case <-g.stop:
	}
	cancel()
	wg.Wait()
	if !g.closed.Load() {
		lctx, lcancel := context.WithTimeout(context.WithoutCancel(ctx), leaveTimeout)
		if err := g.Leave(lctx); err != nil {
			g.log.Warn("gossip leave on shutdown", "err", err)
		}
		lcancel()
	}
	return g.shutdown()
}

// Leave tells the pool this node is leaving on purpose (others mark it
// left rather than dead) and waits for the message to go out, at most until
// ctx ends. The node keeps its listeners until Run returns or Close.
func (g *Gossip) Leave(ctx context.Context) error {
	g.lifeMu.Lock()
	defer g.lifeMu.Unlock()
	if g.closed.Load() {
		return ErrClosed
	}
	timeout := leaveTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(d), time.Millisecond)
	}
	// Say so in a signed state first: memberlist's notice does not tell
	// the others whether a node left or died.
	g.mu.Lock()
	g.left = true
	self := g.members[g.name]
	self.leaving = true
	err := g.announceStateLocked()
	msg := self.stateMsg
	g.mu.Unlock()
	if err != nil {
		return fmt.Errorf("announce leave: %w", err)
	}
	g.sendDirect(msg)
	if err := g.ml.Leave(timeout); err != nil {
		return fmt.Errorf("leave gossip pool: %w", err)
	}
	return nil
}

// Close stops the node at once, without a leave message (the pool will
// find it dead). Run returns after Close. Safe to call more than once.
func (g *Gossip) Close() error { return g.shutdown() }

// shutdown marks the node closed (so Run will not leave gracefully after
// it), stops memberlist, wakes Run and ends the subscriptions.
func (g *Gossip) shutdown() error {
	g.lifeMu.Lock()
	g.closed.Store(true)
	err := g.ml.Shutdown()
	g.lifeMu.Unlock()
	g.stopOnce.Do(func() { close(g.stop) })
	g.closeSubs()
	if err != nil {
		return fmt.Errorf("shut down gossip: %w", err)
	}
	return nil
}

// SetLocal replaces this node's announced state. Only what changed is
// re-announced, each part with a new Lamport time.
func (g *Gossip) SetLocal(s State) error {
	if err := validateState(&s); err != nil {
		return fmt.Errorf("set local gossip state: %w", err)
	}
	s = cloneState(s)
	for _, t := range []*time.Time{&s.Reboot.Since, &s.Reboot.Deadline, &s.LastUpdate} {
		*t = fromMillis(toMillis(*t)) // what peers will see
	}
	if g.closed.Load() {
		return ErrClosed
	}
	g.mu.Lock()
	self := g.members[g.name]
	next := s
	next.Content = self.state.Content // the index is announced on its own
	var err error
	stateChanged := !equalStates(&self.state, &next)
	var pushMsg []byte
	if stateChanged {
		prev := self.state
		self.state = next
		if err = g.announceStateLocked(); err != nil {
			self.state, stateChanged = prev, false
		} else if next.PolicyVersion > prev.PolicyVersion {
			pushMsg = self.stateMsg
		}
	}
	contentChanged := err == nil && !self.state.Content.Equal(s.Content)
	if contentChanged {
		self.state.Content = s.Content
		g.announceContentLocked()
	}
	g.mu.Unlock()
	if err != nil {
		return fmt.Errorf("set local gossip state: %w", err)
	}
	if pushMsg != nil {
		g.push(pushMsg, g.name)
	}
	if stateChanged || contentChanged {
		g.signal(g.metaCh)
		g.emit(EventUpdate, g.name, 0)
	}
	return nil
}

// push sends a state message that carries a newer policy version at once
// to pushFanout random live members (not this node, not the one it is
// about), besides queueing it for the gossip rounds. Each node pushes a
// policy version once, when it first learns it (its hint rises, or its own
// state carries it), so a new version crosses the site at the speed of the
// network and the nodes' processing, not one gossip interval per hop: it
// is the hint every agent acts on (it refreshes its policy through TUF),
// and a rollback order or an urgent update rides on it. The cost is
// pushFanout packets per node per policy version.
func (g *Gossip) push(msg []byte, about string) {
	members := g.ml.Members()
	k := pushFanout(len(members))
	sent := 0
	for _, i := range rand.Perm(len(members)) {
		n := members[i]
		if n.Name == g.name || n.Name == about || n.State != memberlist.StateAlive {
			continue
		}
		if err := g.ml.SendBestEffort(n, msg); err != nil {
			g.log.Debug("push policy version", "to", n.Name, "err", err)
			continue
		}
		g.stats.pushed.Add(1)
		if sent++; sent == k {
			return
		}
	}
}

// pushFanout is how many members a node pushes a new policy version to in
// a pool of n: ln(n) + 5. When every node that learns it pushes to k
// random others, a node is missed with probability about e^-k, so the push
// alone reaches all n with probability about exp(-n e^-k) = exp(-e^-5) =
// 0.993 whatever the pool's size; the gossip rounds reach the rest. With 4
// (gossipNodes) about 2 % of a 1,000-member site were left to the gossip
// rounds, which a busy pool can hold up for minutes.
func pushFanout(n int) int {
	return max(gossipNodes, int(math.Ceil(math.Log(float64(max(n, 1)))))+5)
}

// Members returns every member this node knows (itself included), sorted
// by node ID. Dead and departed members stay for Config.DeadRetention.
func (g *Gossip) Members() []Member {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]Member, 0, len(g.members))
	for _, m := range g.members {
		if m.known && m.admitted {
			out = append(out, g.viewLocked(m))
		}
	}
	slices.SortFunc(out, func(a, b Member) int { return cmp.Compare(a.NodeID, b.NodeID) })
	return out
}

// Member returns one member by node ID.
func (g *Gossip) Member(nodeID string) (Member, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	m, ok := g.members[nodeID]
	if !ok || !m.known || !m.admitted {
		return Member{}, false
	}
	return g.viewLocked(m), true
}

func (g *Gossip) viewLocked(m *member) Member {
	v := Member{
		NodeID:       m.name,
		Hostname:     m.hostname,
		Site:         m.site,
		Addr:         m.addr,
		Liveness:     m.liveness,
		LastSeen:     m.lastSeenAt(g.clock.Now()),
		Local:        m.name == g.name,
		State:        cloneState(m.state),
		StateVersion: m.stateLT,
		Keyring:      KeyringInfo{Primary: m.keyring.Primary, Installed: slices.Clone(m.keyring.Installed)},
		Visiting:     g.visitingLocked(m),
	}
	if m.cred != nil {
		c := *m.cred
		c.Tags = slices.Clone(c.Tags)
		v.Credential = &c
	}
	if v.Local {
		v.LastSeen = g.clock.Now()
		if g.left {
			v.Liveness = LivenessLeft
		}
	}
	return v
}

// PolicyHint returns the highest policy version heard from another node
// (zero if none). It is a hint to refresh the policy through TUF, never a
// reason to trust anything.
func (g *Gossip) PolicyHint() PolicyHint {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.hint
}

// Stats counts what the gossip layer accepted and dropped.
type Stats struct {
	Accepted     uint64 // signed messages applied
	Duplicates   uint64 // not newer than what we hold
	Malformed    uint64 // failed to decode
	Oversized    uint64 // over a size or count limit
	BadSignature uint64 // signature did not verify
	Rejected     uint64 // decoded and signed, but refused (e.g. absurd Lamport time, table full)
	// Refused counts admission refusals: members without a credential that
	// verifies, and signed messages about them not passed on.
	Refused uint64
	// Pushed counts policy-version messages sent at once (see push).
	Pushed uint64
	// Pulled counts state requests sent to members whose meta showed a
	// state newer than the one gossip had brought (see pullLoop).
	Pulled uint64
}

type counters struct {
	accepted, duplicates, malformed, oversized, badSignature, rejected, refused, pushed, pulled atomic.Uint64
}

// Stats returns the message counters.
func (g *Gossip) Stats() Stats {
	return Stats{
		Accepted:     g.stats.accepted.Load(),
		Duplicates:   g.stats.duplicates.Load(),
		Malformed:    g.stats.malformed.Load(),
		Oversized:    g.stats.oversized.Load(),
		BadSignature: g.stats.badSignature.Load(),
		Rejected:     g.stats.rejected.Load(),
		Pushed:       g.stats.pushed.Load(),
		Pulled:       g.stats.pulled.Load(),
		Refused:      g.stats.refused.Load(),
	}
}

// KeyFingerprint is the short, non-secret fingerprint of a gossip key that
// members announce (KeyringInfo) so that a rotation can be followed.
func KeyFingerprint(key []byte) string {
	sum := sha256.Sum256(append([]byte("patchring-gossip-key\x00"), key...))
	return hex.EncodeToString(sum[:fingerprintLen])
}

// InstallKey adds a key this node accepts (decrypts with), keeping the
// primary. First step of a rotation, done on every node.
func (g *Gossip) InstallKey(key []byte) error {
	if err := g.keyring.AddKey(append([]byte(nil), key...)); err != nil {
		return fmt.Errorf("install gossip key %s: %w", KeyFingerprint(key), err)
	}
	return g.keyringChanged()
}

// UseKey makes an installed key the primary (encrypting) key. Second step,
// done on every node once every node has installed the key.
func (g *Gossip) UseKey(key []byte) error {
	if err := g.keyring.UseKey(key); err != nil {
		return fmt.Errorf("use gossip key %s: %w", KeyFingerprint(key), err)
	}
	return g.keyringChanged()
}

// RemoveKey drops a key that is not the primary. Last step, done on every
// node once every node uses the new key.
func (g *Gossip) RemoveKey(key []byte) error {
	fp := KeyFingerprint(key)
	if !slices.Contains(g.Keyring().Installed, fp) {
		return fmt.Errorf("remove gossip key %s: not installed", fp)
	}
	if err := g.keyring.RemoveKey(key); err != nil {
		return fmt.Errorf("remove gossip key %s: %w", fp, err)
	}
	return g.keyringChanged()
}

// Keyring returns the fingerprints of this node's keys.
func (g *Gossip) Keyring() KeyringInfo {
	return keyringInfo(g.keyring)
}

func keyringInfo(k *memberlist.Keyring) KeyringInfo {
	var info KeyringInfo
	info.Primary = KeyFingerprint(k.GetPrimaryKey())
	for _, key := range k.GetKeys() {
		info.Installed = append(info.Installed, KeyFingerprint(key))
	}
	slices.Sort(info.Installed)
	return info
}

func (g *Gossip) keyringChanged() error {
	g.mu.Lock()
	err := g.announceStateLocked()
	g.mu.Unlock()
	if err != nil {
		return fmt.Errorf("announce keyring: %w", err)
	}
	g.signal(g.metaCh)
	return nil
}

// --- own messages ---

// sign wraps a body in a signed envelope with the next Lamport time.
func (g *Gossip) sign(typ msgType, body []byte) ([]byte, uint64, error) {
	e := envelope{typ: typ, node: g.id, ltime: g.lamport.Increment(), body: body}
	sig, err := g.priv.Sign(e.signingInput(g.cfg.Label))
	if err != nil {
		return nil, 0, fmt.Errorf("sign %s message: %w", typ, err)
	}
	e.sig = sig
	raw := e.marshal()
	if len(raw) > maxBroadcastLen {
		return nil, 0, fmt.Errorf("%w: %s message is %d bytes, limit %d", ErrStateTooLarge, typ, len(raw), maxBroadcastLen)
	}
	return raw, e.ltime, nil
}

func (g *Gossip) announceStateLocked() error {
	self := g.members[g.name]
	body := stateBody{Hostname: g.cfg.Hostname, Site: g.cfg.Site, State: self.state,
		Keyring: keyringInfo(g.keyring), Leaving: self.leaving}
	body.State.Content = ContentIndex{}
	raw, lt, err := g.sign(msgState, body.marshal())
	if err != nil {
		return err
	}
	self.stateMsg, self.stateLT, self.keyring = raw, lt, body.Keyring
	g.stateQ.QueueBroadcast(&broadcast{name: "s/" + g.name, msg: raw})
	return nil
}

func (g *Gossip) announceContentLocked() {
	self := g.members[g.name]
	raw, lt, err := g.sign(msgContent, self.state.Content.marshal())
	if err != nil {
		// A content index is at most ~600 bytes; this is a bug.
		g.log.Error("announce content index", "err", err)
		return
	}
	self.contentMsg, self.contentLT = raw, lt
	g.contentQ.QueueBroadcast(&broadcast{name: "c/" + g.name, msg: raw})
}

func (g *Gossip) announceLeaseLocked(group string, phase leasePhase, expiry time.Time) ([]byte, error) {
	self := g.members[g.name]
	body := leaseBody{Group: group, Phase: phase, Expiry: fromMillis(toMillis(expiry))}
	raw, lt, err := g.sign(msgLease, body.marshal())
	if err != nil {
		return nil, err
	}
	if self.leases == nil {
		self.leases = make(map[string]*leaseRecord)
	}
	self.leases[group] = &leaseRecord{ltime: lt, phase: phase, expiry: body.Expiry, msg: raw}
	g.leaseQ.QueueBroadcast(&broadcast{name: "l/" + g.name + "/" + group, msg: raw})
	return raw, nil
}

// --- incoming messages ---

func (g *Gossip) drop(err error, what string) {
	switch {
	case errors.Is(err, errOversized):
		g.stats.oversized.Add(1)
	case errors.Is(err, errMalformed):
		g.stats.malformed.Add(1)
	default:
		g.stats.rejected.Add(1)
	}
	g.log.Warn("dropped gossip input", "from", what, "err", err)
}

// handle processes one user message. rebroadcast is false for messages
// learned in a push/pull exchange (the peer already spreads them).
func (g *Gossip) handle(raw []byte, rebroadcast bool, via string) {
	if len(raw) == 0 {
		g.drop(malformedf("empty message"), via)
		return
	}
	switch t := msgType(raw[0]); t {
	case msgState, msgContent, msgLease:
		g.handleSigned(raw, rebroadcast, via)
	case msgPushPull:
		// A node's reply to our state request: a bundle of its messages.
		g.mergeRemoteState(raw, via)
	case msgStateRequest:
		id, err := unmarshalStateRequest(raw)
		if err != nil {
			g.drop(err, via)
			return
		}
		g.mu.Lock()
		if m, ok := g.members[id.String()]; ok && m.known && id != g.id {
			g.replies[id.String()] = struct{}{}
		}
		g.mu.Unlock()
		g.signal(g.pullCh)
	default:
		g.drop(malformedf("unknown message type %d", uint8(t)), via)
	}
}

type parsedMsg struct {
	env     envelope
	state   stateBody
	content ContentIndex
	lease   leaseBody
}

func parseSigned(raw []byte) (parsedMsg, error) {
	var p parsedMsg
	if len(raw) > maxBroadcastLen {
		return p, fmt.Errorf("%w: signed message of %d bytes, limit %d", errOversized, len(raw), maxBroadcastLen)
	}
	e, err := unmarshalEnvelope(raw)
	if err != nil {
		return p, err
	}
	p.env = e
	switch e.typ {
	case msgState:
		p.state, err = unmarshalStateBody(e.body)
	case msgContent:
		p.content, err = unmarshalContentIndex(e.body)
	case msgLease:
		p.lease, err = unmarshalLeaseBody(e.body)
	}
	return p, err
}

// versionLocked is the Lamport time of what m holds for p's class.
func (m *member) versionLocked(p *parsedMsg) uint64 {
	switch p.env.typ {
	case msgState:
		return m.stateLT
	case msgContent:
		return m.contentLT
	case msgLease:
		if r := m.leases[p.lease.Group]; r != nil {
			return r.ltime
		}
	}
	return 0
}

func (g *Gossip) handleSigned(raw []byte, rebroadcast bool, via string) {
	p, err := parseSigned(raw)
	if err != nil {
		g.drop(err, via)
		return
	}
	name := p.env.node.String()

	// Cheap duplicate check before the signature.
	g.mu.Lock()
	var pub crypto.PubKey
	m := g.members[name]
	if m != nil {
		if p.env.ltime <= m.versionLocked(&p) {
			// A claim heard again (sent again to us, or gossiped) is
			// answered again: the first answer may have been lost.
			// Only the very message verified before is.
			var answer []byte
			if r := m.leases[p.lease.Group]; p.env.typ == msgLease && p.lease.Phase == leaseClaim && r != nil && r.ltime == p.env.ltime && bytes.Equal(r.msg, raw) {
				answer = g.leaseAnswerLocked(m, p.lease.Group, p.env.ltime)
			}
			node := m.node
			g.mu.Unlock()
			g.stats.duplicates.Add(1)
			g.sendAnswer(&node, answer)
			return
		}
		pub = m.pub
	}
	g.mu.Unlock()
	if p.env.ltime > g.lamport.Time()+maxLamportJump {
		g.drop(fmt.Errorf("%s message from %s: Lamport time %d is too far ahead of ours (%d)", p.env.typ, name, p.env.ltime, g.lamport.Time()), via)
		return
	}
	if pub == nil {
		if pub, err = p.env.node.ExtractPublicKey(); err != nil {
			g.drop(malformedf("node %s: no public key in ID: %v", name, err), via)
			return
		}
	}
	if ok, err := pub.Verify(p.env.signingInput(g.cfg.Label), p.env.sig); !ok || err != nil {
		g.stats.badSignature.Add(1)
		g.log.Warn("dropped gossip message with a bad signature", "about", name, "type", p.env.typ.String(), "from", via, "err", err)
		return
	}
	if drop := g.testDrop.Load(); drop != nil && (*drop)(&p) {
		return
	}
	g.lamport.Witness(p.env.ltime)
	msg := slices.Clone(raw)

	if p.env.node == g.id {
		g.handleOwn(&p, msg)
		return
	}

	g.mu.Lock()
	m = g.members[name]
	if m == nil {
		if g.unknown >= maxUnknown {
			g.mu.Unlock()
			g.drop(fmt.Errorf("message about unknown node %s: table of unknown nodes full", name), via)
			return
		}
		// Without admission every node is a member; with it, one becomes
		// a member when memberlist reports it with a credential that verifies.
		m = &member{name: name, id: p.env.node, pub: pub, changed: g.clock.Now(), admitted: !g.enforcing()}
		g.members[name] = m
		g.unknown++
	}
	m.pub = pub
	if p.env.ltime <= m.versionLocked(&p) {
		g.mu.Unlock()
		g.stats.duplicates.Add(1)
		return
	}
	var hint uint64
	var answer []byte // to a lease claim
	var q *memberlist.TransmitLimitedQueue
	var bname string
	switch p.env.typ {
	case msgState:
		content := m.state.Content
		m.hostname, m.site, m.keyring = p.state.Hostname, p.state.Site, p.state.Keyring
		m.state = p.state.State
		m.state.Content = content
		m.stateLT, m.stateMsg = p.env.ltime, msg
		m.leaving = p.state.Leaving
		if m.leaving && m.liveness == LivenessDead {
			m.liveness = LivenessLeft
		}
		if v := m.state.PolicyVersion; v > g.hint.Version && m.admitted {
			g.hint = PolicyHint{Version: v, From: name, HeardAt: g.clock.Now()}
			hint = v
		}
		q, bname = g.stateQ, "s/"+name
	case msgContent:
		m.state.Content = p.content
		m.contentLT, m.contentMsg = p.env.ltime, msg
		q, bname = g.contentQ, "c/"+name
	case msgLease:
		if m.leases == nil {
			m.leases = make(map[string]*leaseRecord)
		}
		m.leases[p.lease.Group] = &leaseRecord{ltime: p.env.ltime, phase: p.lease.Phase,
			expiry: p.lease.Expiry, at: g.clock.Now(), msg: msg}
		q, bname = g.leaseQ, "l/"+name+"/"+p.lease.Group
		if p.lease.Phase == leaseClaim {
			answer = g.leaseAnswerLocked(m, p.lease.Group, p.env.ltime)
		}
	}
	known := m.known && m.admitted
	admitted := m.admitted
	node := m.node
	g.mu.Unlock()
	g.sendAnswer(&node, answer)
	if !admitted {
		// Kept (bounded, like any unknown node's) so that a member admitted
		// a moment later has its state, but neither passed on nor counted.
		g.stats.refused.Add(1)
		return
	}
	g.stats.accepted.Add(1)
	if rebroadcast {
		q.QueueBroadcast(&broadcast{name: bname, msg: msg})
		if hint > 0 {
			g.push(msg, name)
		}
	}
	if known && p.env.typ != msgLease {
		g.emit(EventUpdate, name, 0)
	}
	if hint > 0 {
		g.emit(EventPolicyVersion, name, hint)
	}
}

// sendAnswer sends this node's answer to a lease claim straight to the
// claimant (a nil answer sends nothing).
func (g *Gossip) sendAnswer(to *memberlist.Node, answer []byte) {
	if answer == nil {
		return
	}
	if err := g.ml.SendBestEffort(to, answer); err != nil {
		g.log.Debug("answer lease claim", "to", to.Name, "err", err)
	}
}

// handleOwn deals with a verified message about this node that is newer
// than what we hold: it was made by this node before a restart. State and
// content are re-announced (with a later Lamport time, which the witness
// made possible); a lease still held is taken back, a stale claim released.
func (g *Gossip) handleOwn(p *parsedMsg, msg []byte) {
	g.mu.Lock()
	defer g.mu.Unlock()
	self := g.members[g.name]
	if p.env.ltime <= self.versionLocked(p) {
		g.stats.duplicates.Add(1)
		return
	}
	g.stats.accepted.Add(1)
	switch p.env.typ {
	case msgState:
		if err := g.announceStateLocked(); err != nil {
			g.log.Error("re-announce state", "err", err)
		}
	case msgContent:
		g.announceContentLocked()
	case msgLease:
		l := p.lease
		if l.Phase == leaseClaim {
			if _, err := g.announceLeaseLocked(l.Group, leaseReleased, time.Time{}); err != nil {
				g.log.Error("release stale lease claim", "group", l.Group, "err", err)
			}
			return
		}
		if self.leases == nil {
			self.leases = make(map[string]*leaseRecord)
		}
		self.leases[l.Group] = &leaseRecord{ltime: p.env.ltime, phase: l.Phase, expiry: l.Expiry, msg: msg}
		if l.Phase == leaseHeld {
			g.log.Info("took back a lease held before restart", "group", l.Group, "expiry", l.Expiry)
		}
	}
}

// localState is the delegate's push/pull payload: every signed message we
// hold, ours first, up to the size limit.
func (g *Gossip) localState() []byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	pp := pushPull{ltime: g.lamport.Time()}
	size := 0
	add := func(m *member) bool {
		msgs := [][]byte{m.stateMsg, m.contentMsg}
		for _, r := range m.leases {
			msgs = append(msgs, r.msg)
		}
		for _, b := range msgs {
			if b == nil {
				continue
			}
			if size+len(b)+8 > maxPushPullLen-64 || len(pp.messages) >= maxPushPullEntries {
				return false
			}
			size += len(b) + 8
			pp.messages = append(pp.messages, b)
		}
		return true
	}
	add(g.members[g.name])
	for name, m := range g.members {
		if name != g.name && !add(m) {
			g.log.Warn("push/pull state truncated at size limit", "messages", len(pp.messages))
			break
		}
	}
	return pp.marshal()
}

func (g *Gossip) mergeRemoteState(buf []byte, via string) {
	pp, err := unmarshalPushPull(buf)
	if err != nil {
		g.drop(err, via)
		return
	}
	for _, m := range pp.messages {
		if len(m) == 0 || !isSigned(msgType(m[0])) {
			g.drop(malformedf("push/pull entry is not a signed message"), via)
			continue
		}
		g.handleSigned(m, false, via)
	}
}

// --- membership events ---

func (g *Gossip) onNode(n *memberlist.Node, kind EventKind) {
	meta, err := unmarshalMeta(n.Meta)
	if err != nil {
		g.log.Debug("ignoring bad node meta", "node", n.Name, "err", err)
	}
	id, err := peer.Decode(n.Name)
	if err != nil {
		// NotifyAlive refuses such names; a left/dead notice may still come.
		g.log.Debug("ignoring member with a bad name", "node", n.Name)
		return
	}
	now := g.clock.Now()
	g.mu.Lock()
	m := g.members[n.Name]
	counted := m != nil && m.countsLive()
	if m == nil {
		m = &member{name: n.Name, id: id, changed: now, admitted: !g.enforcing()}
		g.members[n.Name] = m
	} else if !m.known {
		g.unknown--
	}
	if m.pub == nil {
		m.pub, _ = id.ExtractPublicKey()
	}
	m.known = true
	if n.Name != g.name && (kind != EventLeave || !m.admitted) {
		// The Admitter does not call back into gossip, so g.mu may be held.
		cred, err := g.admitCheck(n.Name, meta.credential)
		m.admitted, m.cred, m.refusal = err == nil, cred, ""
		if err != nil {
			m.refusal = err.Error()
		}
	}
	m.addr = n.Address()
	m.node = memberlist.Node{Name: n.Name, Addr: slices.Clone(n.Addr), Port: n.Port}
	m.meta = meta
	// memberlist never fills Node.State, so liveness comes from the kind
	// of notice, and left-or-dead from the node's own signed leave notice.
	lv := LivenessAlive
	switch {
	case kind != EventLeave:
		m.leaving = false
		m.lastSeen = now
	case m.leaving:
		lv = LivenessLeft
	default:
		lv = LivenessDead
	}
	if lv != LivenessAlive && m.liveness == LivenessAlive {
		m.lastSeen = now // alive until memberlist gave it up
	}
	if lv != m.liveness {
		m.liveness, m.changed = lv, now
	}
	pull := false
	if _, waiting := g.pulls[n.Name]; !waiting && n.Name != g.name && lv == LivenessAlive && meta.stateLTime > m.stateLT {
		g.pulls[n.Name] = time.Now()
		pull = true
	}
	// One member changed: adjust the count (a pool of 1,000 would
	// otherwise count every member on every notice).
	switch counts := m.countsLive(); {
	case counts && !counted:
		g.live.Add(1)
	case counted && !counts:
		g.live.Add(-1)
	}
	g.mu.Unlock()
	if pull {
		g.signal(g.pullCh)
	}
	g.emit(kind, n.Name, 0)
}

// LiveMembers returns how many members are alive or suspect, this node
// included (at least 1).
func (g *Gossip) LiveMembers() int { return max(1, int(g.live.Load())) }

func (g *Gossip) countLiveLocked() {
	n := int32(0)
	for _, m := range g.members {
		if m.countsLive() {
			n++
		}
	}
	g.live.Store(n)
}

// countsLive reports whether m counts in LiveMembers.
func (m *member) countsLive() bool { return m.known && m.admitted && m.liveness == LivenessAlive }

// lastSeenAt is when m was last known alive: now while memberlist
// counts it alive (or suspect), else when it stopped doing so.
func (m *member) lastSeenAt(now time.Time) time.Time {
	if m.liveness == LivenessAlive {
		return now
	}
	return m.lastSeen
}

// aliveNodes copies the addresses of the other live members.
func (g *Gossip) aliveNodes() map[string]*memberlist.Node {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make(map[string]*memberlist.Node)
	for name, m := range g.members {
		if name != g.name && m.known && m.liveness == LivenessAlive {
			n := m.node
			out[name] = &n
		}
	}
	return out
}

// aliveNodesNamed is aliveNodes for the named members only.
func (g *Gossip) aliveNodesNamed(names []string) map[string]*memberlist.Node {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make(map[string]*memberlist.Node, len(names))
	for _, name := range names {
		if m := g.members[name]; m != nil && name != g.name && m.known && m.liveness == LivenessAlive {
			n := m.node
			out[name] = &n
		}
	}
	return out
}

// --- background loops (owned by Run) ---

func (g *Gossip) signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return rand.N(d)
}

// maintainLoop forgets long-dead members. It wakes once a minute at most
// (members stay for DeadRetention, 72 hours by default): an idle agent's
// wakeups are most of its CPU.
func (g *Gossip) maintainLoop(ctx context.Context) {
	t := time.NewTicker(min(time.Minute, max(g.cfg.DeadRetention/4, g.cfg.ProbeInterval)))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		g.prune()
	}
}

// prune forgets members that have been dead or gone longer than
// DeadRetention and hold no unexpired lease.
func (g *Gossip) prune() {
	now := g.clock.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	for name, m := range g.members {
		if name == g.name || m.liveness == LivenessAlive {
			continue
		}
		if now.Sub(m.changed) < g.cfg.DeadRetention {
			continue
		}
		holds := false
		for group, r := range m.leases {
			if r.phase == leaseHeld && r.until(g.leaseTTLLocked(group)).After(now) {
				holds = true
			}
		}
		if holds {
			continue
		}
		if !m.known {
			g.unknown--
		}
		delete(g.members, name)
		delete(g.lastPull, name)
		delete(g.lastPull, "r/"+name)
		delete(g.pulls, name)
		delete(g.valid, name)
	}
}

func (g *Gossip) metaLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-g.metaCh:
		}
		// UpdateNode waits for the broadcast to go out (but not for
		// memberlist's shutdown): bounded, so that Close is not held up
		// by a long gossip interval.
		if err := g.ml.UpdateNode(min(2*g.cfg.GossipInterval, 2*time.Second)); err != nil {
			g.log.Debug("update node meta", "err", err)
		}
	}
}

// duePullsLocked returns the members to ask for their state now (at most
// maxPullsPerRound) and when the earliest pull left waiting is due. A
// pull is due delay after the member's meta showed a state newer than
// ours, unless gossip brought it meanwhile. The pulls over the cap wait
// one more delay: a pull is the fallback for a message gossip lost, and
// when a whole site starts at once every member's meta arrives (in one
// push/pull) long before the states (one gossip queue each), so without a
// cap every member would ask every other over TCP, n x n connections,
// for states that gossip brings a moment later.
func (g *Gossip) duePullsLocked(now time.Time, delay time.Duration) (pulls []string, next time.Time) {
	wait := func(due time.Time) {
		if next.IsZero() || due.Before(next) {
			next = due
		}
	}
	for name, since := range g.pulls {
		if due := since.Add(delay); now.Before(due) {
			wait(due)
			continue
		}
		m := g.members[name]
		if m == nil || m.liveness != LivenessAlive || m.meta.stateLTime <= m.stateLT {
			delete(g.pulls, name) // gossip brought it meanwhile
			continue
		}
		if last, ok := g.lastPull[name]; ok && now.Sub(last) < pullInterval {
			delete(g.pulls, name)
			continue
		}
		if len(pulls) == maxPullsPerRound {
			g.pulls[name] = now
			wait(now.Add(delay))
			continue
		}
		delete(g.pulls, name)
		g.lastPull[name] = now
		pulls = append(pulls, name)
	}
	return pulls, next
}

// pullLoop asks nodes whose meta has shown a newer state than we hold for
// a while (gossip did not bring it) to send it, and answers such requests
// with a bundle of our own signed messages. Its timer is armed only while
// a pull waits: an idle site's members do not wake for it.
func (g *Gossip) pullLoop(ctx context.Context) {
	delay := max(10*g.cfg.GossipInterval, 100*time.Millisecond)
	t := time.NewTimer(delay)
	t.Stop()
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-g.pullCh:
		case <-t.C:
		}
		now := time.Now()
		var replies []string
		g.mu.Lock()
		pulls, next := g.duePullsLocked(now, delay)
		for name := range g.replies {
			delete(g.replies, name)
			if last, ok := g.lastPull["r/"+name]; ok && now.Sub(last) < pullInterval {
				continue
			}
			g.lastPull["r/"+name] = now
			replies = append(replies, name)
		}
		self := g.members[g.name]
		own := pushPull{ltime: g.lamport.Time()}
		for _, b := range [][]byte{self.stateMsg, self.contentMsg} {
			if b != nil {
				own.messages = append(own.messages, b)
			}
		}
		for _, r := range self.leases {
			own.messages = append(own.messages, r.msg)
		}
		g.mu.Unlock()
		if !next.IsZero() {
			t.Reset(max(next.Sub(now), time.Millisecond))
		}
		if len(pulls) == 0 && len(replies) == 0 {
			continue
		}
		nodes := g.aliveNodesNamed(append(pulls, replies...))
		req := marshalStateRequest(g.id)
		for _, name := range pulls {
			if n := nodes[name]; n != nil {
				g.stats.pulled.Add(1)
				if err := g.ml.SendReliable(n, req); err != nil {
					g.log.Debug("state request", "to", name, "err", err)
				}
			}
		}
		if len(replies) == 0 {
			continue
		}
		bundle := own.marshal()
		for _, name := range replies {
			if n := nodes[name]; n != nil {
				if err := g.ml.SendReliable(n, bundle); err != nil {
					g.log.Debug("state reply", "to", name, "err", err)
				}
			}
		}
	}
}
