package gossip

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"
)

// State is what a node tells the fleet about itself. The daemon sets it with
// SetLocal; other nodes see it in Member.State. Every field is the node's
// own claim: nothing in it directs another node.
type State struct {
	Ring            string        // ring the node places itself in
	Tags            []string      // node tags (at most 32, 64 bytes each)
	Addrs           []string      // libp2p multiaddrs the node listens on (at most 16)
	PolicyVersion   uint64        // TUF timestamp version of the policy the node holds
	InventoryDigest string        // digest of the node's last inventory
	Updates         UpdateSummary // update counts
	Reboot          RebootState   // reboot summary
	Content         ContentIndex  // content the node holds (see NewContentIndex)
	AgentVersion    string        // patchringd version
	LastUpdate      time.Time     // when the node last installed updates
	// Results are the node's latest outcomes per update (at most
	// MaxResults, newest first): what ring gates count. Each is 9 bytes
	// on the wire, so a batch of 40-60 upgrades (a Debian point release,
	// one transaction or many) fits one packet whole.
	Results []UpdateResult
	// Exposure is the node's vulnerability exposure (daemon/vulns): a few
	// counts, at most 7 small varints on the wire.
	Exposure Exposure
	// Format is the package format the node installs: "deb" (apt) or
	// "rpm" (dnf); "" when unknown (no engine, or an older agent).
	Format string
}

// Exposure counts a node's findings against the signed advisory database:
// by severity, those in CISA's KEV catalog, those without an available
// fix, and the advisory database version they come from.
type Exposure struct {
	Critical, High, Medium, Low int
	KEV, NoFix                  int
	AdvisoryVersion             uint64
}

// MaxResults caps State.Results: the whole signed state must fit one
// gossip packet (1100 bytes), and 64 results take 8*64 + 64/8 = 520 bytes
// of it. A node that finished more updates announces the newest.
const MaxResults = 64

// ResultIDLen is the length of a ResultID.
const ResultIDLen = 8

// ResultID names an update compactly: the first 8 bytes of the SHA-256
// of "source\x00package\x00version". Nodes compare IDs, never names; an
// accidental collision among a fleet's updates is negligible (2^-64 per
// pair), and a member that forges one could as well lie about its outcome,
// which moves a gate by one node at most.
type ResultID [ResultIDLen]byte

// ResultIDOf returns the ID of an update.
func ResultIDOf(source, pkg, version string) ResultID {
	h := sha256.Sum256([]byte(source + "\x00" + pkg + "\x00" + version))
	var id ResultID
	copy(id[:], h[:])
	return id
}

func (id ResultID) String() string { return hex.EncodeToString(id[:]) }

// UpdateResult is a node's outcome with one update.
type UpdateResult struct {
	ID        ResultID // ResultIDOf(source, package, version)
	Succeeded bool     // installed and healthy; false: failed or rolled back
}

// NewUpdateResult returns the result of one update.
func NewUpdateResult(source, pkg, version string, succeeded bool) UpdateResult {
	return UpdateResult{ID: ResultIDOf(source, pkg, version), Succeeded: succeeded}
}

// UpdateSummary counts a node's updates.
type UpdateSummary struct {
	Pending   int
	Installed int
	Failed    int
}

// RebootState summarizes a node's reboot.
type RebootState struct {
	Required      bool
	Since         time.Time // when the reboot became required
	Deadline      time.Time // effective deadline
	RefusedByUser bool      // the console user declined the reboot
	HookHeld      bool      // the pre-reboot hook failed and holds the reboot
	Unhealthy     bool      // the post-reboot hook failed after the last reboot
}

// KeyringInfo lists fingerprints (not keys) of a node's gossip keyring, so
// that a key rotation can be checked fleet-wide. See KeyFingerprint.
type KeyringInfo struct {
	Primary   string   // fingerprint of the key the node encrypts with
	Installed []string // fingerprints of every key the node accepts, sorted
}

// Liveness is memberlist's view of a member.
type Liveness uint8

// Liveness values.
const (
	LivenessUnknown Liveness = iota // heard of through gossip only
	LivenessAlive                   // in the pool (memberlist counts suspects as alive too)
	LivenessDead                    // declared failed by the pool
	LivenessLeft                    // left gracefully (announced it was leaving)
)

