package gossip

import (
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Clock tells the time used for lease expiry, last-seen times and
// reboot bookkeeping. Tests inject a fake one; network waits (settle rounds,
// join backoff) use real timers.
type Clock interface {
	Now() time.Time
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// Config configures one node's gossip. Zero durations take LAN defaults.
type Config struct {
	// NodeID is the node's libp2p peer ID (string form). Optional: it is
	// derived from Identity, and if set must match it.
	NodeID string
	// Identity is the node's libp2p private key. Required, and its peer ID
	// must embed the public key (Ed25519, secp256k1): every message about
	// this node is signed with it.
	Identity crypto.PrivKey
	Hostname string
	Site     string
	// Credential is this node's credential (wire form), carried in its
	// node meta; SetCredential replaces it. Empty: none.
	Credential []byte
	// Admitter admits members by their credentials; nil admits every
	// holder of the gossip key (see Admitter).
	Admitter Admitter

	BindAddr      string // default 0.0.0.0
	BindPort      int    // 0 picks a free port (see LocalAddr); default in production: 7946
	AdvertiseAddr string // IP to advertise; default: the bound address
	Seeds         []string

	// Keys is the AES-GCM keyring (16, 24 or 32 bytes each); the first is
	// the primary (encrypting) key. At least one is required.
	Keys [][]byte
	// Label names the fleet; packets and streams carry it and it is
	// authenticated as GCM additional data. Required (at most 255 bytes).
	Label string

	Clock Clock // default: the system clock

	ProbeInterval    time.Duration // default 1s (memberlist LAN)
	ProbeTimeout     time.Duration // default 500ms
	GossipInterval   time.Duration // default 300ms (to 4 members a round)
	PushPullInterval time.Duration // default 30s
	// SuspicionMult overrides memberlist's multiplier (default 4).
	SuspicionMult int

	// JoinJitter is the longest random delay before the first join, so a
	// whole site coming back from a power cut does not hit its seeds at once.
	// Default 5s.
	JoinJitter time.Duration
	// JoinBackoffMax caps the backoff between join rounds. Default 60s.
	JoinBackoffMax time.Duration
	// PeersFile, if set, keeps the gossip addresses of the live members
	// and of those declared dead within the hour (at most 64; rewritten while they change, at most every 10 s, and
	// when Run ends) and offers them as seeds at the next start, as Serf's
	// snapshot does: a node whose configured seeds are itself, or gone,
	// still finds its site again after a restart.
	PeersFile string
	// LeaseSettle is how long a lease claim waits for every member's
	// answer before it is withdrawn. Default 3s.
	LeaseSettle time.Duration
	// LeaseDeadGrace, if set, frees the lease slot of a holder memberlist
	// has declared dead (failed, not left) for this long, before its TTL.
	// Zero (the default) keeps the slot until the TTL: a host rebooting
	// under the lease looks dead, and only the TTL tells it from a lost one.
	LeaseDeadGrace time.Duration
	// LeaseMaxTTL caps how long after its arrival another member's lease
	// counts, for a group this node has not asked for yet (once it has,
	// the TTL it asked for, the policy's, is the cap). Default 1h, the
	// default of reboot.lease_ttl.
	LeaseMaxTTL time.Duration
	// DeadRetention is how long dead or departed members stay in Members().
	// Default 72h.
	DeadRetention time.Duration
}

// ErrConfig is wrapped by every configuration error New returns.
var ErrConfig = errors.New("invalid gossip config")

func (c *Config) withDefaults() (Config, peer.ID, error) {
	cfg := *c
	fail := func(format string, args ...any) (Config, peer.ID, error) {
		return Config{}, "", fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
	}
	if cfg.Identity == nil {
		return fail("Identity (libp2p private key) is required")
	}
	id, err := peer.IDFromPrivateKey(cfg.Identity)
	if err != nil {
		return fail("Identity: %v", err)
	}
	if _, err := id.ExtractPublicKey(); err != nil {
		return fail("Identity: peer ID %s does not embed its public key (use Ed25519): %v", id, err)
	}
	if cfg.NodeID != "" && cfg.NodeID != id.String() {
		return fail("NodeID %s does not match Identity's peer ID %s", cfg.NodeID, id)
	}
	cfg.NodeID = id.String()
	if len(cfg.Keys) == 0 {
		return fail("Keys: at least one gossip key is required")
	}
	for i, k := range cfg.Keys {
		if err := memberlist.ValidateKey(k); err != nil {
			return fail("Keys[%d]: %v", i, err)
		}
	}
	if cfg.Label == "" {
		return fail("Label (fleet name) is required")
	}
	if len(cfg.Label) > memberlist.LabelMaxSize {
		return fail("Label is %d bytes, at most %d", len(cfg.Label), memberlist.LabelMaxSize)
	}
	if err := checkString("Hostname", cfg.Hostname, maxHostnameLen); err != nil {
		return fail("%v", err)
	}
	if err := checkString("Site", cfg.Site, maxShortLen); err != nil {
		return fail("%v", err)
	}
	if cfg.BindAddr == "" {
		cfg.BindAddr = "0.0.0.0"
	}
	if cfg.BindPort < 0 || cfg.BindPort > 65535 {
		return fail("BindPort %d out of range", cfg.BindPort)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.ProbeInterval, time.Second)
	def(&cfg.ProbeTimeout, 500*time.Millisecond)
	if cfg.ProbeTimeout > cfg.ProbeInterval {
		cfg.ProbeTimeout = cfg.ProbeInterval / 2
	}
	def(&cfg.GossipInterval, 300*time.Millisecond)
	def(&cfg.PushPullInterval, 30*time.Second)
	def(&cfg.JoinJitter, 5*time.Second)
	def(&cfg.JoinBackoffMax, time.Minute)
	def(&cfg.LeaseSettle, 3*time.Second)
	def(&cfg.LeaseMaxTTL, time.Hour)
	def(&cfg.DeadRetention, 72*time.Hour)
	if cfg.SuspicionMult <= 0 {
		cfg.SuspicionMult = 4
	}
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	if len(cfg.Credential) > maxCredentialLen {
		return fail("Credential is %d bytes, at most %d", len(cfg.Credential), maxCredentialLen)
	}
	cfg.Credential = append([]byte(nil), cfg.Credential...)
	cfg.Seeds = append([]string(nil), cfg.Seeds...)
	keys := make([][]byte, len(cfg.Keys))
	for i, k := range cfg.Keys {
		keys[i] = append([]byte(nil), k...)
	}
	cfg.Keys = keys
	return cfg, id, nil
}
