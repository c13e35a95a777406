//go:build linux

package sitetest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchring/patchring/daemon/apitypes"
	"github.com/patchring/patchring/internal/testutil"
)

// agentBuild is patchringd built as release version (stripped, so that
// the package crossing the test's WAN stays small).
func agentBuild(version string) *testutil.Binary {
	return &testutil.Binary{Pkg: "github.com/patchring/patchring/cmd/patchringd",
		BuildFlags: []string{"-trimpath", "-ldflags", "-s -w -X github.com/patchring/patchring/internal/version.Version=" + version}}
}

var (
	agent10 = agentBuild("1.0")
	agent11 = agentBuild("1.1")
)

// policySelf puts desk-00 and desk-01 in the pilot ring and the rest in
// broad, which waits for both pilots to succeed with an update and for
// broadDefer after it appeared; the signed catalog is approved.
func policySelf(name, broadDefer string) string {
	return `schema: 1
name: ` + name + `
expires: 2035-01-01T00:00:00Z
rings:
  - name: pilot
    select: [{hostname: desk-00}, {hostname: desk-01}]
    defer: 0s
  - name: broad
    default: true
    defer: ` + broadDefer + `
    gates: [{ring: pilot, min_success: 100%, min_nodes: 2}]
auto_approve:
  - name: the catalog
    sources: [catalog]
self_update: {health_deadline: 20s}
`
}

