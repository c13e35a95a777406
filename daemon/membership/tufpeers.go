package membership

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/patchring/patchring/daemon/aptproxy"
	"github.com/patchring/patchring/p2p/content"
	"github.com/patchring/patchring/p2p/exchange"
	"github.com/patchring/patchring/p2p/gossip"
	"github.com/patchring/patchring/policy/trust"
)

// Peers as sources of the fleet's TUF repository.
//
// Every node serves what it verified (the exact metadata bytes, every root
// version it walked, the policy, and catalog payloads its content store
// holds) to the fleet members over /patchring/meta/1. The trust client's
// chain asks the members that gossip a newer policy version than ours
// first (highest first), then the origin, then members at our own version,
// which only confirm root probes; at most maxMetaPeers peers in all. Peers
// are untrusted transport: everything they send is verified by go-tuf from
// this node's own root of trust, a peer that fails is followed by the next
// source, and a peer's 404 for the next root version is believed only when
// the origin or a second source confirms it (policy/trust).

// maxMetaPeers caps the peers in the chain (before and after the origin):
// enough for one to fail and two to confirm a root probe without the
// origin.
const maxMetaPeers = 3

// metaFiles serves this node's verified repository files to its peers.
type metaFiles struct {
	trust   *trust.Client  // nil without a policy origin
	content *content.Store // nil without a content store
	// fresh reports whether this node verified the repository recently
	// (nil: always). Only then does it deny root versions newer than its
	// own: a node whose refreshes have been failing cannot vouch that no
	// rotation happened, and its 404 would count as a confirmation.
	fresh func() bool
}

var _ exchange.Files = (*metaFiles)(nil)

// OpenFile implements exchange.Files.
func (m *metaFiles) OpenFile(_ context.Context, path string) (io.ReadCloser, int64, error) {
	if m.trust != nil {
		if data, ok := m.trust.VerifiedFile(path); ok {
			return io.NopCloser(bytes.NewReader(data)), int64(len(data)), nil
		}
		if v, ok := rootPathVersion(path); ok {
			switch {
			case v <= m.trust.RootVersion():
				// A root this node went past but does not hold
				// (installed with a later one, or state from before
				// roots were kept): it exists, so a 404 would be a
				// false denial.
				return nil, 0, fmt.Errorf("%s: %w: root version %d is not kept here", path, exchange.ErrFileUnavailable, v)
			case m.fresh != nil && !m.fresh():
				return nil, 0, fmt.Errorf("%s: %w: not verified recently, cannot vouch that root version %d does not exist", path, exchange.ErrFileUnavailable, v)
			}
			return nil, 0, fmt.Errorf("%s: %w", path, exchange.ErrFileNotFound)
		}
	}
	if h, ok := targetContentHash(path); ok && m.content != nil {
		r, err := m.content.Open(h)
		if err == nil {
			return r, r.Size(), nil
		}
		if !errors.Is(err, content.ErrNotFound) {
			return nil, 0, fmt.Errorf("%s: %w: %v", path, exchange.ErrFileUnavailable, err)
		}
	}
	return nil, 0, fmt.Errorf("%s: %w", path, exchange.ErrFileNotFound)
}

// rootPathVersion parses "metadata/N.root.json".
func rootPathVersion(path string) (int64, bool) {
	n, ok := strings.CutPrefix(path, "metadata/")
	if !ok {
		return 0, false
	}
	n, ok = strings.CutSuffix(n, ".root.json")
	if !ok || n == "" || n[0] == '0' {
		return 0, false
	}
	v, err := strconv.ParseInt(n, 10, 64)
	return v, err == nil && v > 0
}

// targetContentHash returns the SHA-256 a consistent-snapshot target path
// (targets/<dir>/<sha256>.<name>) is named by: catalog payloads held in
// the content store are served by it. The asker verifies the bytes
// against the signed length and hashes.
func targetContentHash(path string) (content.Hash, bool) {
	if !strings.HasPrefix(path, "targets/") {
		return content.Hash{}, false
	}
	base := path[strings.LastIndexByte(path, '/')+1:]
	hexSum, _, ok := strings.Cut(base, ".")
	if !ok || len(hexSum) != 64 {
		return content.Hash{}, false
	}
	h, err := content.ParseHash(hexSum)
	return h, err == nil
}

