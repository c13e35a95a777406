package statuspub_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/patchring/patchring/console/report"
	"github.com/patchring/patchring/console/server"
	"github.com/patchring/patchring/console/statuspub"
	"github.com/patchring/patchring/internal/testutil"
	"github.com/patchring/patchring/internal/testutil/consoletest"
	"github.com/patchring/patchring/policy"
	"github.com/patchring/patchring/policy/fleetstatus"
	"github.com/patchring/patchring/policy/trust"
	"github.com/patchring/patchring/policy/tufrepo"
)

// Site B has no pilot node; its broad ring waits for the pilot across the
// fleet (scope: fleet). The pilot is at site A.
const gatePolicy = `schema: 1
expires: 2099-01-01T00:00:00Z
rings:
  - name: pilot
    select: [{site: a}]
  - name: broad
    default: true
    gates: [{ring: pilot, min_success: 90%, min_nodes: 3, scope: fleet}]
auto_approve:
  - {sources: [apt]}
`

type node struct {
	key ed25519.PrivateKey
	id  string
	seq uint64
}

func newNode(i byte) *node {
	seed := make([]byte, ed25519.SeedSize)
	seed[0], seed[1] = i, 0x5a
	k := ed25519.NewKeyFromSeed(seed)
	return &node{key: k, id: report.NodeID(k.Public().(ed25519.PublicKey))}
}

