package main

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/patchring/patchring/daemon/apitypes"
	"github.com/patchring/patchring/daemon/client"
	"github.com/patchring/patchring/internal/testutil"
	"github.com/patchring/patchring/p2p/content"
	"github.com/patchring/patchring/p2p/exchange"
	"github.com/patchring/patchring/policy"
	"github.com/patchring/patchring/policy/credential"
	"github.com/patchring/patchring/policy/credential/credtest"
	"github.com/patchring/patchring/policy/tufrepo"
)

// TestOutsidersWithTheGossipKeyRefused: a repository with a fleet CA,
// two credentialed agents A and B, and five agents that hold the gossip key
// but no valid credential: none, forged, expired, another fleet's, revoked.
//   - gossip: A and B list only each other; `fleet` names every outsider
//     with the reason it was refused.
//   - metadata protocol and root probe: B's origin goes down and the admin
//     rotates the root; the outsiders hold the verified metadata, but only
//     A may serve B, and one peer cannot confirm the root: B keeps the last
//     good policy. Once the admin's credential reaches one outsider (a file
//     written into its state dir, no restart), it is admitted and B gets the
//     new policy through A and it.
//   - exchange: a libp2p host with an outsider's key is refused by A; with
//     the newly credentialed node's key it is served.
//   - revocation: the admin revokes that node in fleet.json; within a
//     refresh A drops it (listed as revoked) and refuses its key again.
//   - rings: B's local configuration says tags [lab], its credential none:
//     B is in broad; a new credential with the tag moves it to lab.
func TestOutsidersWithTheGossipKeyRefused(t *testing.T) {
	dir := t.TempDir()
	repoDir, keys := filepath.Join(dir, "repo"), filepath.Join(dir, "keys")
	repo, err := tufrepo.Init(repoDir, keys, tufrepo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ca := fleetCA(t, repo)
	reopen := func() *tufrepo.Repo {
		t.Helper()
		r, err := tufrepo.Open(repoDir, keys, "")
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	publish := func(name string) {
		t.Helper()
		p, err := policy.Parse([]byte(strings.ReplaceAll(agentPolicy, "%NAME%", name)), "p.yaml")
		if err != nil {
			t.Fatal(err)
		}
		canon, err := policy.MarshalCanonical(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := reopen().PublishPolicy(canon); err != nil {
			t.Fatal(err)
		}
	}
	publish("first")
	root, err := repo.RootJSON()
	if err != nil {
		t.Fatal(err)
	}
	rootFile := filepath.Join(dir, "root.json")
	if err := os.WriteFile(rootFile, root, 0o644); err != nil {
		t.Fatal(err)
	}
	origin := httptest.NewServer(tufrepo.Handler(repoDir))
	t.Cleanup(origin.Close)
	originB := httptest.NewServer(tufrepo.Handler(repoDir))
	t.Cleanup(originB.Close)
	keyB64, _ := newKey(t)
	keyFile := filepath.Join(dir, "gossip.key")
	if err := os.WriteFile(keyFile, []byte(keyB64+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	type agent struct {
		name, state, id string
		p               *daemonProc
		c               *client.Client
		p2p             string // libp2p listen address
	}
	var seed string
	start := func(a *agent, originURL, refresh string, extra ...string) {
		t.Helper()
		addr := freeGossipAddr(t)
		if seed == "" {
			seed = addr
		}
		a.p2p = "/ip4/127.0.0.1/tcp/" + strings.Split(freeGossipAddr(t), ":")[1]
		args := append([]string{"--hostname", a.name, "--site", "hq",
			"--gossip", "--gossip-listen", addr, "--gossip-seeds", seed, "--gossip-key-file", keyFile, "--gossip-label", "patchring-test",
			"--p2p", "--p2p-listen", a.p2p,
			"--policy-origin", originURL, "--policy-root", rootFile, "--policy-refresh", refresh}, extra...)
		a.p = startDaemon(t, a.state, args...)
		a.p.waitReady(t)
		a.c = &client.Client{Socket: a.p.sock}
	}
	newAgent := func(name string) *agent {
		a := &agent{name: name, state: filepath.Join(dir, name)}
		a.id = credtest.NewNode(t, a.state)
		return a
	}

	a, b := newAgent("node-a"), newAgent("node-b")
	ca.Install(t, a.state, a.id, credtest.Spec{Hostname: a.name, Site: "hq", Tags: []string{"lab"}})
	credB := ca.Install(t, b.state, b.id, credtest.Spec{Hostname: b.name, Site: "hq"})
	outsiders := map[string]*agent{}
	for _, what := range []string{"none", "forged", "expired", "other-fleet", "revoked"} {
		o := newAgent("outsider-" + what)
		outsiders[what] = o
		switch what {
		case "forged":
			credtest.WriteFile(t, o.state, ca.Forge(t, o.id, credtest.Spec{Site: "hq", Tags: []string{"lab"}}))
		case "expired":
			ca.Install(t, o.state, o.id, credtest.Spec{Site: "hq", NotBefore: time.Now().Add(-72 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
		case "other-fleet":
			credtest.NewCA(t).Install(t, o.state, o.id, credtest.Spec{Site: "hq"})
		case "revoked":
			ca.Install(t, o.state, o.id, credtest.Spec{Site: "hq"})
		}
	}
	if _, err := reopen().UpdateFleet(func(d *credential.Document) error {
		d.Revoked.Nodes = append(d.Revoked.Nodes, credential.RevokedNode{NodeID: outsiders["revoked"].id, Reason: "laptop stolen", At: time.Now()})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	wantReason := map[string]string{"none": "no credential", "forged": credential.ErrBadSignature.Error(),
		"expired": credential.ErrExpired.Error(), "other-fleet": credential.ErrUnknownSigner.Error(), "revoked": credential.ErrRevoked.Error()}

	start(a, origin.URL, "1s")
	start(b, originB.URL, "3s", "--tags", "lab") // B's own config claims the lab tag
	for _, o := range outsiders {
		start(o, origin.URL, "1s")
	}
	ctx := context.Background()
	waitPolicy := func(who *agent, what string, cond func(apitypes.EffectivePolicy) bool) apitypes.EffectivePolicy {
		t.Helper()
		var last apitypes.EffectivePolicy
		testutil.WaitFor(t, 60*time.Second, who.name+": "+what, func() error {
			ep, err := who.c.Policy(ctx)
			if err != nil {
				return err
			}
			if last = ep; !cond(ep) {
				return fmt.Errorf("last: %+v", ep)
			}
			return nil
		})
		return last
	}
	named := func(n string) func(apitypes.EffectivePolicy) bool {
		return func(ep apitypes.EffectivePolicy) bool { return ep.Name == n }
	}
	for _, x := range append([]*agent{a, b}, outsiders["none"]) {
		waitPolicy(x, "the first policy", named("first"))
	}
	// Each agent sees its own credential's problem.
	if ep := waitPolicy(outsiders["none"], "no credential", func(ep apitypes.EffectivePolicy) bool { return ep.Identity.Problem == "missing" }); !ep.Identity.Enforced {
		t.Errorf("outsider identity %+v", ep.Identity)
	}
	waitPolicy(outsiders["revoked"], "revoked", func(ep apitypes.EffectivePolicy) bool { return ep.Identity.Problem == "revoked" })
	waitPolicy(outsiders["expired"], "expired", func(ep apitypes.EffectivePolicy) bool { return ep.Identity.Problem == "expired" })

	// Gossip: members list each other only; every outsider refused, why.
	waitMembersAndRefused := func(who *agent, members []string, refused map[string]string) {
		t.Helper()
		testutil.WaitFor(t, 90*time.Second, who.name+" refuses the outsiders", func() error {
			f, err := who.c.Fleet(ctx)
			if err != nil {
				return err
			}
			var got []string
			for _, m := range f.Members {
				if m.Liveness == "alive" || m.Local {
					got = append(got, m.NodeID)
				}
			}
			slices.Sort(got)
			want := slices.Sorted(slices.Values(members))
			if !slices.Equal(got, want) {
				return fmt.Errorf("members %v, want %v (refused %+v)", got, want, f.Refused)
			}
			for id, reason := range refused {
				i := slices.IndexFunc(f.Refused, func(r apitypes.RefusedMember) bool { return r.NodeID == id })
				if i < 0 {
					return fmt.Errorf("%s not listed as refused: %+v", id, f.Refused)
				}
				if !strings.Contains(f.Refused[i].Reason, reason) {
					return fmt.Errorf("%s refused for %q, want %q", id, f.Refused[i].Reason, reason)
				}
			}
			return nil
		})
	}
	allRefused := map[string]string{}
	for what, o := range outsiders {
		allRefused[o.id] = wantReason[what]
	}
	// A is every outsider's seed: it refuses each, for the right reason. B
	// hears of an outsider only if the outsider's own gossip reaches it
	// (memberlist spreads a refused node's alive message no further), so B
	// must admit none of them, and give the right reason for those it saw.
	waitMembersAndRefused(a, []string{a.id, b.id}, allRefused)
	waitMembersAndRefused(b, []string{a.id, b.id}, nil)
	if f, err := b.c.Fleet(ctx); err == nil {
		for what, o := range outsiders {
			for _, r := range f.Refused {
				if r.NodeID == o.id && !strings.Contains(r.Reason, wantReason[what]) {
					t.Errorf("node-b refused outsider %s for %q, want %q", what, r.Reason, wantReason[what])
				}
			}
		}
	}
	f, err := a.c.Fleet(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range f.Members {
		if !m.Credentialed || m.Site != "hq" {
			t.Errorf("member %s: credentialed %v site %q", m.Hostname, m.Credentialed, m.Site)
		}
	}

	// Rings: B's config tag is ignored, A's credential tag counts.
	if ep := waitPolicy(b, "ring from the credential", func(ep apitypes.EffectivePolicy) bool { return ep.Ring != "" }); ep.Ring != "broad" {
		t.Errorf("B is in ring %q by its local tag; want broad (its credential has no tags)", ep.Ring)
	}
	if ep, _ := a.c.Policy(ctx); ep.Ring != "lab" {
		t.Errorf("A is in ring %q, want lab (its credential's tag)", ep.Ring)
	}

	// Exchange: an outsider's key is refused by A's gater.
	fetchFrom := func(key crypto.PrivKey, target *agent) error {
		t.Helper()
		store, err := content.Open(t.TempDir(), content.Options{})
		if err != nil {
			t.Fatal(err)
		}
		x, err := exchange.New(exchange.Config{Store: store, Identity: key, ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}})
		if err != nil {
			t.Fatal(err)
		}
		defer x.Close()
		id, err := peer.Decode(target.id)
		if err != nil {
			t.Fatal(err)
		}
		x.SetAllowed([]peer.ID{id})
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		rc, _, err := x.FetchFile(cctx, peer.AddrInfo{ID: id, Addrs: []ma.Multiaddr{ma.StringCast(target.p2p)}}, "metadata/timestamp.json", 1<<20)
		if err != nil {
			return err
		}
		defer rc.Close()
		_, err = io.ReadAll(rc)
		return err
	}
	keyOf := func(o *agent) crypto.PrivKey {
		raw, err := os.ReadFile(filepath.Join(o.state, "node.key"))
		if err != nil {
			t.Fatal(err)
		}
		k, err := crypto.UnmarshalPrivateKey(raw)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	for what, o := range outsiders {
		if err := fetchFrom(keyOf(o), a); err == nil {
			t.Errorf("A served metadata to the outsider with %s over the exchange", what)
		}
	}

	// The root probe: B's origin goes down; root rotated, new policy.
	originB.Close()
	if _, err := reopen().RotateKey(tufrepo.RoleRoot); err != nil {
		t.Fatal(err)
	}
	publish("second")
	waitPolicy(a, "the second policy", named("second"))
	waitPolicy(outsiders["none"], "the second policy (outsiders verify it too)", named("second"))
	epB := waitPolicy(b, "B refusing a lone member's word on the next root", func(ep apitypes.EffectivePolicy) bool {
		return strings.Contains(ep.LastError, "not confirmed")
	})
	if epB.Name != "first" {
		t.Fatalf("B acts on %q: outsiders confirmed the root probe", epB.Name)
	}

	// The admin's credential reaches outsider "none": no restart.
	late := outsiders["none"]
	lateCred := ca.Install(t, late.state, late.id, credtest.Spec{Hostname: late.name, Site: "hq"})
	waitPolicy(late, "its new credential", func(ep apitypes.EffectivePolicy) bool { return ep.Identity.Problem == "" })
	waitMembersAndRefused(a, []string{a.id, b.id, late.id}, nil)
	waitPolicy(b, "the second policy through A and the newly admitted node", named("second"))
	if err := fetchFrom(keyOf(late), a); err != nil {
		t.Errorf("A refused the credentialed node over the exchange: %v", err)
	}

	// Revocation: dropped within a refresh, refused again.
	if _, err := reopen().UpdateFleet(func(d *credential.Document) error {
		d.Revoked.Serials = append(d.Revoked.Serials, lateCred.Serial)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	waitMembersAndRefused(a, []string{a.id, b.id}, map[string]string{late.id: credential.ErrRevoked.Error()})
	if err := fetchFrom(keyOf(late), a); err == nil {
		t.Error("A still serves the revoked node over the exchange")
	}

	// Rings move by a signed credential change: B gets the lab tag.
	ca.Install(t, b.state, b.id, credtest.Spec{Hostname: b.name, Site: "hq", Tags: []string{"lab"}, NotAfter: credB.NotAfter})
	waitPolicy(b, "ring lab from the new credential", func(ep apitypes.EffectivePolicy) bool { return ep.Ring == "lab" })

	out, err := a.c.Fleet(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("A's view: %d members, %d refused", len(out.Members), len(out.Refused))
}
