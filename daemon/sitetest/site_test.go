//go:build linux

package sitetest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/patchring/patchring/daemon/apitypes"
	"github.com/patchring/patchring/p2p/site"
	"github.com/patchring/patchring/platform/apt/apttest"
)

// Policies. "hold" approves nothing, so nodes see an update without
// acting on it; publishing "go" then approves it for every node at the
// same moment (the nodes refresh their policy every 2 s, and a node that
// verified a newer one tells the others over gossip).
const (
	policyHold = `schema: 1
name: hold
expires: 2035-01-01T00:00:00Z
rings:
  - name: all
    default: true
    defer: 0s
`
	policyGo = `schema: 1
name: go
expires: 2035-01-01T00:00:00Z
rings:
  - name: all
    default: true
    defer: 0s
auto_approve:
  - name: vendor updates
    sources: [apt]
`
)

func envInt(t testing.TB, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive whole number", name, v)
	}
	return n
}

// rollout is what one site rollout measured.
type rollout struct {
	nodes        int
	size11       int64 // acme-tool 1.1's .deb (the payload)
	size10       int64 // acme-tool 1.0's .deb (fetched too: the rollback copy)
	wan          wanCounters
	elapsed      time.Duration // from approval until every node installed
	fetchers     []string      // nodes (IPs) that fetched 1.1 from the origin
	chosen       *node         // the rendezvous choice for 1.1
	poolRequests int
	peers        map[*node]apitypes.Peers
	killedPart   int64 // bytes the origin sent the WAN fetcher before it was killed
}

func (r rollout) payloadBytes() int64 { return r.size11 + r.size10 }

// siteRollout runs a site of n nodes behind a WAN shaped to rate, makes a
// payloadBytes-sized acme-tool 1.1 available and approved for all of them
// at once, and measures until every node installed it. With killAt > 0 the
// WAN fetcher is killed (SIGKILL) once that fraction of 1.1 crossed the WAN
// to it, and the measurement ends when every other node installed it.
func siteRollout(t testing.TB, n, payloadBytes int, rate string, installTimeout time.Duration, killAt float64) (*testSite, rollout) {
	t.Helper()
	s := newSite(t, siteConfig{Nodes: n, Rate: rate})
	deb11, size11 := s.buildPayload(t, "1.1", payloadBytes)
	s.origin.publishPolicy(t, policyHold)
	s.startNodes(t)
	s.waitConverged(t, 2*time.Minute, "hold")

	// 1.1 appears in the vendor's repository; every node sees it and
	// waits for approval.
	s.origin.apt.MustAdd(t, deb11)
	s.waitAction(t, s.nodes, time.Minute, "1.1", "not-approved")
	s.waitConverged(t, time.Minute, "hold")

	r := rollout{nodes: n, size11: size11, size10: s.size10, peers: map[*node]apitypes.Peers{}}
	e11, ok := s.origin.apt.Entry("acme-tool", "1.1", apttest.DefaultArch)
	if !ok {
		t.Fatal("acme-tool 1.1 is not in the repository")
	}
	r.chosen = s.byID(site.Rank(e11.SHA256, members(s.nodes))[0].ID)
	before := s.net.counters(t)
	start := time.Now()
	base := filepath.Base(e11.Filename)
	s.origin.publishPolicy(t, policyGo)
	if killAt > 0 {
		r.killedPart = killFetcherAt(t, s, r.chosen, base, int64(float64(size11)*killAt))
	}
	s.waitInstalled(t, s.alive(), installTimeout, "1.1")
	r.elapsed = time.Since(start)
	r.wan = s.net.counters(t).sub(before)
	r.fetchers = s.origin.pool.Clients(base)
	r.poolRequests = len(s.origin.pool.Transfers(base))
	ctx := context.Background()
	for _, nd := range s.alive() {
		p, err := nd.c.Peers(ctx)
		if err != nil {
			t.Fatalf("%s: peers: %v", nd.hostname, err)
		}
		r.peers[nd] = p
	}
	return s, r
}

