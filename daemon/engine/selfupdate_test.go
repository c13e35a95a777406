package engine_test

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patchring/patchring/daemon/engine"
	"github.com/patchring/patchring/internal/testutil"
	"github.com/patchring/patchring/platform/detach"
)

// agent is the running patchring agent as the self-update sees it: its
// version, its health, and the restarts it asked for.
type agent struct {
	mu       sync.Mutex
	restarts []string
	results  []*engine.Tx
	clock    *clock // moved 10 s per health check (set once the node exists)
}

// healthy is a health check that passes; each check takes 10 s of the
// node's clock, so the new agent's steady stretch ends after a few.
func (a *agent) healthy(context.Context) error {
	if a.clock != nil {
		a.clock.Add(10 * time.Second)
	}
	return nil
}

func (a *agent) restart(reason string) {
	a.mu.Lock()
	a.restarts = append(a.restarts, reason)
	a.mu.Unlock()
}
func (a *agent) result(tx *engine.Tx) { a.mu.Lock(); a.results = append(a.results, tx); a.mu.Unlock() }
func (a *agent) restartCount() int    { a.mu.Lock(); defer a.mu.Unlock(); return len(a.restarts) }

// jobsDir is a directory for detached jobs; every job started there that
// still runs when the test ends (a guard waiting to restore) is stopped.
func jobsDir(t *testing.T) string {
	dir := t.TempDir()
	t.Cleanup(func() {
		if err := (&detach.Runner{Dir: dir}).StopAll(context.Background()); err != nil {
			t.Errorf("stop detached jobs: %v", err)
		}
	})
	return dir
}

// selfConfig makes the engine treat "patchring" as its own package, at
// version running, installing it through a real detached runner.
func selfConfig(cfg *engine.Config, jobs, running string, a *agent, health func(context.Context) error) {
	cfg.SelfPackage = "patchring"
	cfg.SelfVersion = running
	cfg.Detacher = &detach.Runner{Dir: jobs}
	cfg.SelfHealth = health
	cfg.SelfRestart = a.restart
	cfg.SelfPoll = 10 * time.Millisecond
	cfg.OnResult = a.result
}

// TestSelfUpdateRollsBackBrokenAgentAndCommitsHealthyOne installs the
// agent's own package from the catalog through the detached runner, then
// plays the agent's restarts: a new agent that never gets healthy is
// rolled back to the previous package at its deadline, and a healthy one
// is committed.
//
// With byVersion the engine knows the running agent's version
// (Config.SelfVersion); without, it tells a restarted agent by its
// recovering the transaction (as the daemon does).
func TestSelfUpdateRollsBackBrokenAgentAndCommitsHealthyOne(t *testing.T) {
	for _, byVersion := range []bool{true, false} {
		t.Run(map[bool]string{true: "by version", false: "by restart"}[byVersion], func(t *testing.T) {
			testSelfUpdate(t, byVersion)
		})
	}
}

