package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// DefaultPort is the UDP port beacons are sent to and heard on.
const DefaultPort = 7947

// maxSenders bounds the node IDs whose latest beacon time is remembered
// for replay detection.
const maxSenders = 1024

// Errors callers branch on.
var (
	// ErrConfig is wrapped by every configuration error New returns.
	ErrConfig = errors.New("invalid discovery config")
	// ErrAlreadyRunning is returned by a second call of Run.
	ErrAlreadyRunning = errors.New("discovery is already running")
)

// Sink takes the gossip addresses (host:port) heard on the LAN as
// candidate seeds. *gossip.Gossip implements it. AddSeeds must not block.
type Sink interface {
	AddSeeds(addrs ...string)
}

// Config configures a beacon.
type Config struct {
	// NodeID is this node's ID (its libp2p peer ID); beacons carrying it
	// are our own and are ignored. Required, at most 128 bytes.
	NodeID string
	// Label names the fleet (the gossip label). Required.
	Label string
	// Keys returns the current gossip keyring, primary first. Beacons are
	// authenticated with a key derived from the primary and the label and
	// accepted under a key derived from any of them, so discovery keeps
	// working during a key rotation. Required.
	Keys func() [][]byte
	// Gossip is the gossip address to announce (the pool's LocalAddr). Its
	// port is required; an unspecified IP announces, on each subnet, the
	// interface's own address there.
	Gossip netip.AddrPort
	// Port is the UDP port to listen on and send to. Default DefaultPort.
	Port int
	// ListenAddr is the IPv4 address to listen on. Default 0.0.0.0: a
	// socket bound to one unicast address does not receive broadcasts.
	ListenAddr netip.Addr
	// Targets, if set, are the destinations of the beacon (broadcast or
	// unicast IPv4 addresses) instead of the directed broadcast addresses
	// of the interface holding the gossip IP (every interface that is up
	// when it is unspecified).
	Targets []netip.Addr
	// Interval is the shortest time between two beacons; each wait is
	// random between Interval and twice that. Default 5s.
	Interval time.Duration
	// MaxAge is how far a beacon's time may be from ours (either way)
	// before it is dropped as stale: it bounds replays and tolerates that
	// much clock skew. Default 60s.
	MaxAge time.Duration
	// Sink receives the candidates. Required.
	Sink Sink
	// PoolSize, if set, returns how many live members the node's pool has
	// (itself included). A node in a pool of n sends each round's beacon
	// with probability 1/n, so a site sends about one beacon per round
	// whatever its size (one listener wakes for each beacon of every
	// member: 20 members each sending every 5-10 s cost every idle agent
	// five wakeups a second). A node alone sends every round, and so does
	// any node at start: a newcomer is heard at once, and the members it
	// reaches join it.
	PoolSize func() int
	// Now is the wall clock (default time.Now).
	Now func() time.Time

	// interfaces lists the host's interfaces (tests replace it).
	interfaces func() ([]iface, error)
}

// Stats counts what the beacon did. Every dropped datagram is counted once,
// by its first reason.
type Stats struct {
	Sent       uint64 // datagrams sent
	SendErrors uint64 // datagrams that could not be sent
	Accepted   uint64 // beacons whose gossip address went to the sink
	Own        uint64 // our own beacons, looped back by a broadcast
	Oversized  uint64 // longer than MaxDatagram
	Malformed  uint64 // not a beacon, or badly framed
	BadAuth    uint64 // HMAC did not verify under any of our keys
	Stale      uint64 // time further than MaxAge from ours
	Replayed   uint64 // not newer than the sender's last beacon
	Foreign    uint64 // from outside the site's subnets, or announcing an address outside them
	Rejected   uint64 // too many senders to track
}

type counters struct {
	sent, sendErrors, accepted, own, oversized, malformed, badAuth, stale, replayed, foreign, rejected atomic.Uint64
}

// Beacon announces this node's gossip address on the site's LAN and hands
// the addresses it hears to a Sink.
type Beacon struct {
	cfg  Config
	log  *slog.Logger
	conn *net.UDPConn

	mu      sync.Mutex
	scope   scope
	derived map[string][]byte    // gossip key -> HMAC key
	last    map[string]time.Time // node ID -> time of its newest accepted beacon

	stats     counters
	running   atomic.Bool
	closeOnce sync.Once
}