// killFetcherAt waits until the origin sent fetcher at least part bytes of
// the payload file base, kills fetcher (SIGKILL, by the PID the test
// started) and returns what the origin had sent it.
func killFetcherAt(t testing.TB, s *testSite, fetcher *node, base string, part int64) int64 {
	t.Helper()
	s.waitFor(t, 2*time.Minute, "the WAN fetcher's download under way", func(context.Context) (bool, string) {
		for _, x := range s.origin.pool.Transfers(base) {
			if x.Client != fetcher.ip {
				t.Fatalf("%s fetched %s from the origin before the rendezvous choice %s", x.Client, base, fetcher.ip)
			}
			if x.Done() {
				t.Fatalf("%s finished the download (%d bytes) before the test could kill it: the WAN is too fast", fetcher.hostname, x.Sent())
			}
			if x.Sent() >= part {
				return true, ""
			}
		}
		return false, fmt.Sprintf("the origin has not sent %d bytes of %s yet", part, base)
	})
	fetcher.kill(t)
	var sent int64
	for _, x := range s.origin.pool.Transfers(base) {
		if x.Client == fetcher.ip {
			sent += x.Sent()
		}
	}
	t.Logf("killed the WAN fetcher %s (pid %d) after the origin sent it %d bytes", fetcher.hostname, fetcher.cmd.Process.Pid, sent)
	return sent
}

func (r rollout) report(t testing.TB) {
	t.Helper()
	var fromOrigin, fromPeers int64
	for _, p := range r.peers {
		fromOrigin += p.FromOrigin
		fromPeers += p.FromPeers
	}
	t.Logf("%d nodes, payload %d bytes (+%d for 1.0), all installed %.1fs after approval", r.nodes, r.size11, r.size10, r.elapsed.Seconds())
	t.Logf("WAN downstream %d bytes (%d packets), upstream %d bytes; payload class %d bytes (%.3f x payload), other %d bytes",
		r.wan.Down, r.wan.DownPackets, r.wan.Up, r.wan.Payload, float64(r.wan.Payload)/float64(r.payloadBytes()), r.wan.Other)
	t.Logf("1.1 fetched from the origin by %v in %d requests (rendezvous choice %s); agents report %d bytes from the origin, %d from peers",
		r.fetchers, r.poolRequests, r.chosen.ip, fromOrigin, fromPeers)
}

// TestSiteSharesPayloadOverLAN: 20 patchringd processes in one site; a
// ~2 MiB acme-tool 1.1 becomes available and approved for all of them at
// the same moment. Every node installs it, about one copy crosses the WAN
// (fetched by the node rendezvous hashing chose), and every other node
// shows the payload's bytes as coming from peers.
//
// The bound: one copy of the payloads (1.1 and the 1.0 every node keeps for
// rollback) costs S x ~1.046 on the wire (Ethernet, IP and TCP headers: 66
// bytes per 1448-byte segment) plus a few KB of handshakes and HTTP
// headers. Two copies would cost at least 2.09 S. So "payload bytes on
// the WAN <= 1.5 S" means exactly one copy crossed. The payload bytes are
// the downstream bytes from the pool host, split off by the classifier on
// the router; the rest of the WAN traffic (apt indices, TUF metadata,
// redirects) is measured separately in the other class, and the WAN
// link's own counter must equal the sum: WAN bytes <= 1.5 S + other.
func TestSiteSharesPayloadOverLAN(t *testing.T) {
	n := envInt(t, "PATCHRING_SITETEST_NODES", 20)
	_, r := siteRollout(t, n, 2<<20, "20mbit", 2*time.Minute, 0)
	r.report(t)
	S := r.payloadBytes()

	if r.wan.Payload < r.size11 {
		t.Errorf("only %d payload bytes crossed the WAN for a %d-byte payload: the classifier does not see the payload", r.wan.Payload, r.size11)
	}
	if limit := S * 3 / 2; r.wan.Payload > limit {
		t.Errorf("%d payload bytes crossed the WAN, more than 1.5 x %d = %d: more than one copy", r.wan.Payload, S, limit)
	}
	// The link's own counter: frames addressed to the router itself (ARP)
	// pass the link but not the classifier, and the router's ARP to the
	// nodes passes the classifier but not the link: a few hundred bytes.
	const slack = 16 << 10
	if limit := S*3/2 + r.wan.Other + slack; r.wan.Down > limit {
		t.Errorf("WAN link counted %d bytes downstream, more than 1.5 x payload + other + slack (%d)", r.wan.Down, limit)
	}
	if d := r.wan.Down - r.wan.Payload - r.wan.Other; d < -slack || d > slack {
		t.Errorf("WAN link counted %d bytes downstream, the classifier %d + %d: they should agree", r.wan.Down, r.wan.Payload, r.wan.Other)
	}
	if len(r.fetchers) != 1 || r.fetchers[0] != r.chosen.ip {
		t.Errorf("1.1 was fetched from the origin by %v, want only the rendezvous choice %s (%s)", r.fetchers, r.chosen.ip, r.chosen.hostname)
	}
	for nd, p := range r.peers {
		if nd == r.chosen {
			if p.FromOrigin < r.size11 {
				t.Errorf("%s (the WAN fetcher) reports %d bytes from the origin, want at least %d", nd.hostname, p.FromOrigin, r.size11)
			}
			continue
		}
		if p.FromPeers < r.size11 {
			t.Errorf("%s: /v1/peers shows %d bytes from peers, want at least the payload's %d: %+v", nd.hostname, p.FromPeers, r.size11, p)
		}
		if p.FromOrigin > r.size10 {
			t.Errorf("%s: /v1/peers shows %d bytes from the origin; only the WAN fetcher should have any", nd.hostname, p.FromOrigin)
		}
		var in int64
		for _, pt := range p.Peers {
			in += pt.BytesIn
		}
		if in != p.FromPeers {
			t.Errorf("%s: per-peer bytes in (%d) do not add up to bytes from peers (%d)", nd.hostname, in, p.FromPeers)
		}
	}
}