func testSelfUpdate(t *testing.T, byVersion bool) {
	withSelf := func(cfg engine.Config, running string, health func(context.Context) error) engine.Config {
		if byVersion {
			cfg.SelfVersion = running
		} else {
			cfg.SelfVersion = ""
		}
		cfg.SelfHealth = health
		return cfg
	}
	w := newCatalogWorld(t, "self_update: {health_deadline: 2m}\n")
	v10 := w.build(t, vendorPkg("patchring", "1.0"))
	w.add(t, vendorPkg("patchring", "1.0"))
	w.add(t, vendorPkg("patchring", "1.1"))
	sb := w.sandbox(t, w.libacme, v10)
	jobs := jobsDir(t)
	a := &agent{}
	var cfg engine.Config
	healthy := a.healthy
	n := w.newNode(t, "pilot-1", []string{"pilot"}, sb, func(c *engine.Config) {
		selfConfig(c, jobs, "1.0", a, healthy)
		*c = withSelf(*c, "1.0", healthy)
		cfg = *c
	})
	a.clock = n.clock

	// Agent 1.0 installs 1.1 detached and asks to restart into it.
	n.cycle()
	if v := n.versionOf("patchring"); v != "1.1" {
		t.Fatalf("patchring is %q after the cycle, want 1.1; history %+v", v, n.history())
	}
	h := n.history()
	if len(h) != 1 || !h[0].Open() || a.restartCount() != 1 {
		t.Fatalf("after the self-install: history %+v, restarts %v; want one open transaction and one restart", h, a.restarts)
	}
	if got, want := stepNames(h[0]), "planned:done fetch:done place:done self-install:done"; got != want {
		t.Fatalf("journal steps:\n got %s\nwant %s", got, want)
	}
	it := h[0].Items[0]
	if it.From != "1.0" || it.To != "1.1" || it.FromPayload == nil {
		t.Fatalf("item = %+v; want 1.0 -> 1.1 with 1.0's payload kept", it)
	}
	st, err := (&detach.Runner{Dir: jobs}).Status("patchring-self-install-" + strconv.FormatUint(h[0].ID, 10))
	if err != nil || !st.Done || st.ExitCode != 0 {
		t.Fatalf("detached install job: %+v, %v", st, err)
	}

	// The new agent (1.1) starts and never gets healthy: at the deadline
	// (the clock moves 30s per check) 1.0 goes back, detached.
	checks := 0
	broken := engine.New(withSelf(cfg, "1.1", func(context.Context) error {
		checks++
		n.clock.Add(30 * time.Second)
		return errors.New("local API not answering")
	}))
	n.eng = broken
	if err := broken.Recover(context.Background()); err != nil {
		t.Fatalf("recover: %v", err)
	}
	if v := n.versionOf("patchring"); v != "1.0" {
		t.Fatalf("patchring is %q after the failed health check, want 1.0 restored; history %+v", v, n.history())
	}
	tx := n.history()[0]
	if tx.Outcome != engine.OutcomeRolledBack || !strings.Contains(tx.Error, "local API not answering") || tx.SelfDeadline.IsZero() {
		t.Fatalf("transaction = %+v", tx)
	}
	if got, want := stepNames(tx), "planned:done fetch:done place:done self-install:done self-health:failed rollback:done completed:done"; got != want {
		t.Fatalf("journal steps:\n got %s\nwant %s", got, want)
	}
	if checks < 4 || checks > 5 {
		t.Errorf("%d health checks before a 2m deadline at 30s each; want 4 or 5", checks)
	}
	if a.restartCount() != 2 {
		t.Errorf("restarts %v; want the broken agent to restart into 1.0", a.restarts)
	}
	if len(a.results) != 1 || a.results[0].Outcome != engine.OutcomeRolledBack {
		t.Errorf("results reported to the fleet: %+v; want the rolled-back self-update", a.results)
	}
	if d := n.plan()["patchring"]; d.Rule != "rollback" {
		t.Errorf("1.1 is offered again after its rollback: %+v", d)
	}

	// 1.2 is published; agent 1.0 installs it, and 1.2 comes back healthy.
	w.add(t, vendorPkg("patchring", "1.2"))
	n.refresh()
	n.eng = engine.New(withSelf(cfg, "1.0", healthy))
	n.cycle()
	if v := n.versionOf("patchring"); v != "1.2" || a.restartCount() != 3 {
		t.Fatalf("patchring is %q, restarts %v; want 1.2 and a restart", v, a.restarts)
	}
	n.eng = engine.New(withSelf(cfg, "1.2", healthy))
	if err := n.eng.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	tx = n.history()[0]
	if tx.Outcome != engine.OutcomeInstalled || n.versionOf("patchring") != "1.2" {
		t.Fatalf("healthy self-update: %+v, patchring %q", tx, n.versionOf("patchring"))
	}
	if got, want := stepNames(tx), "planned:done fetch:done place:done self-install:done self-health:done completed:done"; got != want {
		t.Fatalf("journal steps:\n got %s\nwant %s", got, want)
	}
	if a.restartCount() != 3 {
		t.Errorf("the healthy agent asked to restart: %v", a.restarts)
	}
}