// admin runs the admin's CLI (patchring) on the origin's repository and
// returns its output.
func (s *testSite) admin(t testing.TB, args ...string) string {
	t.Helper()
	args = append(args, "--repo", s.origin.tufDir, "--keys", s.origin.keysDir)
	out, err := exec.Command(patchringCLI.Path(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("patchring %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// publishPolicyCLI publishes doc with `patchring policy publish`.
func (s *testSite) publishPolicyCLI(t testing.TB, doc string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(f, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	s.admin(t, "policy", "publish", f)
}

// agentVersion is the version the node's running agent reports ("" while
// none answers).
func agentVersion(ctx context.Context, n *node) string {
	st, err := n.c.Status(ctx)
	if err != nil {
		return ""
	}
	return st.Version
}

// lastSelfTx is the node's newest transaction of the agent's package to
// version (nil: none).
func lastSelfTx(ctx context.Context, n *node, version string) (*apitypes.Transaction, error) {
	return lastTxTo(ctx, n, "patchring", version)
}

// waitSelf waits until every node in nodes ended its self-update to
// version with outcome (installed or rolled-back) and runs agent version
// running, as the agent and dpkg report it.
func (s *testSite) waitSelf(t testing.TB, nodes []*node, timeout time.Duration, version, outcome, running string) {
	t.Helper()
	s.waitFor(t, timeout, fmt.Sprintf("the agent's self-update to %s %s everywhere, agent %s running", version, outcome, running), func(ctx context.Context) (bool, string) {
		for _, n := range nodes {
			tx, err := lastSelfTx(ctx, n, version)
			if err != nil {
				return false, fmt.Sprintf("%s: history: %v", n.hostname, err)
			}
			if tx == nil || tx.Outcome == "" {
				return false, fmt.Sprintf("%s: no finished transaction to %s yet (%+v)", n.hostname, version, tx)
			}
			if tx.Outcome != outcome {
				t.Fatalf("%s: transaction %d to %s ended %s (%s), want %s\n%s", n.hostname, tx.ID, version, tx.Outcome, tx.Error, outcome, n.logTail(40))
			}
			if v := agentVersion(ctx, n); v != running {
				return false, fmt.Sprintf("%s: agent %q runs, want %s", n.hostname, v, running)
			}
		}
		return true, ""
	})
	for _, n := range nodes {
		v, st, err := n.sb.InstalledVersion(context.Background(), "patchring")
		if err != nil || v != running || st != "ii " {
			t.Fatalf("%s: dpkg reports patchring %q %q (%v), want %s installed", n.hostname, v, st, err, running)
		}
	}
}

// waitPlan waits until every node in nodes plans the agent's package at
// version as action with a reason containing why.
func (s *testSite) waitPlan(t testing.TB, nodes []*node, timeout time.Duration, version, action, why string) {
	t.Helper()
	s.waitFor(t, timeout, fmt.Sprintf("patchring %s planned as %s (%q)", version, action, why), func(ctx context.Context) (bool, string) {
		for _, n := range nodes {
			u, err := n.c.Updates(ctx)
			if err != nil {
				return false, fmt.Sprintf("%s: updates: %v", n.hostname, err)
			}
			var d *apitypes.UpdateDecision
			for i := range u.Updates {
				if u.Updates[i].Package == "patchring" && u.Updates[i].Version == version {
					d = &u.Updates[i]
				}
			}
			if d == nil || d.Action != action || !strings.Contains(d.Reason, why) {
				return false, fmt.Sprintf("%s plans patchring %s as %+v", n.hostname, version, d)
			}
		}
		return true, ""
	})
}

// TestSiteSelfUpdateThroughRings: three agents run as services of their
// (sandboxed) systems from the package patchring 1.0, the real patchringd.
// The admin publishes 1.1 with `patchring catalog add`: the pilot ring
// installs it detached, the package's scripts restart the agents into
// 1.1, which come back healthy and report 1.1 (locally and in the site's
// gossip), while broad, still deferred, stays on 1.0; once the admin ends
// broad's deferral its gate is open and it follows. A broken 1.2 (its
// agent cannot start) is then published: the install job's guard puts
// 1.1 back on each pilot, whose agent reports the self-update rolled
// back, and the gate holds broad on 1.1. So does it for a broken 1.3
// whose agent runs without its local API: that agent rolls itself back
// at its health deadline.
func TestSiteSelfUpdateThroughRings(t *testing.T) {
	// Mostly waits on timers (expiries, deadlines): runs beside the
	// other waiting tests once the WAN-measuring ones are done.
	t.Parallel()
	dir := t.TempDir()
	var debs [4]string
	for i, a := range []struct {
		kind agentKind
		bin  *testutil.Binary
	}{{agentReal, agent10}, {agentReal, agent11}, {agentNoStart, nil}, {agentNoAPI, agent11}} {
		bin := ""
		if a.bin != nil {
			bin = a.bin.Path(t)
		}
		debs[i] = selfDeb(t, dir, fmt.Sprintf("1.%d", i), a.kind, bin)
	}
	s := newSite(t, siteConfig{Nodes: 3, Rate: "200mbit", Service: true, Preinstall: debs[:1]})
	s.origin.publishPolicy(t, policySelf("self-a", "1h"))
	// The running version is in the catalog too: a self-update keeps it
	// to roll back to.
	s.admin(t, "catalog", "add", debs[0], "--package", "patchring", "--version", "1.0")
	s.startNodes(t)
	s.waitConverged(t, 3*time.Minute, "self-a")
	pilot, broad := s.nodes[:2], s.nodes[2:]
	ctx := context.Background()
	for _, n := range s.nodes {
		if v := agentVersion(ctx, n); v != "1.0" {
			t.Fatalf("%s runs agent %q, want the packaged 1.0", n.hostname, v)
		}
	}

	// 1.1 through the pilot ring; broad waits out its deferral.
	start := time.Now()
	s.admin(t, "catalog", "add", debs[1], "--package", "patchring", "--version", "1.1")
	s.waitSelf(t, pilot, 4*time.Minute, "1.1", "installed", "1.1")
	t.Logf("pilot ring on the new agent %.1fs after catalog add", time.Since(start).Seconds())
	s.waitPlan(t, broad, time.Minute, "1.1", "wait-deferral", "")
	for _, n := range broad {
		if v := agentVersion(ctx, n); v != "1.0" {
			t.Errorf("%s (broad) runs agent %q, want 1.0", n.hostname, v)
		}
		if v, _, _ := n.sb.InstalledVersion(ctx, "patchring"); v != "1.0" {
			t.Errorf("%s (broad): dpkg reports patchring %q, want 1.0", n.hostname, v)
		}
	}
	// The site sees the pilots' new agents through gossip.
	s.waitFor(t, time.Minute, "broad sees the pilots' agents at 1.1", func(ctx context.Context) (bool, string) {
		f, err := broad[0].c.Fleet(ctx)
		if err != nil {
			return false, err.Error()
		}
		n := 0
		for _, m := range f.Members {
			if (m.Hostname == "desk-00" || m.Hostname == "desk-01") && m.AgentVersion == "1.1" && m.Liveness == "alive" {
				n++
			}
		}
		return n == 2, fmt.Sprintf("%d of 2 pilots alive at 1.1 in %s's view", n, broad[0].hostname)
	})
	for _, n := range pilot {
		// The first agent was stopped by the package's prerm, the second
		// runs: the package restarted the agent, not the test.
		if runs := n.svc.Runs(); len(runs) != 2 || !strings.Contains(runs[0], "exit status 0") || runs[1] != "" {
			t.Errorf("%s: agents started by its service ended %q; want one stopped by the upgrade and one running", n.hostname, runs)
		}
	}

	// Broad's deferral ends: its gate is open (both pilots succeeded).
	s.publishPolicyCLI(t, policySelf("self-b", "0s"))
	s.waitSelf(t, broad, 4*time.Minute, "1.1", "installed", "1.1")

	// A broken 1.2: its agent cannot start.
	start = time.Now()
	s.admin(t, "catalog", "add", debs[2], "--package", "patchring", "--version", "1.2")
	// The guard restores 1.1 after the health deadline (20 s) plus 2 min.
	s.waitSelf(t, pilot, 6*time.Minute, "1.2", "rolled-back", "1.1")
	t.Logf("broken agent rolled back on the pilot ring %.1fs after catalog add", time.Since(start).Seconds())
	for _, n := range pilot {
		tx, err := lastSelfTx(ctx, n, "1.2")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(tx.Error, "not healthy in time") {
			t.Errorf("%s: transaction %d's error %q does not say the new agent was not healthy", n.hostname, tx.ID, tx.Error)
		}
		runs := n.svc.Runs()
		if len(runs) < 4 || !strings.Contains(runs[len(runs)-2], "exit status 1") || runs[len(runs)-1] != "" {
			t.Errorf("%s: agents started by its service ended %q; want the broken one failed (exit 1) and the restored one running", n.hostname, runs)
		}
	}
	s.waitPlan(t, broad, 2*time.Minute, "1.2", "wait-gate", "0 succeeded, 2 failed")
	s.waitPlan(t, pilot, time.Minute, "1.2", "denied", "")
	s.checkHeld(t, broad, "1.2")

	// A broken 1.3: its agent starts, gossips and verifies, but its local
	// API cannot be reached (its socket is removed). The agent finds
	// itself unhealthy at its deadline and restores 1.1 itself.
	start = time.Now()
	s.admin(t, "catalog", "add", debs[3], "--package", "patchring", "--version", "1.3")
	s.waitSelf(t, pilot, 4*time.Minute, "1.3", "rolled-back", "1.1")
	t.Logf("agent without its API rolled back on the pilot ring %.1fs after catalog add", time.Since(start).Seconds())
	for _, n := range pilot {
		tx, err := lastSelfTx(ctx, n, "1.3")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(tx.Error, "not healthy by its deadline") || !strings.Contains(tx.Error, "local API") {
			t.Errorf("%s: transaction %d's error %q does not say the new agent's local API failed its deadline", n.hostname, tx.ID, tx.Error)
		}
		// The 1.3 agent ran until the rollback's prerm stopped it.
		if runs := n.svc.Runs(); len(runs) < 6 || !strings.Contains(runs[len(runs)-2], "exit status 0") || runs[len(runs)-1] != "" {
			t.Errorf("%s: agents started by its service ended %q; want the 1.3 agent stopped by the rollback and the restored one running", n.hostname, runs)
		}
	}
	s.waitPlan(t, broad, 2*time.Minute, "1.3", "wait-gate", "0 succeeded, 2 failed")
	s.checkHeld(t, broad, "1.2", "1.3")
}

// checkHeld checks that nodes are still on the agent 1.1 and never
// started a transaction to any of versions.
func (s *testSite) checkHeld(t testing.TB, nodes []*node, versions ...string) {
	t.Helper()
	ctx := context.Background()
	for _, n := range nodes {
		if v, _, _ := n.sb.InstalledVersion(ctx, "patchring"); v != "1.1" {
			t.Errorf("%s: dpkg reports patchring %q, want 1.1 (held by the gate)", n.hostname, v)
		}
		for _, version := range versions {
			if tx, err := lastSelfTx(ctx, n, version); err != nil || tx != nil {
				t.Errorf("%s has a transaction to %s: %+v (%v)", n.hostname, version, tx, err)
			}
		}
	}
}