// firstForBoth returns n keys such that one of them ranks first in
// rendezvous order for both keys among all n, and its index.
func firstForBoth(t testing.TB, n int, a, b string) ([]crypto.PrivKey, int) {
	t.Helper()
	for range 1000 {
		keys, ms := nodeKeys(t, n)
		fa, fb := site.Rank(a, ms)[0].ID, site.Rank(b, ms)[0].ID
		if fa == fb {
			for i, m := range ms {
				if m.ID == fa {
					return keys, i
				}
			}
		}
	}
	t.Fatal("no key set with one node first for both payloads in 1000 tries")
	return nil, 0
}

// nodeKeys makes n node keys and the members their IDs name, in order.
func nodeKeys(t testing.TB, n int) ([]crypto.PrivKey, []site.Member) {
	t.Helper()
	keys := make([]crypto.PrivKey, n)
	ms := make([]site.Member, n)
	for i := range keys {
		k, _, err := crypto.GenerateEd25519Key(nil)
		if err != nil {
			t.Fatal(err)
		}
		id, err := peer.IDFromPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		keys[i], ms[i] = k, site.Member{ID: id.String()}
	}
	return keys, ms
}

// TestOriginDownNodesUseLANPeer: one node (ring "first") installs
// acme-tool 1.1 while the rest of the site is held back by a pause in the
// signed policy; then the WAN is cut. When the pause ends, the others
// install 1.1 with the payloads from that peer, on the policy they
// verified before the cut: their policy refreshes fail, and they keep
// their last good policy.
//
// Not tested, because it is not implemented: policy (TUF metadata) from
// peers. The trust client's only source is the origin, so a node that
// joins while the WAN is down gets no policy and installs nothing.
//
// The agents refresh apt's indices rarely here (10 min): a failed
// `apt-get update` fails the engine's whole plan (daemon/engine Plan), so
// with the WAN down and a short refresh interval nothing would install.
func TestOriginDownNodesUseLANPeer(t *testing.T) {
	const n = 5
	s := newSite(t, siteConfig{Nodes: n, AptRefresh: 10 * time.Minute})
	deb11, size11 := s.buildPayload(t, "1.1", 2<<20)
	s.origin.apt.MustAdd(t, deb11)
	e11, _ := s.origin.apt.Entry("acme-tool", "1.1", apttest.DefaultArch)
	e10, _ := s.origin.apt.Entry("acme-tool", "1.0", apttest.DefaultArch)
	// The first ring's node must be the site's WAN fetcher for both
	// payloads (1.1 and the 1.0 it keeps for rollback): the rendezvous
	// choice is made over all live members, not over those that need the
	// payload now, so another choice would make it wait WaitTimeout (2 min)
	// before it fetched from the origin itself.
	keys, first := firstForBoth(t, n, e11.SHA256, e10.SHA256)
	s.cfg.Keys = keys
	s.cfg.Hostname = func(i int) string {
		if i == first {
			return "first-1"
		}
		return fmt.Sprintf("desk-%02d", i)
	}
	s.origin.publishPolicy(t, policyHold)
	setupStart := time.Now()
	s.startNodes(t)
	s.waitConverged(t, 2*time.Minute, "hold")
	s.waitAction(t, s.nodes, time.Minute, "1.1", "not-approved")
	setup := time.Since(setupStart)

	firstNode := s.nodes[first]
	var rest []*node
	for _, nd := range s.nodes {
		if nd != firstNode {
			rest = append(rest, nd)
		}
	}
	// The rest's pause must outlast what comes before the WAN cut (the
	// first ring installs, gossip spreads its content). That takes about
	// as long as the setup above on this machine under its current load,
	// so the pause scales with it: 25 s on an idle machine, more on a
	// loaded one.
	pause := max(25*time.Second, 2*setup)
	t.Logf("setup took %s; the rest pause for %s", setup.Round(time.Second), pause.Round(time.Second))
	published := time.Now()
	until := published.Add(pause).UTC().Truncate(time.Second)
	s.origin.publishPolicy(t, fmt.Sprintf(`schema: 1
name: wan-cut
expires: 2035-01-01T00:00:00Z
rings:
  - name: first
    select:
      - hostname: "first-*"
    defer: 0s
  - name: rest
    default: true
    defer: 0s
auto_approve:
  - name: vendor updates
    sources: [apt]
pauses:
  - ring: rest
    from: %s
    until: %s
    reason: the first ring tries it first
`, time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), until.Format(time.RFC3339)))
	s.waitInstalled(t, []*node{firstNode}, time.Minute, "1.1")
	s.waitAction(t, rest, 30*time.Second, "1.1", "paused")
	// The site learns that first-1 holds both payloads.
	s.waitFor(t, 30*time.Second, "first-1's content in gossip", func(ctx context.Context) (bool, string) {
		for _, nd := range rest {
			f, err := nd.c.Fleet(ctx)
			if err != nil {
				return false, err.Error()
			}
			for _, m := range f.Members {
				if m.NodeID == firstNode.id.String() && m.Content < 2 {
					return false, fmt.Sprintf("%s sees %d content items on first-1", nd.hostname, m.Content)
				}
			}
		}
		return true, ""
	})

	s.net.cutWAN(t)
	cut := time.Now()
	if left := until.Sub(cut); left < 5*time.Second {
		// Nothing failed: the machine slowed down after the setup was
		// measured, and the rest may install before the cut.
		t.Skipf("the WAN was cut only %s before the pause ends: the first ring's install and its gossip took %s, the setup before it %s (pause %s); the machine is too loaded for this test to show anything",
			left, cut.Sub(published).Round(time.Second), setup.Round(time.Second), pause.Round(time.Second))
	}
	wanAtCut := s.net.counters(t)
	t.Logf("WAN cut %s before the pause ends", until.Sub(cut).Round(time.Second))

	s.waitInstalled(t, rest, time.Until(until)+90*time.Second, "1.1")

	ctx := context.Background()
	for _, nd := range rest {
		p, err := nd.c.Policy(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if p.Name != "wan-cut" || p.Expired {
			t.Errorf("%s holds policy %q (expired %v) after the cut, want its last good policy wan-cut", nd.hostname, p.Name, p.Expired)
		}
		// A refresh started just before the cut can still be waiting on
		// the dead link (the trust client's 30 s request timeout), and
		// peers now serve the metadata they verified: whether a refresh
		// has failed yet is timing, not behaviour. What matters is above
		// (the last good policy is kept) and below (payloads from peers).
		if p.LastError != "" && p.LastTry.After(cut) {
			t.Logf("%s: refresh after the cut failed as expected: %s", nd.hostname, p.LastError)
		}
		peers, err := nd.c.Peers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if peers.FromOrigin != 0 || peers.FromPeers < size11+s.size10 {
			t.Errorf("%s: %d bytes from the origin, %d from peers; want none from the origin and both payloads (%d bytes) from peers",
				nd.hostname, peers.FromOrigin, peers.FromPeers, size11+s.size10)
		}
		t.Logf("%s: policy %q kept (last refresh error: %s); %d bytes from peers", nd.hostname, p.Name, p.LastError, peers.FromPeers)
	}
	for _, x := range s.origin.pool.Transfers("") {
		if x.Client != firstNode.ip {
			t.Errorf("%s fetched %s from the origin; only first-1 should have", x.Client, x.Path)
		}
	}
	if d := s.net.counters(t).sub(wanAtCut); d.Payload != 0 || d.Down != 0 {
		t.Errorf("bytes crossed the WAN after it was cut: %+v", d)
	}
}

