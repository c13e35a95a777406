package gossip

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/patchring/patchring/internal/testutil"
	"github.com/patchring/patchring/policy/credential"
	"github.com/patchring/patchring/policy/credential/credtest"
)

// fleetTrust is the fleet document in force, swapped by a test as the
// admin publishes revocations.
type fleetTrust struct {
	p atomic.Pointer[credential.Trust]
}

func (f *fleetTrust) get() *credential.Trust { return f.p.Load() }

func nodeIDOf(t testing.TB, c Config) string {
	t.Helper()
	id, err := peer.IDFromPrivateKey(c.Identity)
	if err != nil {
		t.Fatal(err)
	}
	return id.String()
}

// A member of the pool needs a credential for its node ID: holders of the
// gossip key without one (or with a forged, expired, other fleet's or
// revoked one) are refused, their leases do not count and they see none of
// the pool's state; a revocation published later drops a member on the
// next Readmit.
func TestAdmissionRefusesOutsiders(t *testing.T) {
	ca := credtest.NewCA(t)
	ft := &fleetTrust{}
	ft.p.Store(ca.Trust(t, credential.Revocations{}))
	adm := FleetAdmitter{Fleet: ft.get}
	key := newKey(t)
	credFor := func(c *Config, site string) {
		_, raw := ca.Issue(t, nodeIDOf(t, *c), credtest.Spec{Site: site, Tags: []string{"pilot"}})
		c.Credential = raw
	}
	pool := startPool(t, 3, key, func(i int, c *Config) {
		c.Admitter = adm
		credFor(c, "site-a")
	})
	testutil.WaitFor(t, 20*time.Second, "the credentialed pool forms", allAlive(pool, 3))
	for _, m := range pool[1].Members() {
		if m.Credential == nil || m.Credential.Site != "site-a" || m.Visiting {
			t.Fatalf("member %s: credential %+v visiting %v", m.NodeID, m.Credential, m.Visiting)
		}
	}

	other := credtest.NewCA(t)
	revokedCfg := testConfig(t, 90, key, pool[0].LocalAddr())
	credFor(&revokedCfg, "site-a")
	outsiders := map[string]func(c *Config){
		"no credential": func(c *Config) {},
		"forged":        func(c *Config) { c.Credential = ca.Forge(t, nodeIDOf(t, *c), credtest.Spec{Site: "site-a"}) },
		"expired": func(c *Config) {
			_, c.Credential = ca.Issue(t, nodeIDOf(t, *c), credtest.Spec{Site: "site-a",
				NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
		},
		"other fleet": func(c *Config) { _, c.Credential = other.Issue(t, nodeIDOf(t, *c), credtest.Spec{Site: "site-a"}) },
		"another node's": func(c *Config) {
			c.Credential = pool[2].cfg.Credential // copied from a member
		},
	}
	ft.p.Store(ca.Trust(t, credential.Revocations{Nodes: []credential.RevokedNode{{NodeID: nodeIDOf(t, revokedCfg), Reason: "stolen laptop"}}}))
	var outs []*node
	names := map[string]string{}
	for what, mod := range outsiders {
		c := testConfig(t, 10+len(outs), key, pool[0].LocalAddr())
		mod(&c)
		n := startNode(t, c)
		outs = append(outs, n)
		names[n.NodeID()] = what
	}
	rn := startNode(t, revokedCfg)
	outs = append(outs, rn)
	names[rn.NodeID()] = "revoked"

	// Every outsider tries to take the one restart slot of the site.
	for _, o := range outs {
		go o.Lease().TryAcquire(context.Background(), "site-a/restart", 1, time.Minute)
	}
	testutil.WaitFor(t, 20*time.Second, "every outsider is refused by every member", func() error {
		for _, n := range pool {
			refused := map[string]bool{}
			for _, r := range n.Refused() {
				refused[r.NodeID] = true
			}
			for id, what := range names {
				if !refused[id] {
					return fmt.Errorf("%s has not refused the outsider with %s", n.NodeID(), what)
				}
			}
		}
		return nil
	})
	// Give the outsiders' gossip time to spread if it were going to: poll
	// until the members have exchanged several push/pulls.
	start := pool[0].Stats()
	testutil.WaitFor(t, 20*time.Second, "more gossip rounds", func() error {
		if pool[0].Stats().Refused < start.Refused+5 {
			return errNotYet
		}
		return nil
	})
	for _, n := range pool {
		if got := len(n.Members()); got != 3 {
			t.Errorf("%s lists %d members, want the 3 credentialed ones", n.NodeID(), got)
		}
		for id, what := range names {
			if _, ok := n.Member(id); ok {
				t.Errorf("%s lists the outsider with %s as a member", n.NodeID(), what)
			}
		}
		if h := n.Lease().Holders("site-a/restart"); len(h) != 0 {
			t.Errorf("%s counts outsiders' lease claims: %+v", n.NodeID(), h)
		}
	}
	for _, r := range pool[0].Refused() {
		what := names[r.NodeID]
		want := map[string]error{"no credential": ErrNoCredential, "forged": credential.ErrBadSignature,
			"expired": credential.ErrExpired, "other fleet": credential.ErrUnknownSigner,
			"another node's": credential.ErrWrongNode, "revoked": credential.ErrRevoked}[what]
		if want != nil && !strings.Contains(r.Reason, want.Error()) {
			t.Errorf("outsider with %s refused for %q, want %q", what, r.Reason, want)
		}
	}
	// A member still takes the slot: the outsiders hold none of it.
	takeFreeSlot(t, pool[1], "site-a/restart", "a member could not take the free restart slot")
	if pool[0].Stats().Refused == 0 {
		t.Error("no refusal counted")
	}

	// The admin revokes member 2: it is dropped at the next Readmit, its
	// lease no longer counts.
	victim := pool[2]
	takeFreeSlot(t, victim, "site-a/other", "victim lease")
	testutil.WaitFor(t, 10*time.Second, "the victim's lease is seen", func() error {
		if len(pool[0].Lease().Holders("site-a/other")) != 1 {
			return errNotYet
		}
		return nil
	})
	ft.p.Store(ca.Trust(t, credential.Revocations{Nodes: []credential.RevokedNode{{NodeID: victim.NodeID(), Reason: "decommissioned"}}}))
	pool[0].Readmit()
	if _, ok := pool[0].Member(victim.NodeID()); ok {
		t.Error("revoked member still listed after Readmit")
	}
	if h := pool[0].Lease().Holders("site-a/other"); len(h) != 0 {
		t.Errorf("revoked member's lease still counts: %+v", h)
	}
	takeFreeSlot(t, pool[0], "site-a/other", "slot of the revoked member not free")
}

// A member whose credential names another site is admitted (it shares
// payloads and metadata) but is marked visiting and holds no slot of this
// site's lease.
func TestAdmissionVisitor(t *testing.T) {
	ca := credtest.NewCA(t)
	ft := &fleetTrust{}
	ft.p.Store(ca.Trust(t, credential.Revocations{}))
	key := newKey(t)
	nodes := startPool(t, 2, key, func(i int, c *Config) {
		c.Admitter = FleetAdmitter{Fleet: ft.get}
		site := "site-a"
		if i == 1 {
			site = "site-b" // a laptop from another office, on site-a's LAN
		}
		_, c.Credential = ca.Issue(t, nodeIDOf(t, *c), credtest.Spec{Site: site})
	})
	testutil.WaitFor(t, 20*time.Second, "pool", allAlive(nodes, 2))
	m, ok := nodes[0].Member(nodes[1].NodeID())
	if !ok || !m.Visiting || m.Credential.Site != "site-b" {
		t.Fatalf("visitor seen as %+v (ok %v)", m, ok)
	}
	takeFreeSlot(t, nodes[1], "site-a/restart", "visitor lease")
	testutil.WaitFor(t, 10*time.Second, "the visitor's hold reaches the member", func() error {
		g := nodes[0].Gossip
		g.mu.Lock()
		defer g.mu.Unlock()
		if r := g.members[nodes[1].NodeID()].leases["site-a/restart"]; r == nil || r.phase != leaseHeld {
			return errNotYet
		}
		return nil
	})
	takeFreeSlot(t, nodes[0], "site-a/restart", "the visitor's lease blocked the site's member")
}

// takeFreeSlot takes n's one-slot lease of group, which nobody that counts
// holds. A claim is withdrawn when a member's answer is later than the
// settle time (a loaded machine), and TryAcquire then says false as it
// does for a taken slot: so it is tried again, for 20 s, which is less
// than the minute an outsider's claim would last if it counted.
func takeFreeSlot(t *testing.T, n *node, group, what string) {
	t.Helper()
	testutil.WaitFor(t, 20*time.Second, what, func() error {
		ok, err := n.Lease().TryAcquire(context.Background(), group, 1, time.Minute)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if !ok {
			return errors.New("the claim was not granted")
		}
		return nil
	})
}

// FuzzAdmitMeta feeds arbitrary node meta to the decoder and the fleet
// admitter: nothing panics, a meta that decodes re-encodes to the same
// fields, and only the seed's genuine credential is admitted.
func FuzzAdmitMeta(f *testing.F) {
	ca := credtest.NewCA(f)
	id := nodeIDOf(f, Config{Identity: newIdentity(f)})
	_, good := ca.Issue(f, id, credtest.Spec{Site: "site-a", Tags: []string{"pilot"}})
	tr := ca.Trust(f, credential.Revocations{})
	adm := FleetAdmitter{Fleet: func() *credential.Trust { return tr }}
	f.Add((&nodeMeta{stateLTime: 3, policyVersion: 4, site: "s", credential: good}).marshal())
	f.Add((&nodeMeta{site: "s", credential: ca.Forge(f, id, credtest.Spec{Site: "s"})}).marshal())
	f.Add((&nodeMeta{stateLTime: 1}).marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := unmarshalMeta(b)
		if err != nil {
			return
		}
		m2, err := unmarshalMeta(m.marshal())
		if err != nil || m2.stateLTime != m.stateLTime || m2.policyVersion != m.policyVersion || m2.site != m.site || string(m2.credential) != string(m.credential) {
			t.Fatalf("meta re-encoding differs: %v", err)
		}
		if c, err := adm.Admit(id, m.credential); err == nil && (c == nil || string(m.credential) != string(good)) {
			t.Fatalf("admitted a credential that is not the CA's: %x", m.credential)
		}
	})
}

// The node meta with the largest credential and site still fits
// memberlist's 512-byte limit.
func TestNodeMetaFitsWithCredential(t *testing.T) {
	cred := make([]byte, maxCredentialLen)
	m := nodeMeta{stateLTime: 1<<64 - 1, policyVersion: 1<<64 - 1, site: strings.Repeat("s", maxShortLen), credential: cred}
	if n := len(m.marshal()); n > 512 {
		t.Fatalf("node meta of %d bytes with a %d-byte credential, memberlist allows 512", n, maxCredentialLen)
	} else {
		t.Logf("largest node meta: %d bytes of 512", n)
	}
	if maxCredentialLen < credential.MaxSize {
		t.Fatalf("gossip caps credentials at %d bytes, they may be %d", maxCredentialLen, credential.MaxSize)
	}
}

func TestRefusalReason(t *testing.T) {
	for want, err := range map[string]error{
		"missing": fmt.Errorf("admit x: %w", ErrNoCredential), "revoked": fmt.Errorf("x: %w", credential.ErrRevoked),
		"expired": credential.ErrExpired, "bad_signature": credential.ErrBadSignature, "unknown_signer": credential.ErrUnknownSigner,
		"wrong_node": credential.ErrWrongNode, "malformed": credential.ErrMalformed, "other": fmt.Errorf("boom"),
	} {
		if got := RefusalReason(err); got != want {
			t.Errorf("RefusalReason(%v) = %s, want %s", err, got, want)
		}
	}
}

// A member whose credential expires is dropped at the next Readmit (the
// membership runs one every 2 s), and back once a renewed one is in its meta.
func TestAdmissionExpiryDropsAndRenewalReadmits(t *testing.T) {
	ca := credtest.NewCA(t)
	tr := ca.Trust(t, credential.Revocations{})
	clock := newFakeClock()
	clock.now = time.Now()
	adm := FleetAdmitter{Fleet: func() *credential.Trust { return tr }, Now: clock.Now}
	key := newKey(t)
	nodes := startPool(t, 2, key, func(i int, c *Config) {
		c.Admitter = adm
		_, c.Credential = ca.Issue(t, nodeIDOf(t, *c), credtest.Spec{Site: "site-a", NotBefore: clock.Now().Add(-time.Hour), NotAfter: clock.Now().Add(time.Hour)})
	})
	testutil.WaitFor(t, 20*time.Second, "pool", allAlive(nodes, 2))
	clock.Advance(2 * time.Hour)
	nodes[0].Readmit()
	if _, ok := nodes[0].Member(nodes[1].NodeID()); ok {
		t.Fatal("member with an expired credential still listed")
	}
	refused := nodes[0].Refused()
	if len(refused) != 1 || !strings.Contains(refused[0].Reason, credential.ErrExpired.Error()) {
		t.Fatalf("refused %+v, want the expired member", refused)
	}
	// Renewal: the member's new credential reaches node 0 in its meta.
	_, renewed := ca.Issue(t, nodes[1].NodeID(), credtest.Spec{Site: "site-a", NotBefore: clock.Now().Add(-time.Minute), NotAfter: clock.Now().Add(24 * time.Hour)})
	if err := nodes[1].SetCredential(renewed); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 20*time.Second, "the renewed member back", func() error {
		nodes[0].Readmit()
		if _, ok := nodes[0].Member(nodes[1].NodeID()); !ok {
			return errNotYet
		}
		return nil
	})
}
