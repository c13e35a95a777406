package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchring/patchring/daemon/apitypes"
	"github.com/patchring/patchring/daemon/client"
	"github.com/patchring/patchring/internal/testutil"
	"github.com/patchring/patchring/policy/credential/credtest"
	"github.com/patchring/patchring/policy/tufrepo"
)

// TestPolicyFromPeersWhenOriginDown: three agents of one site, A and C
// refreshing every second from the origin, B (hourly) from an origin
// address that goes down. The admin rotates the root key and publishes a
// new policy: A and C verify it, gossip tells B, and B verifies it through
// TUF from its trusted root with every byte fetched from its peers over
// libp2p (the new root version included; the second peer confirms that
// no later root exists). Then C stops and the admin publishes again: B's
// only peer denying the next root is not believed without the origin or a
// second source, so B keeps the last good policy and says why.
func TestPolicyFromPeersWhenOriginDown(t *testing.T) {
	dir := t.TempDir()
	repo := newSignedRepo(t, dir, agentPolicy, tufrepo.Options{})
	// A fleet with a CA: the three agents carry credentials, so the peers
	// B takes metadata from, and the second one confirming the root, are
	// credentialed members (TestOutsidersWithTheGossipKeyRefused shows
	// that others are not).
	authority := fleetCA(t, repo.Repo)
	repo.publish(t, "first")
	originAC, originB := repo.serve(t, nil), repo.serve(t, nil)
	keyB64, _ := newKey(t)
	keyFile := filepath.Join(dir, "gossip.key")
	if err := os.WriteFile(keyFile, []byte(keyB64+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	start := func(name, origin, refresh, seed string) (*daemonProc, string) {
		t.Helper()
		state := filepath.Join(dir, name)
		authority.Install(t, state, credtest.NewNode(t, state), credtest.Spec{Hostname: name, Site: "hq"})
		addr := freeGossipAddr(t)
		if seed == "" {
			seed = addr
		}
		p := startDaemon(t, filepath.Join(dir, name), "--hostname", name, "--site", "hq",
			"--gossip", "--gossip-listen", addr, "--gossip-seeds", seed, "--gossip-key-file", keyFile, "--gossip-label", "patchring-test",
			"--p2p", "--p2p-listen", "/ip4/127.0.0.1/tcp/0",
			"--policy-origin", origin, "--policy-root", repo.rootFile, "--policy-refresh", refresh)
		p.waitReady(t)
		return p, addr
	}
	a, seed := start("node-a", originAC.URL, "1s", "")
	c, _ := start("node-c", originAC.URL, "1s", seed)
	b, _ := start("node-b", originB.URL, "1h", seed)
	cb := &client.Client{Socket: b.sock}
	policyOn := func(p *daemonProc, what string, cond func(apitypes.EffectivePolicy) bool) apitypes.EffectivePolicy {
		t.Helper()
		return waitPolicy(t, p, time.Minute, what, cond)
	}
	named := func(n string) func(apitypes.EffectivePolicy) bool {
		return func(ep apitypes.EffectivePolicy) bool { return ep.Name == n }
	}
	for _, n := range []struct {
		p    *daemonProc
		name string
	}{{a, "A"}, {c, "C"}, {b, "B"}} {
		policyOn(n.p, n.name+" on the first policy", named("first"))
	}
	waitFleet(t, cb, 3)

	// B's origin goes down; the admin rotates the root key and publishes.
	originB.Close()
	if _, err := repo.RotateKey(tufrepo.RoleRoot); err != nil {
		t.Fatal(err)
	}
	repo.publish(t, "second")
	epA := policyOn(a, "A on the second policy", named("second"))
	policyOn(c, "C on the second policy", named("second"))
	epB := policyOn(b, "B on the second policy, from its peers", named("second"))
	if !strings.HasPrefix(epB.Source, "peer ") {
		t.Errorf("B verified the second policy through %q, want a peer", epB.Source)
	}
	if epB.TimestampVersion != epA.TimestampVersion || epB.Ring != epA.Ring || epB.Expired {
		t.Errorf("B's effective policy %+v, want A's timestamp version %d", epB, epA.TimestampVersion)
	}
	bRoot2 := filepath.Join(dir, "node-b", "tuf", "roots", "2.root.json")
	got, err := os.ReadFile(bRoot2)
	want, _ := os.ReadFile(filepath.Join(repo.dir, "metadata", "2.root.json"))
	if err != nil || string(got) != string(want) {
		t.Errorf("B did not verify root 2 from its peers (%v)", err)
	}

	// C stops; A alone cannot convince B that no root 3 exists.
	c.stop(t)
	repo.publish(t, "third")
	policyOn(a, "A on the third policy", named("third"))
	epB = policyOn(b, "B refusing a lone peer's word on the next root", func(ep apitypes.EffectivePolicy) bool {
		return strings.Contains(ep.LastError, "not confirmed")
	})
	if epB.Name != "second" {
		t.Errorf("B acts on %q after the refused refresh, want the last good policy", epB.Name)
	}
	a.stop(t)
	b.stop(t)
	if log := b.stderr.String(); !strings.Contains(log, "a peer holds newer policy metadata") {
		t.Errorf("B's refreshes were not triggered by gossip:\n%s", log)
	}
}

// waitFleet waits until c's node sees n live members (itself included).
func waitFleet(t *testing.T, c *client.Client, n int) {
	t.Helper()
	testutil.WaitFor(t, 40*time.Second, fmt.Sprintf("%d live members", n), func() error {
		f, err := c.Fleet(context.Background())
		if err != nil {
			return err
		}
		alive := 0
		for _, m := range f.Members {
			if m.Local || m.Liveness == "alive" {
				alive++
			}
		}
		if alive != n {
			return fmt.Errorf("last: %+v", f)
		}
		return nil
	})
}

// fleetCA creates the fleet CA of repo (as `patchring repo init` does) and
// returns it, to sign the test agents' credentials.
func fleetCA(t *testing.T, repo *tufrepo.Repo) *credtest.CA {
	t.Helper()
	if _, err := repo.InitFleet(); err != nil {
		t.Fatal(err)
	}
	k, err := repo.FleetKey(tufrepo.RoleFleetCA)
	if err != nil {
		t.Fatal(err)
	}
	return credtest.FromKey(k)
}