// peerSource fetches repository files from one fleet member over
// /patchring/meta/1. It is not an origin.
//
// A peer that gossips a version ahead of ours is a refresh source, held to
// its word: the timestamp it serves must be at least the version it
// advertised, or the fetch fails and the chain moves on. Otherwise a
// member advertising a high version and serving the current metadata
// would end every refresh with "nothing new" before the origin is asked.
// A peer at our own version has nothing new to give and is only asked to
// confirm the root probe (root files only): a refresh through it would
// succeed with nothing new and hide an unreachable origin.
type peerSource struct {
	x           *exchange.Node
	ai          peer.AddrInfo
	advertised  uint64 // policy version the peer gossips
	confirmOnly bool   // serves root files only (see above)
}

var _ trust.Source = (*peerSource)(nil)

// Name implements trust.Source.
func (s *peerSource) Name() string { return "peer " + s.ai.ID.String() }

// key identifies the source and its terms, to tell whether the chain
// changed.
func (s *peerSource) key() string {
	return fmt.Sprintf("%s v%d confirm=%v", s.ai.ID, s.advertised, s.confirmOnly)
}

// Fetch implements trust.Source: a file the peer does not have is a 404.
func (s *peerSource) Fetch(ctx context.Context, path string, maxLength int64) (io.ReadCloser, error) {
	if _, isRoot := rootPathVersion(path); s.confirmOnly && !isRoot {
		return nil, fmt.Errorf("fetch %s from %s: %w: a peer at our own version is asked only to confirm root versions", path, s.Name(), trust.ErrUnavailable)
	}
	rc, _, err := s.x.FetchFile(ctx, s.ai, path, maxLength)
	switch {
	case err == nil && path == "metadata/timestamp.json" && s.advertised > 0:
		return s.checkAdvertised(rc)
	case err == nil:
		return rc, nil
	case errors.Is(err, exchange.ErrFileNotFound):
		return nil, fmt.Errorf("%w: %w", &metadata.ErrDownloadHTTP{StatusCode: 404, URL: "libp2p://" + s.ai.ID.String() + "/" + path}, err)
	case errors.Is(err, exchange.ErrFileTooLarge):
		return nil, fmt.Errorf("%w: %w", trust.ErrTooLarge, err)
	case ctx.Err() != nil:
		return nil, err
	default:
		return nil, fmt.Errorf("%w: %w", trust.ErrUnavailable, err)
	}
}

