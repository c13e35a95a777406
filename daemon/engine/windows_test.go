package engine_test

import (
	"context"
	"testing"
	"time"

	"github.com/patchring/patchring/daemon/engine"
	"github.com/patchring/patchring/policy"
)

// windowPolicy: the pilot ring installs only in the nightly window (02:00
// to 04:00 UTC), and no install starts in its last 30 minutes.
const windowPolicy = `windows:
  - name: nightly
    cron: "0 2 * * *"
    duration: 2h
    tz: UTC
    margin: 30m
    rings: [pilot]
`

// slowApply is a package manager whose install (apt's run) takes the time
// given on the test clock, as a long install does on the real one.
type slowApply struct {
	engine.Packages
	clock *clock
	takes time.Duration
}

func (s *slowApply) Apply(ctx context.Context, pkgs []engine.PkgVersion, remove []string, allowDowngrades, noDownload bool) error {
	err := s.Packages.Apply(ctx, pkgs, remove, allowDowngrades, noDownload)
	s.clock.Add(s.takes)
	return err
}

func at(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// TestWindowsEndToEnd drives the real engine over a sandboxed apt with a
// test clock: an approved update waits for the ring's window, is not
// started when the window closes sooner than its margin, installs inside
// the next window, and an install that runs past the window's end is
// finished, not stopped half-way.
func TestWindowsEndToEnd(t *testing.T) {
	w, n, _ := newPilot(t, windowPolicy)
	// 2026-12-01 10:00 UTC: outside the window.
	n.cycle()
	if v := n.version(); v != "1.0" {
		t.Fatalf("installed %s outside the window", v)
	}
	d := n.decision("acme-tool")
	if d.Action != policy.ActionInstallAt || d.Window != "nightly" || !d.At.Equal(at(t, "2026-12-02T02:00:00Z")) {
		t.Fatalf("decision outside the window: %s at %s in %q (%s)", d.Action, d.At, d.Window, d.Reason)
	}

	n.clock.Set(at(t, "2026-12-02T01:59:00Z"))
	n.cycle()
	if v := n.version(); v != "1.0" {
		t.Fatalf("installed %s a minute before the window", v)
	}

	// 03:45: the window is open for 15 more minutes, less than the margin.
	n.clock.Set(at(t, "2026-12-02T03:45:00Z"))
	n.cycle()
	if v := n.version(); v != "1.0" {
		t.Fatalf("started an install 15 minutes before the window closes (margin 30m): %s", v)
	}
	if d := n.decision("acme-tool"); d.Action != policy.ActionInstallAt || !d.At.Equal(at(t, "2026-12-03T02:00:00Z")) {
		t.Fatalf("decision inside the margin: %s at %s (%s)", d.Action, d.At, d.Reason)
	}
	if len(n.history()) != 0 {
		t.Fatalf("a transaction started inside the margin: %+v", n.history()[0])
	}

	// Next night, inside the window: installed.
	n.clock.Set(at(t, "2026-12-03T02:10:00Z"))
	n.cycle()
	if v := n.version(); v != "1.1" {
		t.Fatalf("not installed inside the window: %s", v)
	}
	tx := n.history()[0]
	if tx.Outcome != engine.OutcomeInstalled || tx.Started.Before(at(t, "2026-12-03T02:00:00Z")) || tx.Started.After(at(t, "2026-12-03T03:30:00Z")) {
		t.Fatalf("transaction %s started %s", tx.Outcome, tx.Started)
	}

	// A second node starts at 03:25 (35 minutes left) and its install
	// takes an hour: the window closes during it, and it still finishes.
	t.Cleanup(func() { engineConfigHook = nil })
	var slow *slowApply
	engineConfigHook = func(cfg *engine.Config) {
		slow = &slowApply{Packages: cfg.Packages, takes: time.Hour}
		cfg.Packages = slow
	}
	n2 := w.newNode(t, "pilot-2", []string{"pilot"}, mustPolicy(t, windowPolicy))
	engineConfigHook = nil
	slow.clock = n2.clock
	n2.clock.Set(at(t, "2026-12-03T03:25:00Z"))
	n2.cycle()
	if v := n2.version(); v != "1.1" {
		t.Fatalf("the install that ran past the window's end is at %s, want 1.1", v)
	}
	tx = n2.history()[0]
	if tx.Outcome != engine.OutcomeInstalled || !tx.Ended.After(at(t, "2026-12-03T04:00:00Z")) {
		t.Fatalf("transaction %s ended %s (steps %+v)", tx.Outcome, tx.Ended, tx.Steps)
	}
	for _, s := range tx.Steps {
		if s.Status == "failed" {
			t.Errorf("step %s failed: %s", s.Name, s.Detail)
		}
	}
	n2.audit()
}

// TestBlockWindowHoldsEverything: a change freeze (block window, all
// rings) holds the approved update for its whole span; the update installs
// when it closes.
func TestBlockWindowHoldsEverything(t *testing.T) {
	const freeze = `windows:
  - name: freeze
    action: block
    cron: "0 0 1 12 *"
    duration: 20d
    tz: UTC
`
	_, n, _ := newPilot(t, freeze)
	for _, now := range []string{"2026-12-01T10:00:00Z", "2026-12-10T02:00:00Z", "2026-12-20T23:59:00Z"} {
		n.clock.Set(at(t, now))
		n.cycle()
		if v := n.version(); v != "1.0" {
			t.Fatalf("installed %s at %s during the freeze", v, now)
		}
		if d := n.decision("acme-tool"); d.Action != policy.ActionWaitWindow || d.Window != "freeze" || !d.At.Equal(at(t, "2026-12-21T00:00:00Z")) {
			t.Fatalf("decision at %s: %s at %s in %q (%s)", now, d.Action, d.At, d.Window, d.Reason)
		}
	}
	n.clock.Set(at(t, "2026-12-21T00:00:00Z"))
	n.cycle()
	if v := n.version(); v != "1.1" {
		t.Fatalf("not installed when the freeze ended: %s", v)
	}
}