func (l Liveness) String() string {
	switch l {
	case LivenessAlive:
		return "alive"
	case LivenessDead:
		return "dead"
	case LivenessLeft:
		return "left"
	}
	return "unknown"
}

// MarshalText renders the liveness as its name (for JSON output).
func (l Liveness) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// Member is one node of the site as this node sees it.
type Member struct {
	NodeID       string // libp2p peer ID, also the memberlist node name
	Hostname     string // as the node announced it
	Site         string // as the node announced it
	Addr         string // gossip address (host:port) memberlist uses
	Liveness     Liveness
	LastSeen     time.Time // last time the member was known alive (injected clock)
	Local        bool      // this node
	State        State     // last verified state; zero until heard
	StateVersion uint64    // Lamport time of State (0: none heard)
	Keyring      KeyringInfo
	// Credential is what the member's verified credential says (its site
	// and tags as the admin signed them); nil while admission is off.
	Credential *Credential
	// Visiting: its credential names a site other than this node's. It
	// shares payloads and metadata here but counts in none of this site's
	// gates or leases.
	Visiting bool
}

func validateState(s *State) error {
	if err := checkString("ring", s.Ring, maxShortLen); err != nil {
		return err
	}
	if len(s.Tags) > maxTags {
		return fmt.Errorf("%d tags, at most %d", len(s.Tags), maxTags)
	}
	for i, t := range s.Tags {
		if err := checkString(fmt.Sprintf("tag %d", i), t, maxShortLen); err != nil {
			return err
		}
	}
	if len(s.Addrs) > maxAddrs {
		return fmt.Errorf("%d addresses, at most %d", len(s.Addrs), maxAddrs)
	}
	for i, a := range s.Addrs {
		if err := checkString(fmt.Sprintf("address %d", i), a, maxAddrLen); err != nil {
			return err
		}
	}
	if err := checkString("inventory digest", s.InventoryDigest, maxDigestLen); err != nil {
		return err
	}
	if err := checkString("agent version", s.AgentVersion, maxShortLen); err != nil {
		return err
	}
	if err := checkString("package format", s.Format, maxShortLen); err != nil {
		return err
	}
	if len(s.Results) > MaxResults {
		return fmt.Errorf("%d update results, at most %d", len(s.Results), MaxResults)
	}
	for i, r := range s.Results {
		if r.ID == (ResultID{}) {
			return fmt.Errorf("result %d: no update ID", i)
		}
	}
	for name, v := range map[string]int{"pending": s.Updates.Pending, "installed": s.Updates.Installed, "failed": s.Updates.Failed} {
		if v < 0 || v >= maxCount {
			return fmt.Errorf("update count %s = %d out of range", name, v)
		}
	}
	return nil
}

func checkString(name, v string, maxLen int) error {
	if len(v) > maxLen {
		return fmt.Errorf("%s is %d bytes, at most %d", name, len(v), maxLen)
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("%s is not UTF-8", name)
	}
	return nil
}

// equalStates compares two states field by field.
func equalStates(a, b *State) bool {
	return a.Ring == b.Ring && slices.Equal(a.Tags, b.Tags) && slices.Equal(a.Addrs, b.Addrs) &&
		a.PolicyVersion == b.PolicyVersion && a.InventoryDigest == b.InventoryDigest &&
		a.Updates == b.Updates && a.Reboot.Required == b.Reboot.Required &&
		a.Reboot.Since.Equal(b.Reboot.Since) && a.Reboot.Deadline.Equal(b.Reboot.Deadline) &&
		a.Reboot.RefusedByUser == b.Reboot.RefusedByUser && a.Reboot.HookHeld == b.Reboot.HookHeld &&
		a.Reboot.Unhealthy == b.Reboot.Unhealthy && a.AgentVersion == b.AgentVersion &&
		a.LastUpdate.Equal(b.LastUpdate) && a.Content.Equal(b.Content) && slices.Equal(a.Results, b.Results) &&
		a.Exposure == b.Exposure && a.Format == b.Format
}

// cloneState deep-copies the slices so callers cannot alias internal state.
func cloneState(s State) State {
	s.Tags = slices.Clone(s.Tags)
	s.Addrs = slices.Clone(s.Addrs)
	s.Results = slices.Clone(s.Results)
	s.Content.hashes = slices.Clone(s.Content.hashes)
	s.Content.bloom = slices.Clone(s.Content.bloom)
	return s
}
