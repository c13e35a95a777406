package daemon

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/theupdateframework/go-tuf/v2/metadata"

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
// chain asks the members that gossip the newest policy version first (at
// most maxMetaPeers of them) and the origin last. Peers are untrusted
// transport: everything they send is verified by go-tuf from this node's
// own root of trust, a peer that fails is followed by the next source, and
// a peer's 404 for the next root version is believed only when the origin
// or a second source confirms it (policy/trust).

// maxMetaPeers caps the peers in the chain before the origin: enough for
// one to fail and two to confirm a root probe without the origin.
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
type peerSource struct {
	x  *exchange.Node
	ai peer.AddrInfo
}

var _ trust.Source = (*peerSource)(nil)

// Name implements trust.Source.
func (s *peerSource) Name() string { return "peer " + s.ai.ID.String() }

// Fetch implements trust.Source: a file the peer does not have is a 404.
func (s *peerSource) Fetch(ctx context.Context, path string, maxLength int64) (io.ReadCloser, error) {
	rc, _, err := s.x.FetchFile(ctx, s.ai, path, maxLength)
	switch {
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

// metaPeers chooses the members to fetch the repository from: live
// members other than this node that gossip a policy (timestamp) version at
// least as new as own, the highest first, at most max, with their libp2p
// addresses. Equals are ordered by a hash of this node's and the member's
// IDs: stable for one node, different across nodes, so a site does not
// pile onto one member. The version is a hint: it only orders sources.
func metaPeers(members []gossip.Member, self string, own int64, max int) []peer.AddrInfo {
	type cand struct {
		ai   peer.AddrInfo
		v    uint64
		rank uint64
	}
	var cs []cand
	for _, m := range members {
		if m.Local || m.NodeID == self || m.Liveness != gossip.LivenessAlive || m.State.PolicyVersion == 0 || int64(m.State.PolicyVersion) < own {
			continue
		}
		id, err := peer.Decode(m.NodeID)
		if err != nil {
			continue
		}
		ai := peer.AddrInfo{ID: id}
		for _, s := range m.State.Addrs {
			if a, err := ma.NewMultiaddr(s); err == nil {
				ai.Addrs = append(ai.Addrs, a)
			}
		}
		if len(ai.Addrs) > 0 {
			sum := sha256.Sum256([]byte(self + "\x00" + m.NodeID))
			cs = append(cs, cand{ai, m.State.PolicyVersion, binary.BigEndian.Uint64(sum[:8])})
		}
	}
	slices.SortFunc(cs, func(a, b cand) int {
		if c := cmp.Compare(b.v, a.v); c != 0 {
			return c
		}
		return cmp.Compare(a.rank, b.rank)
	})
	out := make([]peer.AddrInfo, 0, min(len(cs), max))
	for _, c := range cs[:min(len(cs), max)] {
		out = append(out, c.ai)
	}
	return out
}

// metaChain is the trust client's source chain: the peers in order, then
// the origins (the chain's sources that are not peers) last.
func metaChain(x *exchange.Node, peers []peer.AddrInfo, current []trust.Source) []trust.Source {
	var out []trust.Source
	for _, ai := range peers {
		out = append(out, &peerSource{x: x, ai: ai})
	}
	for _, s := range current {
		if _, isPeer := s.(*peerSource); !isPeer {
			out = append(out, s)
		}
	}
	return out
}

// useMetaPeers points the trust client at the chosen peers, the origin
// last. It runs on gossip events and ticks; the chain is replaced only
// when the choice changed.
func (f *fleet) useMetaPeers() {
	tc := f.d.trust
	if f.x == nil || tc == nil {
		return
	}
	var own int64
	if f.d.pol != nil {
		own = f.d.pol.TimestampVersion()
	}
	current := tc.Sources()
	next := metaChain(f.x, metaPeers(f.g.Members(), f.d.ID(), own, maxMetaPeers), current)
	if slices.EqualFunc(current, next, func(a, b trust.Source) bool { return a.Name() == b.Name() }) {
		return
	}
	names := make([]string, len(next))
	for i, s := range next {
		names[i] = s.Name()
	}
	f.d.log.Debug("policy: sources changed", "sources", names)
	tc.SetSources(next)
}

// serveMeta lets the fleet members fetch what this node verified.
func (f *fleet) serveMeta() {
	if f.x != nil {
		f.x.ServeFiles(&metaFiles{trust: f.d.trust, content: f.d.content, fresh: f.verifiedRecently})
	}
}

// verifiedRecently reports whether the last successful policy refresh is
// at most three refresh intervals (and at least 15 minutes) old.
func (f *fleet) verifiedRecently() bool {
	if f.d.pol == nil {
		return false
	}
	window := max(3*f.d.cfg.Policy.RefreshInterval, 15*time.Minute)
	last := f.d.pol.Effective().Verified
	return !last.IsZero() && time.Since(last) <= window
}
