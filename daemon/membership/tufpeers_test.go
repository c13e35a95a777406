package membership

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/patchring/patchring/p2p/content"
	"github.com/patchring/patchring/p2p/exchange"
	"github.com/patchring/patchring/p2p/gossip"
	"github.com/patchring/patchring/policy/trust"
	"github.com/patchring/patchring/policy/tufrepo"
)

func newPeerID(t testing.TB) peer.ID {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestMetaPeers(t *testing.T) {
	self := newPeerID(t).String()
	ids := make([]string, 6)
	for i := range ids {
		ids[i] = newPeerID(t).String()
	}
	addrs := []string{"/ip4/127.0.0.1/tcp/4001"}
	member := func(id string, v uint64, live gossip.Liveness) gossip.Member {
		return gossip.Member{NodeID: id, Liveness: live, State: gossip.State{PolicyVersion: v, Addrs: addrs}}
	}
	for _, tc := range []struct {
		name    string
		members []gossip.Member
		own     int64
		want    []string // IDs in order; "" matches any of equal rank
	}{
		{"highest version first", []gossip.Member{member(ids[0], 3, gossip.LivenessAlive), member(ids[1], 9, gossip.LivenessAlive), member(ids[2], 5, gossip.LivenessAlive)}, 0,
			[]string{ids[1], ids[2], ids[0]}},
		{"skips self, dead, silent and older than ours", []gossip.Member{
			{NodeID: self, Local: true, Liveness: gossip.LivenessAlive, State: gossip.State{PolicyVersion: 99, Addrs: addrs}},
			member(ids[0], 7, gossip.LivenessDead),
			member(ids[1], 7, gossip.LivenessLeft),
			member(ids[2], 0, gossip.LivenessAlive),
			member(ids[3], 4, gossip.LivenessAlive),
			member(ids[4], 5, gossip.LivenessAlive),
			{NodeID: ids[5], Liveness: gossip.LivenessAlive, State: gossip.State{PolicyVersion: 8}}, // no address
			{NodeID: "not-a-peer-id", Liveness: gossip.LivenessAlive, State: gossip.State{PolicyVersion: 8, Addrs: addrs}},
		}, 5, []string{ids[4]}},
		{"equal versions all kept", []gossip.Member{member(ids[0], 4, gossip.LivenessAlive), member(ids[1], 4, gossip.LivenessAlive)}, 4,
			[]string{"", ""}},
		{"none", nil, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := metaPeers(tc.members, self, tc.own)
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %d peers", got, len(tc.want))
			}
			for i, c := range got {
				if tc.want[i] != "" && c.ai.ID.String() != tc.want[i] {
					t.Errorf("peer %d = %s, want %s", i, c.ai.ID, tc.want[i])
				}
				if len(c.ai.Addrs) != 1 {
					t.Errorf("peer %d has addresses %v", i, c.ai.Addrs)
				}
			}
			again := metaPeers(tc.members, self, tc.own)
			for i := range got {
				if again[i].ai.ID != got[i].ai.ID {
					t.Errorf("order is not stable: %v then %v", got, again)
				}
			}
		})
	}
}

