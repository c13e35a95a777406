package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchring/patchring/daemon/apitypes"
	"github.com/patchring/patchring/daemon/client"
	"github.com/patchring/patchring/policy/tufrepo"
)

// TestAgentFollowsSignedPolicy: an admin inits a repository, publishes a
// policy and serves it; a running agent verifies it within its refresh
// interval and shows its ring. A tampered policy is rejected with a clear
// reason while the agent keeps the last good one; a new signed policy is
// picked up.
func TestAgentFollowsSignedPolicy(t *testing.T) {
	repo := newSignedRepo(t, t.TempDir(), agentPolicy, tufrepo.Options{})
	repo.publish(t, "first")
	srv := repo.serve(t, nil)

	p := startDaemon(t, t.TempDir(), "--policy-origin", srv.URL, "--policy-root", repo.rootFile, "--policy-refresh", "1s", "--tags", "lab")
	p.waitReady(t)
	c := &client.Client{Socket: p.sock}
	ep := waitPolicy(t, p, 30*time.Second, "the first policy", func(ep apitypes.EffectivePolicy) bool { return ep.Name == "first" })
	if ep.Ring != "lab" || !strings.Contains(ep.RingWhy, "lab") || ep.Expired {
		t.Fatalf("effective policy: %+v", ep)
	}

	// Publish a second policy, then tamper with its served bytes (the
	// origin, a mirror or the network lying): same name, other content.
	old := policyTargets(t, repo.dir)
	repo.publish(t, "second")
	var second string
	for path := range policyTargets(t, repo.dir) {
		if !old[path] {
			second = path
		}
	}
	if second == "" {
		t.Fatal("publishing wrote no new policy.json target")
	}
	secondGood, _ := os.ReadFile(second)
	os.WriteFile(second, []byte(strings.Replace(string(secondGood), `"second"`, `"evil!!"`, 1)), 0o644)
	ep = waitPolicy(t, p, 30*time.Second, "a refresh error", func(ep apitypes.EffectivePolicy) bool { return ep.LastError != "" })
	if ep.Name != "first" {
		t.Fatalf("agent acts on %q after a tampered refresh, want the last good policy", ep.Name)
	}
	if !strings.Contains(ep.LastError, "hash") {
		t.Errorf("refresh error does not say what is wrong: %q", ep.LastError)
	}
	polSt := subsystem(t, c, "policy")
	if polSt.State != "degraded" || polSt.Details["last_error"] == "" {
		t.Errorf("status does not report the failed refresh: %+v", polSt)
	}

	// The genuine bytes come back: the agent adopts the second policy.
	os.WriteFile(second, secondGood, 0o644)
	waitPolicy(t, p, 30*time.Second, "the second policy", func(ep apitypes.EffectivePolicy) bool { return ep.Name == "second" && ep.LastError == "" })
	p.stop(t)
}

// policyTargets lists the policy.json target files of a repository.
func policyTargets(t *testing.T, repoDir string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	filepath.WalkDir(filepath.Join(repoDir, "targets"), func(path string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(path, "policy.json") {
			out[path] = true
		}
		return nil
	})
	return out
}