// record signs this node's next record at site with the outcomes.
func (n *node) record(t *testing.T, site, ring string, at time.Time, outcomes ...report.Outcome) report.Envelope {
	t.Helper()
	n.seq++
	pkgs := []report.Package{{Name: "openssl", Version: "3.0.15-1~deb12u1", Arch: "amd64"}}
	r := report.Record{V: report.Version, Node: n.id, Seq: n.seq, Time: at, Site: site, Hostname: "host-" + n.id[len(n.id)-6:],
		Ring: ring, State: "idle", Reboot: report.Reboot{State: report.RebootNone}, Outcomes: outcomes,
		Packages: pkgs, PackagesDigest: report.DigestPackages(pkgs)}
	env, err := report.Sign(r, n.key)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func ingest(t *testing.T, url string, envs ...report.Envelope) {
	t.Helper()
	body, err := json.Marshal(server.IngestRequest{Records: envs})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(url+"/api/v1/ingest", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out server.IngestResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("ingest: status %d, %v", resp.StatusCode, err)
	}
	for _, r := range out.Results {
		if r.Status != "stored" {
			t.Fatalf("ingest: record %s/%d %s: %s", r.Node, r.Seq, r.Status, r.Error)
		}
	}
}

// TestFleetGateAcrossSites runs the whole path of a fleet-wide gate: site
// A's pilot nodes report to a real console (signed records over its ingest
// API, SQLite), the console computes and signs the fleet status with its
// delegated key, the repository's keeper checks it against the delegation
// and publishes it, and an agent of site B (no pilot node there) verifies
// it through TUF from the origin and evaluates its broad ring: the gate
// opens on site A's pilot results, and stays shut when they failed.
func TestFleetGateAcrossSites(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	repoDir, keysDir := filepath.Join(base, "repo"), filepath.Join(base, "keys")
	repo, err := tufrepo.Init(repoDir, keysDir, tufrepo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	pol, err := policy.Parse([]byte(gatePolicy), "policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	canon, err := policy.MarshalCanonical(pol)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.PublishPolicy(canon); err != nil {
		t.Fatal(err)
	}
	rootJSON, err := repo.RootJSON()
	if err != nil {
		t.Fatal(err)
	}
	// The console's key, and the admin's delegation to it.
	consoleKey, err := tufrepo.NewFleetStatusKey(filepath.Join(base, "console-key"), "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.DelegateFleetStatus(consoleKey.Public); err != nil {
		t.Fatal(err)
	}
	origin := httptest.NewServer(tufrepo.Handler(repoDir))
	t.Cleanup(origin.Close)

	// The console.
	st := consoletest.OpenStore(t, filepath.Join(base, "console"))
	con := httptest.NewServer(server.New(server.Config{Store: st, Logger: testutil.Logger(t)}))
	t.Cleanup(con.Close)
	statusDir := filepath.Join(base, "fleet-status")
	pub, err := statuspub.New(statuspub.Config{Source: st, Key: consoleKey.Private, Sink: statuspub.DirSink(statusDir), Log: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	keeper := &tufrepo.Keeper{Dir: repoDir, KeysDir: keysDir, FleetStatusDir: statusDir, Log: testutil.Logger(t)}

	// A site B agent.
	agent, err := trust.New(trust.Config{TrustedRoot: rootJSON, StateDir: filepath.Join(base, "agent"),
		Sources: []trust.Source{&trust.HTTPSource{BaseURL: origin.URL, IsOriginServer: true, Client: origin.Client()}}, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	broadB := policy.NodeFacts{NodeID: newNode(200).id, Hostname: "b-1", Site: "b"}
	now := time.Now().UTC().Truncate(time.Second)
	u := policy.Update{Source: "apt", Package: "openssl", Version: "3.0.15-1~deb12u1", InstalledVersion: "3.0.14-1~deb12u2",
		Classification: "security", FirstSeen: now.Add(-time.Minute)}
	// decide publishes the console's fleet status, lets the keeper take
	// it, refreshes the agent and evaluates its broad ring: the site's own
	// gossip has no pilot node.
	decide := func() policy.Decision {
		t.Helper()
		if _, err := pub.PublishOnce(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := keeper.Once(); err != nil {
			t.Fatal(err)
		}
		res, err := agent.Refresh(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var fleet policy.FleetView
		if res.State.FleetStatus != nil {
			doc, err := fleetstatus.Parse(res.State.FleetStatus)
			if err != nil {
				t.Fatal(err)
			}
			fleet = fleetstatus.NewView(doc)
		}
		p, err := policy.ParseJSON(res.State.Policy, "policy.json")
		if err != nil {
			t.Fatal(err)
		}
		return policy.Evaluate(p, broadB, []policy.Update{u}, policy.Scoped{Site: policy.FleetStats{}, Fleet: fleet}, time.Now())[0]
	}

	// Site A: three pilot nodes and one broad node report in.
	pilots := []*node{newNode(1), newNode(2), newNode(3)}
	for _, n := range pilots {
		ingest(t, con.URL, n.record(t, "a", "pilot", now.Add(-50*time.Second)))
	}
	ingest(t, con.URL, newNode(9).record(t, "a", "broad", now.Add(-50*time.Second)))
	if d := decide(); d.Action != policy.ActionWaitGate {
		t.Fatalf("before the pilot installed: %s (%s), want %s", d.Action, d.Reason, policy.ActionWaitGate)
	}

	t.Run("pilot failed", func(t *testing.T) {
		for i, n := range pilots {
			res := report.ResultFailed
			if i == 0 {
				res = report.ResultSucceeded
			}
			ingest(t, con.URL, n.record(t, "a", "pilot", now.Add(-40*time.Second),
				report.Outcome{Source: u.Source, Package: u.Package, Version: u.Version, Result: res, Reason: "health check failed", At: now.Add(-40 * time.Second)}))
		}
		d := decide()
		if d.Action != policy.ActionWaitGate {
			t.Fatalf("site A's pilot failed, site B's broad: %s (%s), want %s", d.Action, d.Reason, policy.ActionWaitGate)
		}
		t.Logf("broad at site B: %s: %s", d.Action, d.Reason)
	})
	t.Run("pilot succeeded", func(t *testing.T) {
		// The pilot's nodes roll back and install again: their latest
		// outcomes are successes.
		for _, n := range pilots {
			ingest(t, con.URL, n.record(t, "a", "pilot", now.Add(-30*time.Second),
				report.Outcome{Source: u.Source, Package: u.Package, Version: u.Version, Result: report.ResultSucceeded, At: now.Add(-30 * time.Second)}))
		}
		d := decide()
		if d.Action != policy.ActionInstallNow {
			t.Fatalf("site A's pilot succeeded, site B's broad: %s (%s), want %s", d.Action, d.Reason, policy.ActionInstallNow)
		}
		t.Logf("broad at site B: %s: %s", d.Action, d.Reason)
	})
}