func TestMetaChain(t *testing.T) {
	ids := make([]peer.ID, 5)
	for i := range ids {
		ids[i] = newPeerID(t)
	}
	origin := trust.NewOriginSource("http://origin.invalid/repo")
	cand := func(i int, v uint64) metaCandidate { return metaCandidate{ai: peer.AddrInfo{ID: ids[i]}, v: v} }
	for _, tc := range []struct {
		name  string
		cands []metaCandidate
		own   int64
		want  []string // "ahead N", "origin", "confirm N"
	}{
		{"no peers", nil, 3, []string{"origin"}},
		{"ahead first, equals after the origin", []metaCandidate{cand(0, 9), cand(1, 5), cand(2, 5)}, 5, []string{"ahead 0", "origin", "confirm 1", "confirm 2"}},
		{"at most three peers", []metaCandidate{cand(0, 9), cand(1, 8), cand(2, 7), cand(3, 6), cand(4, 6)}, 6, []string{"ahead 0", "ahead 1", "ahead 2", "origin"}},
		{"no state yet: every peer is ahead", []metaCandidate{cand(0, 2), cand(1, 1)}, 0, []string{"ahead 0", "ahead 1", "origin"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The current chain may hold peers from before: they are replaced.
			current := []trust.Source{&peerSource{ai: peer.AddrInfo{ID: ids[4]}}, origin}
			chain := metaChain(nil, tc.cands, tc.own, current)
			var got []string
			for _, s := range chain {
				ps, ok := s.(*peerSource)
				if !ok {
					got = append(got, "origin")
					continue
				}
				kind := "ahead"
				if ps.confirmOnly {
					kind = "confirm"
				}
				got = append(got, fmt.Sprintf("%s %d", kind, slices.Index(ids, ps.ai.ID)))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("chain %v, want %v", got, tc.want)
			}
		})
	}
}

func TestNewlyAhead(t *testing.T) {
	a, b := newPeerID(t), newPeerID(t)
	origin := trust.NewOriginSource("http://origin.invalid/repo")
	ps := func(id peer.ID, v uint64, confirm bool) trust.Source {
		return &peerSource{ai: peer.AddrInfo{ID: id}, advertised: v, confirmOnly: confirm}
	}
	for _, tc := range []struct {
		name          string
		current, next []trust.Source
		want          bool
	}{
		{"first peer ahead", []trust.Source{origin}, []trust.Source{ps(a, 5, false), origin}, true},
		{"same peer, same version", []trust.Source{ps(a, 5, false), origin}, []trust.Source{ps(a, 5, false), origin}, false},
		{"same peer advertises more", []trust.Source{ps(a, 5, false), origin}, []trust.Source{ps(a, 6, false), origin}, true},
		{"peer caught up with", []trust.Source{ps(a, 5, false), origin}, []trust.Source{origin, ps(a, 5, true)}, false},
		{"a peer left", []trust.Source{ps(a, 5, false), ps(b, 5, false), origin}, []trust.Source{ps(a, 5, false), origin}, false},
		{"confirmation peer added", []trust.Source{origin}, []trust.Source{origin, ps(b, 5, true)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := newlyAhead(tc.current, tc.next); got != tc.want {
				t.Errorf("newlyAhead = %v, want %v", got, tc.want)
			}
		})
	}
}

// metaFleet is a TUF repository served by an origin on 127.0.0.1, agents
// that verified it, and libp2p exchange nodes on 127.0.0.1.
type metaFleet struct {
	t       *testing.T
	repoDir string
	keysDir string
	root    []byte
	origin  *httptest.Server
	dead    trust.Source // an origin that is down
}

var (
	metaPolicyV1 = []byte(`{"policy":1}`)
	metaPolicyV2 = []byte(`{"policy":2}`)
)

