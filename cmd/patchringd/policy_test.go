package main

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchring/patchring/daemon/apitypes"
	"github.com/patchring/patchring/daemon/client"
	"github.com/patchring/patchring/internal/testutil"
	"github.com/patchring/patchring/policy"
	"github.com/patchring/patchring/policy/tufrepo"
)

const agentPolicy = `schema: 1
name: %NAME%
expires: 2035-01-01T00:00:00Z
rings:
  - name: lab
    select:
      - tags: [lab]
    defer: 0d
  - name: broad
    default: true
    defer: 7d
`

// TestAgentFollowsSignedPolicy: an admin inits a repository, publishes a
// policy and serves it; a running agent verifies it within its refresh
// interval and shows its ring. A tampered policy is rejected with a clear
// reason while the agent keeps the last good one; a new signed policy is
// picked up.
func TestAgentFollowsSignedPolicy(t *testing.T) {
	dir := t.TempDir()
	repoDir, keys := filepath.Join(dir, "repo"), filepath.Join(dir, "keys")
	repo, err := tufrepo.Init(repoDir, keys, tufrepo.Options{})
	if err != nil {
		t.Fatal(err)
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
		if _, err := repo.PublishPolicy(canon); err != nil {
			t.Fatal(err)
		}
	}
	publish("first")
	srv := httptest.NewServer(tufrepo.Handler(repoDir))
	t.Cleanup(srv.Close)
	root, err := repo.RootJSON()
	if err != nil {
		t.Fatal(err)
	}
	rootFile := filepath.Join(dir, "root.json")
	os.WriteFile(rootFile, root, 0o644)

	state := filepath.Join(dir, "agent")
	p := startDaemon(t, state, "--policy-origin", srv.URL, "--policy-root", rootFile, "--policy-refresh", "1s", "--tags", "lab")
	p.waitReady(t)
	c := &client.Client{Socket: p.sock}
	waitPolicy := func(cond func(apitypes.EffectivePolicy) bool, what string) apitypes.EffectivePolicy {
		t.Helper()
		var last apitypes.EffectivePolicy
		testutil.WaitFor(t, 30*time.Second, "agent showing "+what, func() error {
			ep, err := c.Policy(context.Background())
			if err != nil {
				return fmt.Errorf("%w\n%s", err, p.stderr)
			}
			if last = ep; !cond(ep) {
				return fmt.Errorf("last: %+v\n%s", ep, p.stderr)
			}
			return nil
		})
		return last
	}
	ep := waitPolicy(func(ep apitypes.EffectivePolicy) bool { return ep.Name == "first" }, "the first policy")
	if ep.Ring != "lab" || !strings.Contains(ep.RingWhy, "lab") || ep.Expired {
		t.Fatalf("effective policy: %+v", ep)
	}

	// Publish a second policy, then tamper with its served bytes (the
	// origin, a mirror or the network lying): same name, other content.
	old := policyTargets(t, repoDir)
	publish("second")
	var second string
	for path := range policyTargets(t, repoDir) {
		if !old[path] {
			second = path
		}
	}
	if second == "" {
		t.Fatal("publishing wrote no new policy.json target")
	}
	secondGood, _ := os.ReadFile(second)
	os.WriteFile(second, []byte(strings.Replace(string(secondGood), `"second"`, `"evil!!"`, 1)), 0o644)
	ep = waitPolicy(func(ep apitypes.EffectivePolicy) bool { return ep.LastError != "" }, "a refresh error")
	if ep.Name != "first" {
		t.Fatalf("agent acts on %q after a tampered refresh, want the last good policy", ep.Name)
	}
	if !strings.Contains(ep.LastError, "hash") {
		t.Errorf("refresh error does not say what is wrong: %q", ep.LastError)
	}
	st, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var polSt apitypes.SubsystemStatus
	for _, s := range st.Subsystems {
		if s.Name == "policy" {
			polSt = s
		}
	}
	if polSt.State != "degraded" || polSt.Details["last_error"] == "" {
		t.Errorf("status does not report the failed refresh: %+v", polSt)
	}

	// The genuine bytes come back: the agent adopts the second policy.
	os.WriteFile(second, secondGood, 0o644)
	waitPolicy(func(ep apitypes.EffectivePolicy) bool { return ep.Name == "second" && ep.LastError == "" }, "the second policy")
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
