package exchange

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"

	"github.com/patchring/patchring/p2p/content"
)

// Config configures a Node.
type Config struct {
	// Store holds the payloads this node serves and downloads into.
	Store *content.Store
	// Identity is the node's libp2p key; its peer ID is the node ID. nil
	// generates a fresh Ed25519 key (tests).
	Identity crypto.PrivKey
	// ListenAddrs are TCP multiaddrs; default /ip4/0.0.0.0/tcp/0. Only TCP
	// is enabled: QUIC cannot run with a private-network key (PSK), and TCP
	// costs less CPU per byte here.
	ListenAddrs []string
	// PSK, if set, is a 32-byte libp2p private-network key: connections
	// without it fail before the security handshake.
	PSK []byte
	// Allowed is the initial allow-list of peers (see SetAllowed).
	Allowed []peer.ID
	// UploadRate caps this node's uploads to peers, WANRate its downloads
	// from the origin, in bytes per second; 0 means unlimited.
	UploadRate, WANRate int64
	// UploadSlots caps concurrent range transfers to peers; further
	// requests are answered busy. Default 3: a slot is held until its
	// piece arrived (SlotLinger), and three keep the upload busy across
	// the gap between one piece's arrival and the client's next request,
	// while each piece still gets a third of the rate, so it is complete
	// (and shareable) sooner than with more slots sharing the link (24
	// nodes on 10 Mbit/s links: 1.22-1.24 x the bound with 3, 1.27 with
	// 2; docs/P2P.md).
	UploadSlots int
	// SlotWait is how long a range request may queue for an upload slot
	// before it is answered busy; default 0 (at once: the peer then asks
	// another peer, which measured faster than queueing).
	SlotWait time.Duration
	// SlotLinger caps how long a range sent in full keeps its upload slot
	// while its bytes may still be queued on the way out: the slot is free
	// again when the client asks its next question (it has the piece), at
	// the latest after twice the time clients recently took to ask, capped
	// at SlotLinger. Default 2 s; negative: the slot is free as soon as
	// the bytes are written (every request then shares a slow link at
	// once). See linger.go.
	SlotLinger time.Duration
	// IdleTimeout closes an inbound session with no request for that long;
	// default 30 s.
	IdleTimeout time.Duration
	// MinUploadRate is the rate below which an upload is cut: a transfer
	// of n bytes (a range, a file, a manifest's hashing) must end within
	// IdleTimeout + n / MinUploadRate, however the client paces its
	// reads. Default 64 KiB/s; lowered to a share of UploadRate when that
	// cap is tighter.
	MinUploadRate int64
	// PeerLimits bound the sessions and requests of each peer (see
	// PeerLimits for the defaults).
	PeerLimits PeerLimits
	// Timing tunes the downloader.
	Timing Timing
	// Logger receives the node's log; nil logs nothing.
	Logger *slog.Logger
}

// Node is a libp2p host that serves and fetches payloads with the
// /patchring/blob/2 protocol (and /patchring/blob/1 for nodes of the
// previous release). Only peers on its allow-list can connect.
type Node struct {
	h      host.Host
	gater  *allowGater
	srv    *server
	f      *fetcher
	up     *Limiter
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc

	fileStats *serverCounters
	adm       *admission

	mu       sync.Mutex
	closed   bool
	handlers sync.WaitGroup
}

// ServerStats returns how this node's inbound sessions ended and what it
// refused.
func (n *Node) ServerStats() ServerStats {
	return ServerStats{Blob: n.srv.stats.snapshot(), File: n.fileStats.snapshot()}
}