// TestSelfUpdateWantsASteadyAgent: a new agent that passes its first
// health check and then loses its local API (it crashed, or something
// removed its socket) is not committed on that first check: it must stay
// healthy for a while, and it is rolled back at its deadline.
func TestSelfUpdateWantsASteadyAgent(t *testing.T) {
	w := newCatalogWorld(t, "self_update: {health_deadline: 2m}\n")
	v10 := w.build(t, vendorPkg("patchring", "1.0"))
	w.add(t, vendorPkg("patchring", "1.0"))
	w.add(t, vendorPkg("patchring", "1.1"))
	jobs := jobsDir(t)
	a := &agent{}
	var cfg engine.Config
	n := w.newNode(t, "pilot-1", []string{"pilot"}, w.sandbox(t, w.libacme, v10), func(c *engine.Config) {
		selfConfig(c, jobs, "1.0", a, a.healthy)
		cfg = *c
	})
	a.clock = n.clock
	n.cycle()
	if v := n.versionOf("patchring"); v != "1.1" || a.restartCount() != 1 {
		t.Fatalf("patchring %q, restarts %v after the cycle; want 1.1 and a restart", v, a.restarts)
	}
	checks := 0
	cfg.SelfVersion = "1.1"
	cfg.SelfHealth = func(ctx context.Context) error {
		checks++
		if checks == 1 {
			return a.healthy(ctx)
		}
		n.clock.Add(30 * time.Second)
		return errors.New("local API: dial unix api.sock: no such file or directory")
	}
	n.eng = engine.New(cfg)
	if err := n.eng.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	tx := n.history()[0]
	if tx.Outcome != engine.OutcomeRolledBack || !strings.Contains(tx.Error, "no such file") || n.versionOf("patchring") != "1.0" {
		t.Fatalf("an agent healthy once, then not: %+v (%s), patchring %q; want rolled back to 1.0", tx, stepNames(tx), n.versionOf("patchring"))
	}
	if got, want := stepNames(tx), "planned:done fetch:done place:done self-install:done self-health:failed rollback:done completed:done"; got != want {
		t.Fatalf("journal steps:\n got %s\nwant %s", got, want)
	}
	if st := tx.Steps[4]; !strings.Contains(st.Detail, "stay healthy for 30s") {
		t.Errorf("health step %+v; want it to say how long the agent must stay healthy", st)
	}
	if checks < 4 {
		t.Errorf("%d health checks; want the failing ones up to the 2m deadline after the first good one", checks)
	}
}

// TestSelfUpdateNeedsPreviousPayload refuses to update the agent when the
// running version cannot be restored.
func TestSelfUpdateNeedsPreviousPayload(t *testing.T) {
	w := newCatalogWorld(t, "")
	v10 := w.build(t, vendorPkg("patchring", "1.0")) // not in the catalog
	w.add(t, vendorPkg("patchring", "1.1"))
	a := &agent{}
	n := w.newNode(t, "pilot-1", []string{"pilot"}, w.sandbox(t, w.libacme, v10), func(c *engine.Config) {
		selfConfig(c, filepath.Join(jobsDir(t), "jobs"), "1.0", a, a.healthy)
	})
	a.clock = n.clock
	n.cycle()
	h := n.history()
	if n.versionOf("patchring") != "1.0" || len(h) != 1 || h[0].Outcome != engine.OutcomeFailed ||
		!strings.Contains(h[0].Error, "no payload of the running agent patchring 1.0") || a.restartCount() != 0 {
		t.Fatalf("patchring %q, history %+v, restarts %v", n.versionOf("patchring"), h, a.restarts)
	}
}

// gatedJobs is a detached runner whose jobs look unfinished while held:
// the agent that launched the install is stopped (its context ends)
// before it sees the install end, as when the package's scripts restart
// it.
type gatedJobs struct {
	*detach.Runner
	held bool
}

func (g *gatedJobs) Status(name string) (detach.Status, error) {
	if g.held {
		return detach.Status{}, nil
	}
	return g.Runner.Status(name)
}