// TestWANFetcherKilledMidDownload: the WAN is slow enough that the 8 MiB
// payload takes seconds to arrive. The node rendezvous hashing chose
// starts fetching it from the origin, and the other members copy its
// pieces as they arrive (it announces its partial download over gossip);
// the test kills it (SIGKILL, by the PID it started) halfway. Once gossip
// declares it dead, the next node in rendezvous order continues from the
// pieces the site holds: the killed fetcher's pieces do not cross the WAN
// again. The rest of the site installs it from peers, and no other node
// goes to the origin.
//
// The bound: one copy costs ~1.046 x the payload on the wire; fetching
// everything again after a kill at half would cost at least 1.5 x 1.046 =
// 1.57 x. Pieces in flight when the fetcher died (sent by the origin but
// not yet copied to a peer) are lost: at 8 Mbit/s and 256 KiB pieces a few
// hundred KB. So at most 1.3 x the payload may cross.
func TestWANFetcherKilledMidDownload(t *testing.T) {
	const n = 6
	s := newSite(t, siteConfig{Nodes: n, Rate: "8mbit", AptRefresh: 10 * time.Minute})
	deb11, size11 := s.buildPayload(t, "1.1", 8<<20)
	s.origin.apt.MustAdd(t, deb11)
	e11, _ := s.origin.apt.Entry("acme-tool", "1.1", apttest.DefaultArch)
	base := filepath.Base(e11.Filename)
	s.origin.publishPolicy(t, policyHold)
	s.startNodes(t)
	s.waitConverged(t, 2*time.Minute, "hold")
	s.waitAction(t, s.nodes, time.Minute, "1.1", "not-approved")

	rank := site.Rank(e11.SHA256, members(s.nodes))
	fetcher, successor := s.byID(rank[0].ID), s.byID(rank[1].ID)
	t.Logf("rendezvous order for 1.1: %s first, then %s", fetcher.hostname, successor.hostname)
	before := s.net.counters(t)
	// The origin stalls 1.1's download at half until the fetcher is
	// killed, so the kill lands mid-download however loaded the machine
	// (polling for "half sent" used to lose the race to a WAN that
	// finished first).
	release := s.origin.pool.Hold(t, base, size11/2)
	s.origin.publishPolicy(t, policyGo)

	killedPart := killFetcherAt(t, s, fetcher, base, size11/2)
	release() // the successor's download runs unheld
	killed := time.Now()

	s.waitInstalled(t, s.alive(), 2*time.Minute, "1.1")
	t.Logf("the site completed %.1fs after the kill", time.Since(killed).Seconds())
	wan := s.net.counters(t).sub(before)
	var successorPart int64
	for _, x := range s.origin.pool.Transfers(base) {
		if x.Client == successor.ip {
			successorPart += x.Sent()
		}
	}
	t.Logf("payload bytes on the WAN: %d (%.3f x the payload); the origin sent the killed fetcher %d bytes, its successor %d",
		wan.Payload, float64(wan.Payload)/float64(size11), killedPart, successorPart)
	if limit := size11 * 13 / 10; wan.Payload > limit {
		t.Errorf("%d payload bytes crossed the WAN, more than 1.3 x the payload (%d): the killed fetcher's pieces were fetched again", wan.Payload, limit)
	}
	if successorPart >= size11-killedPart/2 {
		t.Errorf("the origin sent the successor %d bytes of %d after the fetcher got %d: it did not continue from the site's pieces", successorPart, size11, killedPart)
	}

	clients := s.origin.pool.Clients(base)
	if len(clients) != 2 || clients[0] != fetcher.ip || clients[1] != successor.ip {
		t.Errorf("1.1 was fetched from the origin by %v; want the killed fetcher %s, then the next in rendezvous order %s",
			clients, fetcher.ip, successor.ip)
	}
	for _, x := range s.origin.pool.Transfers(base) {
		if x.Client == successor.ip && x.Start.Before(killed) {
			t.Errorf("%s started fetching from the origin before the fetcher was killed", successor.hostname)
		}
	}
	ctx := context.Background()
	for _, nd := range s.alive() {
		if nd == successor {
			continue
		}
		p, err := nd.c.Peers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if p.FromPeers < size11 {
			t.Errorf("%s got %d bytes from peers, want the whole payload (%d)", nd.hostname, p.FromPeers, size11)
		}
	}
	var names []string
	for _, nd := range s.alive() {
		names = append(names, nd.hostname)
	}
	t.Logf("installed on %s", strings.Join(names, ", "))
}
