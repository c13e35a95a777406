package main

import (
	"context"
	"fmt"
	"net/http"
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

// agentPolicy is the policy template the end-to-end tests publish:
// %NAME% is the policy's name.
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

// signedRepo is the admin's signed repository in an end-to-end test: made
// with tufrepo.Init under dir (repo/ and keys/), with the root that agents
// trust written to rootFile, and policies published from a template.
type signedRepo struct {
	*tufrepo.Repo
	dir, keys string
	rootFile  string // the trusted root.json, for --policy-root
	template  string // the policy published, %NAME% replaced
}

// newSignedRepo initializes the repository under dir and writes its root
// for the agents. opts are tufrepo's (a clock, expiries).
func newSignedRepo(t *testing.T, dir, template string, opts tufrepo.Options) *signedRepo {
	t.Helper()
	r := &signedRepo{dir: filepath.Join(dir, "repo"), keys: filepath.Join(dir, "keys"), rootFile: filepath.Join(dir, "root.json"), template: template}
	var err error
	if r.Repo, err = tufrepo.Init(r.dir, r.keys, opts); err != nil {
		t.Fatal(err)
	}
	root, err := r.RootJSON()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(r.rootFile, root, 0o644); err != nil {
		t.Fatal(err)
	}
	return r
}

// publish signs and publishes the template as the policy named name.
func (r *signedRepo) publish(t *testing.T, name string) {
	t.Helper()
	p, err := policy.Parse([]byte(strings.ReplaceAll(r.template, "%NAME%", name)), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	canon, err := policy.MarshalCanonical(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.PublishPolicy(canon); err != nil {
		t.Fatal(err)
	}
}

// serve serves the repository over HTTP on 127.0.0.1 until the test ends
// (or until the server is closed); h, when not nil, is served instead.
func (r *signedRepo) serve(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	if h == nil {
		h = tufrepo.Handler(r.dir)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// waitAgent polls cond until it returns nil and fails t after timeout with
// cond's last error and the end of the agent's log.
func waitAgent(t *testing.T, p *daemonProc, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	if err := testutil.Poll(timeout, cond); err != nil {
		t.Fatalf("%s: not within %s; last: %v\n%s", what, timeout, err, tailString(p.stderr.String(), 3000))
	}
}

// waitPolicy waits until the agent p's effective policy satisfies cond
// and returns it.
func waitPolicy(t *testing.T, p *daemonProc, timeout time.Duration, what string, cond func(apitypes.EffectivePolicy) bool) apitypes.EffectivePolicy {
	t.Helper()
	c := &client.Client{Socket: p.sock}
	var last apitypes.EffectivePolicy
	waitAgent(t, p, timeout, what, func() error {
		ep, err := c.Policy(context.Background())
		if err != nil {
			return err
		}
		if last = ep; !cond(ep) {
			return fmt.Errorf("%+v", ep)
		}
		return nil
	})
	return last
}

// subsystem returns the section of the agent's status named name.
func subsystem(t *testing.T, c *client.Client, name string) apitypes.SubsystemStatus {
	t.Helper()
	st, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st.Subsystems {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("the status has no %s section: %+v", name, st.Subsystems)
	return apitypes.SubsystemStatus{}
}

func tailString(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