// TestSelfUpdateFinishedByTheNextAgent stops the agent while its detached
// install runs; the agent that starts next waits for the install, checks
// its health and commits.
func TestSelfUpdateFinishedByTheNextAgent(t *testing.T) {
	w := newCatalogWorld(t, "")
	v10 := w.build(t, vendorPkg("patchring", "1.0"))
	w.add(t, vendorPkg("patchring", "1.0"))
	w.add(t, vendorPkg("patchring", "1.1"))
	jobs := &gatedJobs{Runner: &detach.Runner{Dir: jobsDir(t)}, held: true}
	a := &agent{}
	var cfg engine.Config
	n := w.newNode(t, "pilot-1", []string{"pilot"}, w.sandbox(t, w.libacme, v10), func(c *engine.Config) {
		selfConfig(c, jobs.Dir, "", a, a.healthy)
		c.Detacher = jobs
		cfg = *c
	})
	a.clock = n.clock
	n.plan()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := n.eng.InstallNow(ctx, "patchring", "1.1")
		done <- err
	}()
	// Wait until the detached install has really ended, then stop the
	// agent that launched it without it having seen that.
	job := "patchring-self-install-1"
	testutil.WaitFor(t, time.Minute, "the detached install ended", func() error {
		st, err := jobs.Runner.Status(job)
		if err != nil {
			t.Fatal(err)
		}
		if !st.Done {
			return errors.New("still running")
		}
		return nil
	})
	cancel()
	if err := <-done; !errors.Is(err, engine.ErrRestartPending) {
		t.Fatalf("InstallNow = %v; want ErrRestartPending", err)
	}
	tx := n.history()[0]
	if got, want := stepNames(tx), "planned:done fetch:done place:done self-install:started"; got != want {
		t.Fatalf("journal steps of the stopped agent:\n got %s\nwant %s", got, want)
	}

	jobs.held = false
	n.eng = engine.New(cfg)
	if err := n.eng.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	tx = n.history()[0]
	if tx.Outcome != engine.OutcomeInstalled || n.versionOf("patchring") != "1.1" || a.restartCount() != 0 {
		t.Fatalf("after the next start: %+v (%s), patchring %q, restarts %v", tx, stepNames(tx), n.versionOf("patchring"), a.restarts)
	}
}

// TestSelfUpdateGuardRestoresAgentThatNeverStarts: the new agent never
// runs, so nothing settles the install job; its guard reinstalls the
// previous package, and the old agent, started again, reports the
// self-update rolled back.
func TestSelfUpdateGuardRestoresAgentThatNeverStarts(t *testing.T) {
	w := newCatalogWorld(t, "")
	v10 := w.build(t, vendorPkg("patchring", "1.0"))
	w.add(t, vendorPkg("patchring", "1.0"))
	w.add(t, vendorPkg("patchring", "1.1"))
	jobs := &detach.Runner{Dir: jobsDir(t)}
	a := &agent{}
	var cfg engine.Config
	n := w.newNode(t, "pilot-1", []string{"pilot"}, w.sandbox(t, w.libacme, v10), func(c *engine.Config) {
		selfConfig(c, jobs.Dir, "", a, a.healthy)
		c.SelfGuardAfter = time.Second
		cfg = *c
	})
	a.clock = n.clock
	n.cycle()
	if a.restartCount() != 1 {
		t.Fatalf("restarts %v; want one after the install", a.restarts)
	}
	// No agent 1.1 ever runs.
	testutil.WaitFor(t, 2*time.Minute, "the guard restored", func() error {
		st, err := jobs.GuardStatus("patchring-self-install-1")
		if err != nil {
			t.Fatal(err)
		}
		if !st.Done {
			return errors.New("still running")
		}
		if st.ExitCode != 0 {
			t.Fatalf("guard's restore failed: %+v", st)
		}
		return nil
	})
	if v := n.versionOf("patchring"); v != "1.0" {
		t.Fatalf("patchring is %q after the guard, want 1.0", v)
	}
	n.eng = engine.New(cfg) // agent 1.0 starts again
	if err := n.eng.Recover(context.Background()); err != nil {
		t.Fatal(err)
	}
	tx := n.history()[0]
	if tx.Outcome != engine.OutcomeRolledBack || !strings.Contains(tx.Error, "the guard restored 1.0") {
		t.Fatalf("transaction = %+v (%s)", tx, stepNames(tx))
	}
	if len(a.results) != 1 || a.results[0].Outcome != engine.OutcomeRolledBack {
		t.Errorf("results reported to the fleet: %+v", a.results)
	}
	if d := n.plan()["patchring"]; d.Rule != "rollback" {
		t.Errorf("1.1 is offered again after the guard's rollback: %+v", d)
	}
}