// New validates cfg and opens the beacon's UDP socket. Call Run to send
// and listen, or Close if Run is never called. A nil logger discards logs.
func New(cfg Config, logger *slog.Logger) (*Beacon, error) {
	fail := func(format string, args ...any) (*Beacon, error) {
		return nil, fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
	}
	switch {
	case cfg.NodeID == "" || len(cfg.NodeID) > maxNodeIDLen:
		return fail("NodeID must have 1 to %d bytes", maxNodeIDLen)
	case cfg.Label == "":
		return fail("Label (the fleet's gossip label) is required")
	case cfg.Keys == nil:
		return fail("Keys (the gossip keyring) is required")
	case cfg.Sink == nil:
		return fail("Sink is required")
	case cfg.Gossip.Port() == 0:
		return fail("Gossip: the gossip address %s has no port", cfg.Gossip)
	case cfg.Port < 0 || cfg.Port > 65535:
		return fail("Port %d out of range", cfg.Port)
	case cfg.Interval < 0 || cfg.MaxAge < 0:
		return fail("Interval and MaxAge must not be negative")
	}
	if cfg.Port == 0 {
		cfg.Port = DefaultPort
	}
	if !cfg.ListenAddr.IsValid() {
		cfg.ListenAddr = netip.IPv4Unspecified()
	}
	if !cfg.ListenAddr.Unmap().Is4() {
		return fail("ListenAddr %s: beacons are IPv4 broadcasts", cfg.ListenAddr)
	}
	for _, t := range cfg.Targets {
		if !t.Unmap().Is4() || t.IsUnspecified() {
			return fail("Targets: %s is not an IPv4 destination", t)
		}
	}
	if cfg.Interval == 0 {
		cfg.Interval = 5 * time.Second
	}
	if cfg.MaxAge == 0 {
		cfg.MaxAge = time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.interfaces == nil {
		cfg.interfaces = systemInterfaces
	}
	cfg.Targets = append([]netip.Addr(nil), cfg.Targets...)
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	addr := net.JoinHostPort(cfg.ListenAddr.Unmap().String(), strconv.Itoa(cfg.Port))
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) { serr = setSockopts(fd) }); err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for LAN discovery on udp %s: %w", addr, err)
	}
	b := &Beacon{
		cfg:     cfg,
		log:     logger.With("component", "discovery"),
		conn:    pc.(*net.UDPConn),
		derived: make(map[string][]byte),
		last:    make(map[string]time.Time),
	}
	b.refreshScope()
	return b, nil
}

// LocalPort is the UDP port the beacon listens on (Config.Port, or the
// port the system chose for a ListenAddr port of 0 in tests).
func (b *Beacon) LocalPort() int { return b.conn.LocalAddr().(*net.UDPAddr).Port }

// Close closes the socket; Run returns. Safe to call more than once.
func (b *Beacon) Close() error {
	var err error
	b.closeOnce.Do(func() { err = b.conn.Close() })
	return err
}

// Stats returns the counters.
func (b *Beacon) Stats() Stats {
	c := &b.stats
	return Stats{
		Sent: c.sent.Load(), SendErrors: c.sendErrors.Load(), Accepted: c.accepted.Load(), Own: c.own.Load(),
		Oversized: c.oversized.Load(), Malformed: c.malformed.Load(), BadAuth: c.badAuth.Load(),
		Stale: c.stale.Load(), Replayed: c.replayed.Load(), Foreign: c.foreign.Load(), Rejected: c.rejected.Load(),
	}
}