// New starts a Node listening on cfg.ListenAddrs.
func New(cfg Config) (*Node, error) {
	if cfg.Store == nil {
		return nil, errors.New("new exchange node: no content store")
	}
	if len(cfg.ListenAddrs) == 0 {
		cfg.ListenAddrs = []string{"/ip4/0.0.0.0/tcp/0"}
	}
	if cfg.UploadSlots <= 0 {
		cfg.UploadSlots = 3
	}
	if cfg.SlotLinger == 0 {
		cfg.SlotLinger = 2 * time.Second
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 30 * time.Second
	}
	if cfg.MinUploadRate <= 0 {
		cfg.MinUploadRate = 64 << 10
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	gater := newAllowGater()
	gater.set(cfg.Allowed)
	opts := []libp2p.Option{
		libp2p.ListenAddrStrings(cfg.ListenAddrs...),
		libp2p.Transport(tcp.NewTCPTransport),
		// TLS first: AES-GCM with AES-NI costs less CPU than ChaCha20.
		libp2p.Security(libp2ptls.ID, libp2ptls.New),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ConnectionGater(gater),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
		libp2p.Ping(false),
	}
	if cfg.Identity != nil {
		opts = append(opts, libp2p.Identity(cfg.Identity))
	}
	if len(cfg.PSK) > 0 {
		if len(cfg.PSK) != 32 {
			return nil, fmt.Errorf("new exchange node: private network key is %d bytes, want 32", len(cfg.PSK))
		}
		opts = append(opts, libp2p.PrivateNetwork(pnet.PSK(cfg.PSK)))
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("new exchange node: %w", err)
	}
	gater.self = h.ID()
	ctx, cancel := context.WithCancel(context.Background())
	n := &Node{
		h: h, gater: gater, log: log, ctx: ctx, cancel: cancel,
		up: NewLimiter(cfg.UploadRate), adm: newAdmission(cfg.PeerLimits, time.Now),
	}
	sb := newScoreboard(time.Now)
	manifests := newManifestCache(manifestCacheBytes)
	seeding := newSeedTracker(time.Now)
	n.srv = &server{
		store: cfg.Store, up: n.up, slots: newSlotPool(cfg.UploadSlots), slotWait: cfg.SlotWait, linger: newLingerClock(cfg.SlotLinger),
		minRate: cfg.MinUploadRate, seeding: seeding, stats: &serverCounters{},
		sb: sb, manifests: manifests, idle: cfg.IdleTimeout, log: log, adm: n.adm,
	}
	n.fileStats = &serverCounters{}
	n.f = &fetcher{
		self: h.ID(), store: cfg.Store, dial: n.dial, sb: sb, wan: NewLimiter(cfg.WANRate),
		manifests: manifests, seeding: seeding, timing: cfg.Timing.withDefaults(), log: log,
	}
	h.SetStreamHandler(protocol.ID(ProtocolID), n.handleStream)
	h.SetStreamHandler(protocol.ID(ProtocolIDv1), n.handleStream)
	return n, nil
}

// ID returns the node's peer ID.
func (n *Node) ID() peer.ID { return n.h.ID() }

// AddrInfo returns the node's peer ID and listen addresses, for gossip.
func (n *Node) AddrInfo() peer.AddrInfo {
	return peer.AddrInfo{ID: n.h.ID(), Addrs: n.h.Addrs()}
}

// Host returns the underlying libp2p host.
func (n *Node) Host() host.Host { return n.h }

// SetAllowed replaces the allow-list of peers that may connect to this node
// and that it dials; the daemon feeds it the fleet members heard in gossip.
// Connections to peers no longer allowed are closed.
func (n *Node) SetAllowed(ids []peer.ID) {
	for _, p := range n.gater.set(ids) {
		_ = n.h.Network().ClosePeer(p)
	}
}

// SetRates changes the upload and WAN caps (bytes per second; 0: unlimited).
func (n *Node) SetRates(upload, wan int64) {
	n.up.SetRate(upload)
	n.f.wan.SetRate(wan)
}

// UploadLimiter and WANLimiter expose the limiters' counters.
func (n *Node) UploadLimiter() *Limiter { return n.up }

// WANLimiter returns the limiter of origin downloads.
func (n *Node) WANLimiter() *Limiter { return n.f.wan }

// Peers returns traffic and reputation per peer, sorted by peer ID.
func (n *Node) Peers() []PeerStats { return n.f.sb.stats() }

// Peer returns the record of one peer.
func (n *Node) Peer(p peer.ID) (PeerStats, bool) { return n.f.sb.peerStats(p) }

// ReportBadData records that p served a file (FetchFile) that failed the
// asker's own verification: p is avoided as a source for BadDataBan, as a
// peer whose blocks contradict a verified payload is.
func (n *Node) ReportBadData(p peer.ID, err error) { n.f.sb.punish(p, offenceBadData, err) }

// Totals returns this node's payload traffic.
func (n *Node) Totals() Totals { return n.f.sb.totals() }

// Fetch downloads the payload h of size bytes (both from signed metadata)
// into the node's store, in pieces from several peers at once and, per opts,
// from the origin. The payload becomes visible in the store only after its
// SHA-256 and size verified. An interrupted Fetch keeps its verified-so-far
// pieces and a later Fetch resumes. Fetch of a payload the store holds
// returns nil at once.
func (n *Node) Fetch(ctx context.Context, h content.Hash, size int64, peers []peer.AddrInfo, opts FetchOptions) error {
	return n.f.fetch(ctx, h, size, peers, opts)
}

func (n *Node) dial(ctx context.Context, ai peer.AddrInfo) (io.ReadWriteCloser, error) {
	if !n.gater.isAllowed(ai.ID) {
		return nil, fmt.Errorf("dial %s: not a fleet member", ai.ID)
	}
	if len(ai.Addrs) > 0 {
		if err := n.h.Connect(ctx, ai); err != nil {
			return nil, fmt.Errorf("dial %s: %w", ai.ID, err)
		}
	}
	s, err := n.h.NewStream(ctx, ai.ID, protocol.ID(ProtocolID), protocol.ID(ProtocolIDv1))
	if err != nil {
		return nil, fmt.Errorf("open stream to %s: %w", ai.ID, err)
	}
	return s, nil
}

// admit is every stream handler's prologue: it resets a stream from a
// peer that is not allow-listed, that arrives after Close, or that its
// peer's session rate (PeerLimits) refuses, counting the outcome in stats;
// otherwise it counts the handler in, so Close waits for it, and the
// caller calls done when the handler returns.
func (n *Node) admit(s network.Stream, stats *serverCounters) (p peer.ID, done func(), ok bool) {
	p = s.Conn().RemotePeer()
	if !n.gater.isAllowed(p) {
		_ = s.Reset()
		return p, nil, false
	}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		_ = s.Reset()
		return p, nil, false
	}
	n.handlers.Add(1)
	n.mu.Unlock()
	if !n.admitSession(p, s, stats) {
		n.handlers.Done()
		return p, nil, false
	}
	return p, n.handlers.Done, true
}