// checkAdvertised reads the (small, capped) timestamp and refuses it when
// it claims an older version than the peer advertised. The claim is not
// trusted either way: go-tuf verifies what is returned.
func (s *peerSource) checkAdvertised(rc io.ReadCloser) (io.ReadCloser, error) {
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return nil, err
	}
	var ts struct {
		Signed struct {
			Version int64 `json:"version"`
		} `json:"signed"`
	}
	if err := json.Unmarshal(data, &ts); err != nil {
		return nil, fmt.Errorf("fetch metadata/timestamp.json from %s: %w: %v", s.Name(), trust.ErrMalformed, err)
	}
	if ts.Signed.Version < int64(s.advertised) {
		return nil, fmt.Errorf("fetch metadata/timestamp.json from %s: %w: it advertised version %d and serves version %d",
			s.Name(), trust.ErrUnavailable, s.advertised, ts.Signed.Version)
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

// metaCandidate is a member that can serve the repository.
type metaCandidate struct {
	ai peer.AddrInfo
	v  uint64 // advertised policy version
}

// metaPeers lists the live members other than this node that gossip a
// policy (timestamp) version at least as new as own, with their libp2p
// addresses, the highest version first. Equals are ordered by a hash of
// this node's and the member's IDs: stable for one node, different across
// nodes, so a site does not pile onto one member. The version is a hint:
// it only orders and classifies sources.
func metaPeers(members []gossip.Member, self string, own int64) []metaCandidate {
	type ranked struct {
		metaCandidate
		rank uint64
	}
	var cs []ranked
	for _, m := range members {
		if m.Local || m.NodeID == self || m.Liveness != gossip.LivenessAlive || m.State.PolicyVersion == 0 || int64(m.State.PolicyVersion) < own {
			continue
		}
		if ai, ok := memberAddrInfo(m); ok {
			sum := sha256.Sum256([]byte(self + "\x00" + m.NodeID))
			cs = append(cs, ranked{metaCandidate{ai, m.State.PolicyVersion}, binary.BigEndian.Uint64(sum[:8])})
		}
	}
	slices.SortFunc(cs, func(a, b ranked) int {
		if c := cmp.Compare(b.v, a.v); c != 0 {
			return c
		}
		return cmp.Compare(a.rank, b.rank)
	})
	out := make([]metaCandidate, len(cs))
	for i, c := range cs {
		out[i] = c.metaCandidate
	}
	return out
}

// metaChain is the trust client's source chain: at most maxMetaPeers
// peers, those ahead of own first (refresh sources, highest first), then
// the origins (the current chain's sources that are not peers), then
// peers at our own version (root confirmations only).
func metaChain(x *exchange.Node, cands []metaCandidate, own int64, current []trust.Source) []trust.Source {
	var ahead, equal []trust.Source
	for _, c := range cands[:min(len(cands), maxMetaPeers)] {
		ps := &peerSource{x: x, ai: c.ai, advertised: c.v, confirmOnly: int64(c.v) <= own}
		if ps.confirmOnly {
			equal = append(equal, ps)
		} else {
			ahead = append(ahead, ps)
		}
	}
	out := ahead
	for _, s := range current {
		if _, isPeer := s.(*peerSource); !isPeer {
			out = append(out, s)
		}
	}
	return append(out, equal...)
}

// sourceKey identifies a source of the chain and its terms.
func sourceKey(s trust.Source) string {
	if ps, ok := s.(*peerSource); ok {
		return ps.key()
	}
	return s.Name()
}

// useMetaPeers points the trust client at the chosen peers around the
// origin. It runs on gossip events and ticks; the chain is replaced only
// when the choice changed.
func (f *Membership) useMetaPeers() {
	tc := f.cfg.Trust
	if f.x == nil || tc == nil {
		return
	}
	var own int64
	if f.cfg.Policy != nil {
		own = f.cfg.Policy.TimestampVersion()
	}
	current := tc.Sources()
	members := f.g.Members()
	if !f.sharing().Enabled {
		members = nil // the policy turned peer sharing off: the origin only
	}
	next := metaChain(f.x, metaPeers(members, f.cfg.NodeID, own), own, current)
	if slices.EqualFunc(current, next, func(a, b trust.Source) bool { return sourceKey(a) == sourceKey(b) }) {
		return
	}
	keys := make([]string, len(next))
	for i, s := range next {
		keys[i] = sourceKey(s)
	}
	f.log.Debug("policy: sources changed", "sources", keys)
	tc.SetSources(next)
	if f.cfg.Policy != nil && newlyAhead(current, next) {
		// A member is ahead that was not before: it may have what the last
		// refresh could not get (the gossip hint fires once per version).
		f.cfg.Policy.Trigger()
	}
}

// newlyAhead reports whether next has a refresh peer that current lacks.
func newlyAhead(current, next []trust.Source) bool {
	had := map[string]bool{}
	for _, s := range current {
		if ps, ok := s.(*peerSource); ok && !ps.confirmOnly {
			had[ps.key()] = true
		}
	}
	for _, s := range next {
		if ps, ok := s.(*peerSource); ok && !ps.confirmOnly && !had[ps.key()] {
			return true
		}
	}
	return false
}

// serveMeta lets the fleet members fetch what this node verified.
func (f *Membership) serveMeta() {
	if f.x != nil {
		var files exchange.Files = &metaFiles{trust: f.cfg.Trust, content: f.cfg.Content, fresh: f.verifiedRecently}
		if f.cfg.Reports != nil {
			files = reportRouter{meta: files, reports: f.cfg.Reports}
		}
		if f.cfg.Unmanaged != nil {
			files = prefixRouter{prefix: UnmanagedPrefix, files: f.cfg.Unmanaged, next: files}
		}
		files = prefixRouter{prefix: aptproxy.ReleasePrefix, files: aptReleaseFiles{f}, next: files}
		files = prefixRouter{prefix: aptproxy.PrefetchPrefix, files: aptReleaseFiles{f}, next: files}
		f.x.ServeFiles(files)
	}
}

// verifiedRecently reports whether the last successful policy refresh is
// at most three refresh intervals (and at least 15 minutes) old.
func (f *Membership) verifiedRecently() bool {
	if f.cfg.Policy == nil {
		return false
	}
	window := max(3*f.cfg.PolicyRefresh, 15*time.Minute)
	last := f.cfg.Policy.Effective().Verified
	return !last.IsZero() && time.Since(last) <= window
}