// Run sends a beacon at once and then every Interval to twice that,
// listens for the others' beacons, and hands the accepted addresses to
// the sink, until ctx ends or Close is called. It closes the socket and
// returns nil; its only error is ErrAlreadyRunning.
func (b *Beacon) Run(ctx context.Context) error {
	if !b.running.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	readErr := make(chan error, 1)
	go func() { readErr <- b.readLoop() }()
	failing := false
	for first := true; ; first = false {
		b.refreshScope()
		if first || b.myTurn() {
			failing = b.send(failing)
		}
		t := time.NewTimer(b.cfg.Interval + rand.N(b.cfg.Interval))
		select {
		case <-ctx.Done():
			t.Stop()
			b.Close()
			<-readErr
			return nil
		case <-readErr: // only Close ends the read loop
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// myTurn reports whether this round's beacon is sent: always for a node
// alone, with probability 1/n in a pool of n (Config.PoolSize).
func (b *Beacon) myTurn() bool {
	if b.cfg.PoolSize == nil {
		return true
	}
	n := b.cfg.PoolSize()
	return n <= 1 || rand.N(n) == 0
}

// refreshScope re-reads the interfaces: addresses change (DHCP, links).
func (b *Beacon) refreshScope() {
	ifs, err := b.cfg.interfaces()
	if err != nil {
		b.log.Warn("list network interfaces", "err", err)
		return
	}
	sc := computeScope(ifs, b.cfg.Gossip.Addr(), b.cfg.Targets)
	b.mu.Lock()
	b.scope = sc
	b.mu.Unlock()
}

// send sends one beacon to each target. It logs a failure when sending
// starts failing and when it recovers, and reports whether it failed.
func (b *Beacon) send(wasFailing bool) bool {
	b.mu.Lock()
	targets := b.scope.Targets
	b.mu.Unlock()
	keys := b.cfg.Keys()
	if len(keys) == 0 || len(targets) == 0 {
		if !wasFailing {
			b.log.Info("LAN discovery cannot send: no gossip key or no broadcast address on the gossip interface; only listening",
				"keys", len(keys), "targets", len(targets))
		}
		return true
	}
	key := b.key(keys[0])
	now := b.cfg.Now()
	var firstErr error
	for _, t := range targets {
		msg, err := seal(announcement{NodeID: b.cfg.NodeID, Time: now, Gossip: netip.AddrPortFrom(t.Announce, b.cfg.Gossip.Port())}, key)
		if err == nil {
			_, err = b.conn.WriteToUDPAddrPort(msg, netip.AddrPortFrom(t.Dest, uint16(b.cfg.Port)))
		}
		if err != nil {
			b.stats.sendErrors.Add(1)
			if firstErr == nil {
				firstErr = fmt.Errorf("send beacon to %s: %w", t.Dest, err)
			}
			continue
		}
		b.stats.sent.Add(1)
	}
	switch {
	case firstErr != nil && !wasFailing:
		b.log.Warn("LAN discovery beacon", "err", firstErr)
	case firstErr == nil && wasFailing:
		b.log.Info("LAN discovery beacon sending", "targets", len(targets))
	}
	return firstErr != nil
}

// key returns the HMAC key derived from a gossip key, cached.
func (b *Beacon) key(gossipKey []byte) []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.keyLocked(gossipKey)
}

func (b *Beacon) keyLocked(gossipKey []byte) []byte {
	k, ok := b.derived[string(gossipKey)]
	if !ok {
		if len(b.derived) >= 16 { // keys were rotated many times: start over
			clear(b.derived)
		}
		k = deriveKey(gossipKey, b.cfg.Label)
		b.derived[string(gossipKey)] = k
	}
	return k
}

func (b *Beacon) readLoop() error {
	// One byte more than the largest beacon, so a longer datagram is seen
	// as such and not silently cut to a valid length.
	buf := make([]byte, MaxDatagram+1)
	for {
		n, src, err := b.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Transient (e.g. an ICMP error reported on the socket on
			// some systems): note it and pause, never spin.
			b.log.Debug("read beacon", "err", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		b.receive(buf[:n], src.Addr())
	}
}

// receive checks one datagram from src and offers its gossip address to the
// sink if it passes.
func (b *Beacon) receive(pkt []byte, src netip.Addr) {
	var a announcement
	// Junk costs a comparison, not a look at the keyring and an HMAC.
	err := checkFrame(pkt)
	if err == nil {
		gossipKeys := b.cfg.Keys()
		keys := make([][]byte, 0, len(gossipKeys))
		b.mu.Lock()
		for _, k := range gossipKeys {
			keys = append(keys, b.keyLocked(k))
		}
		b.mu.Unlock()
		a, err = open(pkt, keys)
	}
	switch {
	case errors.Is(err, errOversized):
		b.stats.oversized.Add(1)
		return
	case errors.Is(err, errBadAuth):
		b.stats.badAuth.Add(1)
		b.log.Debug("beacon dropped", "from", src, "err", err)
		return
	case err != nil:
		b.stats.malformed.Add(1)
		b.log.Debug("beacon dropped", "from", src, "err", err)
		return
	}
	if a.NodeID == b.cfg.NodeID {
		b.stats.own.Add(1)
		return
	}
	now := b.cfg.Now()
	if d := now.Sub(a.Time); d > b.cfg.MaxAge || d < -b.cfg.MaxAge {
		b.stats.stale.Add(1)
		b.log.Debug("stale beacon dropped (clock skew or replay)", "from", src, "node", a.NodeID, "skew", d)
		return
	}
	b.mu.Lock()
	local := b.scope.Local
	b.mu.Unlock()
	cand, ok := candidate(src, a.Gossip, local)
	if !ok {
		b.stats.foreign.Add(1)
		b.log.Debug("beacon from outside the site's subnets dropped", "from", src, "node", a.NodeID, "announced", a.Gossip)
		return
	}
	b.mu.Lock()
	last, seen := b.last[a.NodeID]
	switch {
	case seen && !a.Time.After(last):
		b.mu.Unlock()
		b.stats.replayed.Add(1)
		return
	case !seen && len(b.last) >= maxSenders:
		b.pruneLocked(now)
		if len(b.last) >= maxSenders {
			b.mu.Unlock()
			b.stats.rejected.Add(1)
			return
		}
	}
	b.last[a.NodeID] = a.Time
	b.mu.Unlock()
	b.stats.accepted.Add(1)
	b.cfg.Sink.AddSeeds(cand.String())
}

// pruneLocked forgets senders whose newest beacon is older than MaxAge: a
// replay of any of theirs would be stale anyway.
func (b *Beacon) pruneLocked(now time.Time) {
	for id, t := range b.last {
		if now.Sub(t) > b.cfg.MaxAge {
			delete(b.last, id)
		}
	}
}
