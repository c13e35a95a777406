package engine_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/patchring/patchring/daemon/engine"
	"github.com/patchring/patchring/policy"
)

// TestNoUsablePolicyInstallsNothing: without a usable policy (none yet,
// one the daemon reports as expired, one whose expiry the clock passed)
// neither the planner nor `install --now` nor a direct Install installs
// anything, each saying why; a fresh policy resumes installs.
func TestNoUsablePolicyInstallsNothing(t *testing.T) {
	_, n, pol := newPilot(t, "")
	ctx := context.Background()

	cases := []struct {
		name    string
		set     func()
		wantWhy string
	}{
		{"no policy yet", func() { n.setPolicy(nil, "") }, "no verified policy yet"},
		{"policy reported expired", func() { n.setPolicy(nil, "v7") }, "policy v7 expired"},
		{"policy past its expiry", func() {
			n.setPolicy(pol, "v8")
			n.clock.Add(pol.Expires.Sub(n.clock.Now()) + time.Minute)
		}, "policy expired 2030-01-01"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.set()
			n.cycle()
			if v := n.version(); v != "1.0" {
				t.Fatalf("the planner installed acme-tool %s without a usable policy", v)
			}
			d := n.decision("acme-tool")
			if d.Action != policy.ActionExpired || !strings.Contains(d.Reason, c.wantWhy) {
				t.Errorf("decision = %s %q, want expired saying %q", d.Action, d.Reason, c.wantWhy)
			}
			tx, err := n.eng.InstallNow(ctx, "acme-tool", "")
			if err == nil || tx != nil || !strings.Contains(err.Error(), c.wantWhy) {
				t.Fatalf("install --now = %v, %v; want a refusal saying %q", tx, err, c.wantWhy)
			}
			u := policy.Update{Source: "apt", Package: "acme-tool", Version: "1.1", InstalledVersion: "1.0"}
			if tx, err := n.eng.Install(ctx, u, "direct", "v1"); !errors.Is(err, engine.ErrNoUsablePolicy) || tx != nil {
				t.Fatalf("Install = %v, %v; want ErrNoUsablePolicy", tx, err)
			}
			if v := n.version(); v != "1.0" {
				t.Fatalf("acme-tool is at %s after refused installs", v)
			}
			if h := n.history(); len(h) != 0 {
				t.Fatalf("refused installs left transactions: %+v", h)
			}
		})
	}

	fresh := mustPolicy(t, "")
	fresh.Expires = n.clock.Now().Add(24 * time.Hour)
	if err := fresh.Validate(); err != nil {
		t.Fatal(err)
	}
	n.setPolicy(fresh, "v9")
	if _, err := n.eng.InstallNow(ctx, "acme-tool", ""); err != nil {
		t.Fatalf("install --now under a fresh policy: %v", err)
	}
	if v := n.version(); v != "1.1" {
		t.Fatalf("acme-tool is at %s under a fresh policy, want 1.1", v)
	}
	n.audit()
}