func (n *Node) handleStream(s network.Stream) {
	p, done, ok := n.admit(s, n.srv.stats)
	if !ok {
		return
	}
	defer done()
	if err := n.srv.serveConn(n.ctx, p, s, s.Protocol() == ProtocolIDv1); err != nil {
		n.log.Debug("exchange: session ended", "peer", p, "err", err)
		_ = s.Reset()
		return
	}
	_ = s.Close()
}

// admitSession admits a new session of p (PeerLimits) and counts the
// outcome in stats; a refused session's stream is reset unread.
func (n *Node) admitSession(p peer.ID, s network.Stream, stats *serverCounters) bool {
	throttled, err := n.adm.session(n.ctx, p)
	if throttled {
		stats.throttledSessions.Add(1)
	}
	if err != nil {
		if errors.Is(err, errRate) {
			stats.rate.Add(1)
			n.log.Debug("exchange: session refused", "peer", p, "err", err)
		}
		_ = s.Reset()
		return false
	}
	return true
}

// Run blocks until ctx is done, then closes the node.
func (n *Node) Run(ctx context.Context) error {
	<-ctx.Done()
	return n.Close()
}

// Close stops serving, waits for the inbound sessions to end and closes the
// host. Fetches in progress fail; cancel them first for a clean stop.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	n.mu.Unlock()
	n.h.RemoveStreamHandler(protocol.ID(ProtocolID))
	n.h.RemoveStreamHandler(protocol.ID(ProtocolIDv1))
	n.cancel()
	n.handlers.Wait()
	if err := n.h.Close(); err != nil {
		return fmt.Errorf("close exchange node: %w", err)
	}
	return nil
}