func newMetaFleet(t *testing.T) *metaFleet {
	t.Helper()
	dir := t.TempDir()
	f := &metaFleet{t: t, repoDir: filepath.Join(dir, "repo"), keysDir: filepath.Join(dir, "keys")}
	repo, err := tufrepo.Init(f.repoDir, f.keysDir, tufrepo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.PublishPolicy(metaPolicyV1); err != nil {
		t.Fatal(err)
	}
	if f.root, err = repo.RootJSON(); err != nil {
		t.Fatal(err)
	}
	f.origin = httptest.NewServer(tufrepo.Handler(f.repoDir))
	t.Cleanup(f.origin.Close)
	gone := httptest.NewServer(nil)
	gone.Close()
	f.dead = &trust.HTTPSource{BaseURL: gone.URL, IsOriginServer: true, Label: "origin (down)"}
	return f
}

func (f *metaFleet) repo() *tufrepo.Repo {
	f.t.Helper()
	r, err := tufrepo.Open(f.repoDir, f.keysDir, "")
	if err != nil {
		f.t.Fatal(err)
	}
	return r
}

// agent returns a trust client installed with root 1 and sources.
func (f *metaFleet) agent(sources ...trust.Source) *trust.Client {
	f.t.Helper()
	c, err := trust.New(trust.Config{TrustedRoot: f.root, StateDir: filepath.Join(f.t.TempDir(), "tuf"), Sources: sources, Timeout: 10 * time.Second})
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

// verified returns an agent that refreshed from the origin.
func (f *metaFleet) verified() *trust.Client {
	f.t.Helper()
	c := f.agent(trust.NewOriginSource(f.origin.URL))
	if _, err := c.Refresh(context.Background()); err != nil {
		f.t.Fatal(err)
	}
	return c
}

func newMetaNode(t *testing.T, files exchange.Files) *exchange.Node {
	t.Helper()
	st, err := content.Open(t.TempDir(), content.Options{})
	if err != nil {
		t.Fatal(err)
	}
	n, err := exchange.New(exchange.Config{Store: st, ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	if files != nil {
		n.ServeFiles(files)
	}
	return n
}

func meshNodes(nodes ...*exchange.Node) {
	var ids []peer.ID
	for _, n := range nodes {
		ids = append(ids, n.ID())
	}
	for _, n := range nodes {
		n.SetAllowed(ids)
	}
}

// asMember describes an exchange node as gossip would.
func asMember(n *exchange.Node, version uint64) gossip.Member {
	m := gossip.Member{NodeID: n.ID().String(), Liveness: gossip.LivenessAlive, State: gossip.State{PolicyVersion: version}}
	for _, a := range n.AddrInfo().Addrs {
		m.State.Addrs = append(m.State.Addrs, a.String())
	}
	return m
}

// hostileFiles serves an honest node's files except where it lies, and
// counts what it was asked.
type hostileFiles struct {
	inner exchange.Files
	lie   func(path string, data []byte) ([]byte, error) // nil: honest

	mu    sync.Mutex
	asked map[string]int
}

func (h *hostileFiles) OpenFile(ctx context.Context, path string) (io.ReadCloser, int64, error) {
	h.mu.Lock()
	if h.asked == nil {
		h.asked = map[string]int{}
	}
	h.asked[path]++
	h.mu.Unlock()
	rc, n, err := h.inner.OpenFile(ctx, path)
	if h.lie == nil {
		return rc, n, err
	}
	var data []byte
	if err == nil {
		data, err = io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return nil, 0, err
		}
	}
	data, err = h.lie(path, data)
	if err != nil {
		return nil, 0, err
	}
	return io.NopCloser(bytes.NewReader(data)), int64(len(data)), nil
}

func (h *hostileFiles) count(path string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.asked[path]
}

func notFound(path string) error { return fmt.Errorf("%s: %w", path, exchange.ErrFileNotFound) }

// chainFor builds the victim's source chain the way the daemon does.
func chainFor(x *exchange.Node, members []gossip.Member, own int64, origin trust.Source) []trust.Source {
	return metaChain(x, metaPeers(members, x.ID().String(), own), own, []trust.Source{origin})
}

func TestPeerSourcesThroughTUF(t *testing.T) {
	f := newMetaFleet(t)
	honestA, honestC := f.verified(), f.verified()
	stA, _ := honestA.LastGood()
	version := uint64(stA.Versions.Timestamp)

	t.Run("peers first, origin last, through the file protocol", func(t *testing.T) {
		nA := newMetaNode(t, &metaFiles{trust: honestA})
		nC := newMetaNode(t, &metaFiles{trust: honestC})
		nB := newMetaNode(t, nil)
		meshNodes(nA, nC, nB)
		origin := trust.NewOriginSource(f.origin.URL)
		chain := chainFor(nB, []gossip.Member{asMember(nA, version), asMember(nC, version)}, 0, origin)
		if len(chain) != 3 || chain[2] != trust.Source(origin) {
			t.Fatalf("chain %v: want two peers, then the origin", names(chain))
		}
		if _, ok := chain[0].(trust.Origin); ok {
			t.Fatalf("a peer source claims to be an origin")
		}
		b := f.agent(chain...)
		res, err := b.Refresh(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(res.Source, "peer ") || res.Versions != stA.Versions || !bytes.Equal(res.Policy, metaPolicyV1) {
			t.Errorf("refresh via %q: %+v %q; want a peer, the origin's versions and policy", res.Source, res.Versions, res.Policy)
		}
	})

	t.Run("tampered metadata from the first peer: the next one is used", func(t *testing.T) {
		hostile := &hostileFiles{inner: &metaFiles{trust: honestA}, lie: func(path string, data []byte) ([]byte, error) {
			if path == "metadata/timestamp.json" {
				return resign(t, data, int64(version)+1), nil
			}
			if data == nil {
				return nil, notFound(path)
			}
			return data, nil
		}}
		nH := newMetaNode(t, hostile)
		nA := newMetaNode(t, &metaFiles{trust: honestA})
		nB := newMetaNode(t, nil)
		meshNodes(nH, nA, nB)
		// The liar advertises a newer version to be asked first, and its
		// timestamp claims it.
		chain := chainFor(nB, []gossip.Member{asMember(nA, version), asMember(nH, version+1)}, 0, f.dead)
		if chain[0].Name() != "peer "+nH.ID().String() {
			t.Fatalf("chain %v: want the highest advertised version first", names(chain))
		}
		b := f.agent(chain...)
		res, err := b.Refresh(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if res.Source != "peer "+nA.ID().String() || res.Versions != stA.Versions {
			t.Errorf("refresh via %q %+v, want the honest peer %s", res.Source, res.Versions, nA.ID())
		}
		if hostile.count("metadata/timestamp.json") == 0 {
			t.Error("the lying peer was never asked")
		}
	})

	t.Run("a peer advertising news it cannot deliver does not freeze the agent", func(t *testing.T) {
		b := f.verified()
		// A new policy at the origin; the liar serves the old (genuine,
		// still valid) metadata while advertising a newer version.
		if _, err := f.repo().PublishPolicy(metaPolicyV2); err != nil {
			t.Fatal(err)
		}
		hostile := &hostileFiles{inner: &metaFiles{trust: honestA}}
		nH := newMetaNode(t, hostile)
		nB := newMetaNode(t, nil)
		meshNodes(nH, nB)
		own, _ := b.LastGood()
		b.SetSources(chainFor(nB, []gossip.Member{asMember(nH, 1000)}, own.Versions.Timestamp, trust.NewOriginSource(f.origin.URL)))
		res, err := b.Refresh(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(res.Source, "origin ") || !bytes.Equal(res.Policy, metaPolicyV2) || hostile.count("metadata/timestamp.json") == 0 {
			t.Errorf("refresh via %q, policy %q, liar asked %d times: want the liar asked, then the origin's new policy",
				res.Source, res.Policy, hostile.count("metadata/timestamp.json"))
		}
	})

	t.Run("tampered policy from the first peer: the genuine one is verified", func(t *testing.T) {
		hostile := &hostileFiles{inner: &metaFiles{trust: honestA}, lie: func(path string, data []byte) ([]byte, error) {
			if strings.HasPrefix(path, "targets/") && data != nil {
				return bytes.Replace(data, []byte("1"), []byte("9"), 1), nil
			}
			if data == nil {
				return nil, notFound(path)
			}
			return data, nil
		}}
		nH := newMetaNode(t, hostile)
		nA := newMetaNode(t, &metaFiles{trust: honestA})
		nB := newMetaNode(t, nil)
		meshNodes(nH, nA, nB)
		b := f.agent(chainFor(nB, []gossip.Member{asMember(nA, version), asMember(nH, 1000)}, 0, f.dead)...)
		res, err := b.Refresh(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(res.Policy, metaPolicyV1) {
			t.Errorf("policy %q, want the signed one", res.Policy)
		}
	})

	t.Run("catalog payload from a peer's content store", func(t *testing.T) {
		payload := []byte(strings.Repeat("tool 1.0\n", 5000))
		src := filepath.Join(t.TempDir(), "tool_1.0_amd64.deb")
		os.WriteFile(src, payload, 0o644)
		repo := f.repo()
		name, err := repo.AddCatalogFile(src, tufrepo.CatalogMeta{Package: "tool", Version: "1.0"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := repo.Publish(); err != nil {
			t.Fatal(err)
		}
		holder := f.verified()
		st, err := content.Open(t.TempDir(), content.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Put(context.Background(), content.Sum(payload), int64(len(payload)), bytes.NewReader(payload)); err != nil {
			t.Fatal(err)
		}
		nA := newMetaNode(t, &metaFiles{trust: holder, content: st})
		nB := newMetaNode(t, nil)
		meshNodes(nA, nB)
		b := f.verified() // knows the catalog entry; the origin is now down
		hv, _ := holder.LastGood()
		b.SetSources(chainFor(nB, []gossip.Member{asMember(nA, uint64(hv.Versions.Timestamp))}, 0, f.dead))
		dst := t.TempDir()
		path, err := b.DownloadTarget(context.Background(), name, dst)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(path)
		if !bytes.Equal(got, payload) {
			t.Error("downloaded payload differs")
		}
	})
}

func TestPeerHidingRootRotation(t *testing.T) {
	f := newMetaFleet(t)
	stale := f.verified() // stays on root 1
	if _, err := f.repo().RotateKey(tufrepo.RoleRoot); err != nil {
		t.Fatal(err)
	}
	if _, err := f.repo().PublishPolicy(metaPolicyV2); err != nil {
		t.Fatal(err)
	}
	honest := f.verified() // root 2
	st, _ := honest.LastGood()
	if st.Versions.Root != 2 {
		t.Fatalf("honest agent on root %d, want 2", st.Versions.Root)
	}
	version := uint64(st.Versions.Timestamp)
	// The liar has everything the honest agent verified but denies root 2:
	// its timestamp key did not change, so without the root probe rule an
	// agent on root 1 would accept the new metadata under the old root.
	hostile := &hostileFiles{inner: &metaFiles{trust: honest}, lie: func(path string, data []byte) ([]byte, error) {
		if path == "metadata/2.root.json" || data == nil {
			return nil, notFound(path)
		}
		return data, nil
	}}
	nH := newMetaNode(t, hostile)
	nA := newMetaNode(t, &metaFiles{trust: honest})
	nStale := newMetaNode(t, &metaFiles{trust: stale, fresh: func() bool { return false }})
	nB := newMetaNode(t, nil)
	meshNodes(nH, nA, nStale, nB)

	for _, tc := range []struct {
		name    string
		members []gossip.Member
		origin  trust.Source
		want    error // nil: success on root 2
	}{
		{"lone peer, origin down: not believed", []gossip.Member{asMember(nH, version)}, f.dead, trust.ErrRootUnconfirmed},
		{"stale peer cannot vouch for the denial", []gossip.Member{asMember(nH, version), asMember(nStale, version)}, f.dead, trust.ErrRootUnconfirmed},
		{"a second peer has the root", []gossip.Member{asMember(nH, version+5), asMember(nA, version)}, f.dead, nil},
		{"the origin has the root", []gossip.Member{asMember(nH, version)}, trust.NewOriginSource(f.origin.URL), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := f.agent(chainFor(nB, tc.members, 0, tc.origin)...)
			res, err := b.Refresh(context.Background())
			if tc.want != nil {
				if !errors.Is(err, tc.want) {
					t.Fatalf("refresh: %v, want %v", err, tc.want)
				}
				if _, err := b.LastGood(); !errors.Is(err, trust.ErrNoState) {
					t.Errorf("agent kept something after a refused refresh: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Versions.Root != 2 || !bytes.Equal(res.Policy, metaPolicyV2) {
				t.Errorf("root %d policy %q, want root 2 and the new policy", res.Versions.Root, res.Policy)
			}
		})
	}
	if hostile.count("metadata/2.root.json") == 0 {
		t.Error("the liar was never asked for root 2")
	}
}

func TestMetaFilesRoots(t *testing.T) {
	f := newMetaFleet(t)
	if _, err := f.repo().RotateKey(tufrepo.RoleRoot); err != nil {
		t.Fatal(err)
	}
	c := f.verified()
	// Installed with root 2, the node never saw root 1.
	root2, err := os.ReadFile(filepath.Join(f.repoDir, "metadata", "2.root.json"))
	if err != nil {
		t.Fatal(err)
	}
	late, err := trust.New(trust.Config{TrustedRoot: root2, StateDir: filepath.Join(t.TempDir(), "tuf"), Sources: []trust.Source{trust.NewOriginSource(f.origin.URL)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := late.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	fresh := true
	for _, tc := range []struct {
		name  string
		files *metaFiles
		path  string
		fresh bool
		want  error // nil: served
	}{
		{"walked root", &metaFiles{trust: c}, "metadata/1.root.json", true, nil},
		{"current root", &metaFiles{trust: c}, "metadata/2.root.json", true, nil},
		{"next root denied when fresh", &metaFiles{trust: c}, "metadata/3.root.json", true, exchange.ErrFileNotFound},
		{"next root not denied when stale", &metaFiles{trust: c}, "metadata/3.root.json", false, exchange.ErrFileUnavailable},
		{"older root not held is no denial", &metaFiles{trust: late}, "metadata/1.root.json", true, exchange.ErrFileUnavailable},
		{"timestamp", &metaFiles{trust: c}, "metadata/timestamp.json", true, nil},
		{"unknown file", &metaFiles{trust: c}, "metadata/foo.json", true, exchange.ErrFileNotFound},
		{"payload not held", &metaFiles{trust: c}, "targets/catalog/x/1/" + strings.Repeat("ab", 32) + ".x.deb", true, exchange.ErrFileNotFound},
		{"no trust client", &metaFiles{}, "metadata/timestamp.json", true, exchange.ErrFileNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fresh = tc.fresh
			tc.files.fresh = func() bool { return fresh }
			rc, n, err := tc.files.OpenFile(context.Background(), tc.path)
			if tc.want != nil {
				if !errors.Is(err, tc.want) {
					t.Fatalf("OpenFile(%s): %v, want %v", tc.path, err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			data, _ := io.ReadAll(rc)
			want, _ := os.ReadFile(filepath.Join(f.repoDir, tc.path))
			if int64(len(data)) != n || !bytes.Equal(data, want) {
				t.Errorf("served %d bytes (announced %d), want the repository's %d", len(data), n, len(want))
			}
		})
	}
}

// resign changes a metadata file's signed content (a later expiry, and
// the version when not 0) and keeps the old signatures: what a peer
// without the keys can do.
func resign(t testing.TB, data []byte, version int64) []byte {
	t.Helper()
	var md map[string]any
	if err := json.Unmarshal(data, &md); err != nil {
		t.Fatal(err)
	}
	signed := md["signed"].(map[string]any)
	exp, err := time.Parse(time.RFC3339, signed["expires"].(string))
	if err != nil {
		t.Fatal(err)
	}
	signed["expires"] = exp.Add(24 * time.Hour).Format(time.RFC3339)
	if version != 0 {
		signed["version"] = version
	}
	out, err := json.Marshal(md)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func names(ss []trust.Source) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.Name()
	}
	return out
}
