package engine

// Self-update: the agent's own package is a catalog payload like any
// other, but installing it restarts the agent (its maintainer scripts
// restart the service), so the install runs detached from the agent's
// process (platform/detach) and the transaction is finished by the agent
// that starts next: it waits for the detached install, then must be
// healthy (Config.SelfHealth: service running, local API answering,
// gossip rejoined, policy verified) within the policy's
// self_update.health_deadline of starting its health step, and stay
// healthy for a quarter of that deadline (at most Config.SelfSteadyMax: an
// agent that loses its API or crashes moments after its first good check
// is not committed), or it installs
// the previous package again (detached too, from the content store, where
// the rollback window keeps it) and the transaction ends rolled back, which
// the history and the fleet results report and the ring gates count.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/patchring/patchring/platform/detach"
)

// Self-update steps.
const (
	// StepSelfInstall is the detached install of the agent's package.
	StepSelfInstall = "self-install"
	// StepSelfHealth is the new agent's health check, up to its deadline.
	StepSelfHealth = "self-health"
)

// ErrRestartPending means the agent installed its own package and must
// restart to finish the transaction (Config.SelfRestart was called).
var ErrRestartPending = errors.New("the agent's own package was installed; the transaction finishes after the agent restarts")

// Detacher runs commands that outlive the agent (platform/detach.Runner).
type Detacher interface {
	Start(ctx context.Context, name string, cmd detach.Command) error
	Status(name string) (detach.Status, error)
	// StartGuarded runs install, then restore unless the job is settled
	// within after of the install's end.
	StartGuarded(ctx context.Context, name string, install, restore detach.Command, after time.Duration) error
	Settle(name string) error
	GuardStatus(name string) (detach.Status, error)
}

// selfInstaller is a package manager that can hand out the command that
// installs placed payload files, to run detached.
type selfInstaller interface {
	InstallFilesCommand(ctx context.Context, pkgs []PkgVersion, allowDowngrades bool) (detach.Command, error)
}

// isSelf reports whether tx changes the agent's own package.
func (e *Engine) isSelf(tx *Tx) bool {
	if e.cfg.SelfPackage == "" {
		return false
	}
	for _, it := range tx.Items {
		if it.Package == e.cfg.SelfPackage {
			return true
		}
	}
	return false
}

// selfJob names the detached job of tx's step.
func selfJob(tx *Tx, what string) string { return fmt.Sprintf("patchring-self-%s-%d", what, tx.ID) }

// selfInstall starts the detached install of the agent's package (placed
// already) and follows it while this process lives.
func (e *Engine) selfInstall(ctx context.Context, tx *Tx) {
	fail := func(err error) {
		e.j.end(tx, OutcomeFailed, fmt.Errorf("self-update: %w", err))
		e.done(ctx, tx)
	}
	it := tx.Items[0]
	si, ok := e.cfg.Packages.(selfInstaller)
	switch {
	case len(tx.Items) != 1 || it.Source != "catalog":
		fail(errors.New("the agent's own package is installed only alone, from the signed catalog"))
		return
	case !ok || e.cfg.Detacher == nil || e.cfg.SelfHealth == nil:
		fail(errors.New("this agent cannot install itself detached (no detached runner or self health check configured)"))
		return
	case it.From == "":
		fail(errors.New("the agent's package is not installed through the package manager here, so there is nothing to roll back to; install it with the package manager first"))
		return
	case it.FromPayload == nil:
		fail(fmt.Errorf("no payload of the running agent %s %s is available for a rollback; publish that version in the catalog too (patchring catalog add) so the content store can keep it", it.Package, it.From))
		return
	}
	// The previous package is placed too: the job's guard reinstalls it
	// when no new agent settles the job (one that never starts).
	if err := e.place(ctx, it.Source, it.Package, it.Arch, it.From, it.FromPayload); err != nil {
		fail(fmt.Errorf("place the previous agent for the rollback: %w", err))
		return
	}
	cmd, err := si.InstallFilesCommand(ctx, []PkgVersion{{it.Package, it.To}}, false)
	if err != nil {
		fail(err)
		return
	}
	restore, err := si.InstallFilesCommand(ctx, []PkgVersion{{it.Package, it.From}}, true)
	if err != nil {
		fail(err)
		return
	}
	job := selfJob(tx, "install")
	after := e.guardAfter()
	if err := e.j.begin(tx, StepSelfInstall, fmt.Sprintf("detached job %s; its guard restores %s %s unless the new agent is healthy within %s", job, it.Package, it.From, after)); err != nil {
		fail(err)
		return
	}
	if err := e.cfg.Detacher.StartGuarded(ctx, job, cmd, restore, after); err != nil {
		e.j.finish(tx, err, "")
		fail(err)
		return
	}
	e.followSelfInstall(ctx, tx, false)
}

// followSelfInstall waits for the detached install of tx and acts on where
// the agent's package ended: at the new version, the agent restarts into it
// (when the package did not restart it already); at the old one the
// transaction failed; anywhere else the previous version goes back.
func (e *Engine) followSelfInstall(ctx context.Context, tx *Tx, recovering bool) {
	it := tx.Items[0]
	st, err := e.awaitJob(ctx, selfJob(tx, "install"))
	if err != nil {
		return // this process is ending; the next start finishes the transaction
	}
	v, _ := e.cfg.Packages.InstalledVersion(ctx, it.Package)
	switch v {
	case it.To:
		e.j.finish(tx, nil, fmt.Sprintf("%s %s installed", it.Package, it.To))
		if e.runsInstalled(ctx, recovering) {
			e.selfHealth(ctx, tx)
			return
		}
		e.cfg.Log.Info("engine: the agent installed its own package; restarting into it", "tx", tx.ID, "version", it.To)
		if e.cfg.SelfRestart != nil {
			e.cfg.SelfRestart(fmt.Sprintf("transaction %d installed %s %s", tx.ID, it.Package, it.To))
		}
	case it.From:
		if st.ExitCode == 0 {
			// Installed, and restored since by the job's guard.
			e.j.finish(tx, nil, fmt.Sprintf("%s %s installed", it.Package, it.To))
			e.guardRestored(ctx, tx)
			return
		}
		e.settleGuard(tx)
		err := fmt.Errorf("the detached install exited %d: %s", st.ExitCode, tail([]byte(st.Output), 400))
		e.j.finish(tx, err, "")
		e.j.end(tx, OutcomeFailed, fmt.Errorf("self-update: %w", err))
		e.done(ctx, tx)
	default:
		err := fmt.Errorf("%s is at %q after the detached install (exit %d), want %s: %s", it.Package, v, st.ExitCode, it.To, tail([]byte(st.Output), 400))
		e.j.finish(tx, err, "")
		e.selfRollback(ctx, tx, err)
	}
}

// runsInstalled reports whether this process runs the agent version
// installed now: by Config.SelfVersion when set, else by whether it is
// recovering (it started after the detached job was launched; the process
// that launched the job and saw it end runs the version from before).
func (e *Engine) runsInstalled(ctx context.Context, recovering bool) bool {
	if e.cfg.SelfVersion == "" {
		return recovering
	}
	v, _ := e.cfg.Packages.InstalledVersion(ctx, e.cfg.SelfPackage)
	return v == e.cfg.SelfVersion
}

// awaitJob polls a detached job until it ends or ctx does.
func (e *Engine) awaitJob(ctx context.Context, job string) (detach.Status, error) {
	for {
		st, err := e.cfg.Detacher.Status(job)
		if err != nil {
			e.cfg.Log.Warn("engine: detached job status", "job", job, "err", err)
		} else if st.Done {
			return st, nil
		}
		if err := e.pause(ctx); err != nil {
			return detach.Status{}, err
		}
	}
}

func (e *Engine) pause(ctx context.Context) error {
	t := time.NewTimer(e.cfg.SelfPoll)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// selfSteady is how long the new agent must stay healthy before its
// self-update is committed: a quarter of the health deadline, at most
// Config.SelfSteadyMax.
func (e *Engine) selfSteady() time.Duration {
	p, _ := e.cfg.Policy()
	return min(p.SelfHealthDeadline()/4, e.cfg.SelfSteadyMax)
}

// selfHealth checks the freshly started agent until it has been healthy
// for selfSteady or the deadline (set when the step began, so restarts do
// not extend it) passes while it is not; then it commits or rolls back.
// A healthy stretch that began before the deadline may finish after it.
func (e *Engine) selfHealth(ctx context.Context, tx *Tx) {
	steady := e.selfSteady()
	if tx.LastStep().Name != StepSelfHealth {
		p, _ := e.cfg.Policy()
		d := p.SelfHealthDeadline()
		tx.SelfDeadline = e.cfg.Now().Add(d)
		if err := e.j.begin(tx, StepSelfHealth, fmt.Sprintf("the new agent must be healthy within %s (by %s) and stay healthy for %s", d, tx.SelfDeadline.UTC().Format(time.RFC3339), steady)); err != nil {
			e.cfg.Log.Warn("engine: journal", "tx", tx.ID, "err", err)
		}
	}
	var healthySince time.Time // start of the current healthy stretch
	for {
		if v, _ := e.cfg.Packages.InstalledVersion(ctx, tx.Items[0].Package); v != tx.Items[0].To {
			e.guardRestored(ctx, tx)
			return
		}
		err := e.cfg.SelfHealth(ctx)
		now := e.cfg.Now()
		if err == nil && healthySince.IsZero() {
			healthySince = now
			e.cfg.Log.Info("engine: the new agent is healthy; watching it", "tx", tx.ID, "for", steady)
		}
		if err == nil && now.Sub(healthySince) < steady {
			if e.pause(ctx) != nil {
				return
			}
			continue
		}
		if err != nil && !healthySince.IsZero() {
			e.cfg.Log.Warn("engine: the new agent was healthy and is not any more", "tx", tx.ID, "err", err)
			healthySince = time.Time{}
		}
		if err == nil {
			if err := e.cfg.Detacher.Settle(selfJob(tx, "install")); err != nil {
				// The guard would restore a healthy agent: not healthy yet.
				err = fmt.Errorf("settle the install's guard: %w", err)
				e.cfg.Log.Warn("engine: self-update", "tx", tx.ID, "err", err)
				if e.pause(ctx) != nil {
					return
				}
				continue
			}
			e.j.finish(tx, nil, "healthy")
			e.j.end(tx, OutcomeInstalled, nil)
			e.done(ctx, tx)
			return
		}
		if ctx.Err() != nil {
			return
		}
		if !now.Before(tx.SelfDeadline) {
			cause := fmt.Errorf("the new agent was not healthy by its deadline %s: %w", tx.SelfDeadline.UTC().Format(time.RFC3339), err)
			e.j.finish(tx, cause, "")
			e.selfRollback(ctx, tx, cause)
			return
		}
		e.cfg.Log.Info("engine: waiting for the new agent to be healthy", "tx", tx.ID, "err", err, "deadline", tx.SelfDeadline)
		if e.pause(ctx) != nil {
			return
		}
	}
}

// selfRollback installs the previous agent package again, detached.
func (e *Engine) selfRollback(ctx context.Context, tx *Tx, cause error) {
	it := tx.Items[0]
	failed := func(err error) {
		e.j.finish(tx, err, "")
		tx.RollbackFailed = true
		e.setErr(fmt.Errorf("transaction %d: the previous agent could not be restored: %w", tx.ID, err))
		e.j.end(tx, OutcomeFailed, fmt.Errorf("self-update: %v; rollback failed too: %w", cause, err))
		e.done(ctx, tx)
	}
	e.settleGuard(tx) // this rollback replaces the guard's
	e.j.begin(tx, StepRollback, cause.Error())
	if err := e.place(ctx, it.Source, it.Package, it.Arch, it.From, it.FromPayload); err != nil {
		failed(err)
		return
	}
	cmd, err := e.cfg.Packages.(selfInstaller).InstallFilesCommand(ctx, []PkgVersion{{it.Package, it.From}}, true)
	if err != nil {
		failed(err)
		return
	}
	if err := e.cfg.Detacher.Start(ctx, selfJob(tx, "rollback"), cmd); err != nil {
		failed(err)
		return
	}
	e.followSelfRollback(ctx, tx, cause, false)
}

// followSelfRollback waits for the detached rollback and ends tx.
func (e *Engine) followSelfRollback(ctx context.Context, tx *Tx, cause error, recovering bool) {
	it := tx.Items[0]
	st, err := e.awaitJob(ctx, selfJob(tx, "rollback"))
	if err != nil {
		return
	}
	if v, _ := e.cfg.Packages.InstalledVersion(ctx, it.Package); v != it.From {
		err := fmt.Errorf("%s is at %q after the rollback (exit %d), want %s: %s", it.Package, v, st.ExitCode, it.From, tail([]byte(st.Output), 400))
		e.j.finish(tx, err, "")
		tx.RollbackFailed = true
		e.setErr(fmt.Errorf("transaction %d: the previous agent could not be restored: %w", tx.ID, err))
		e.j.end(tx, OutcomeFailed, fmt.Errorf("self-update: %v; rollback failed too: %w", cause, err))
		e.done(ctx, tx)
		return
	}
	e.j.finish(tx, nil, "previous agent restored")
	e.markRolledBack(it, tx.Policy)
	e.j.end(tx, OutcomeRolledBack, fmt.Errorf("self-update: %w", cause))
	e.done(ctx, tx)
	if !e.runsInstalled(ctx, recovering) && e.cfg.SelfRestart != nil {
		// This process runs the version just removed.
		e.cfg.SelfRestart(fmt.Sprintf("transaction %d restored %s %s", tx.ID, it.Package, it.From))
	}
}

// guardAfter is how long the install job's guard waits for the new agent
// to be healthy before it restores the previous one itself: past the
// agent's own deadline, so the agent's journaled rollback comes first
// when the agent runs at all.
func (e *Engine) guardAfter() time.Duration {
	if e.cfg.SelfGuardAfter > 0 {
		return e.cfg.SelfGuardAfter
	}
	p, _ := e.cfg.Policy()
	return p.SelfHealthDeadline() + 2*time.Minute
}

// settleGuard stands the install job's guard down.
func (e *Engine) settleGuard(tx *Tx) {
	if err := e.cfg.Detacher.Settle(selfJob(tx, "install")); err != nil {
		e.cfg.Log.Warn("engine: self-update: settle the install's guard", "tx", tx.ID, "err", err)
	}
}

// guardRestored ends tx after the agent's package went back to the
// previous version without this engine: the install job's guard restored
// it because no new agent was healthy in time (it never started, or never
// passed its check).
func (e *Engine) guardRestored(ctx context.Context, tx *Tx) {
	it := tx.Items[0]
	v, _ := e.cfg.Packages.InstalledVersion(ctx, it.Package)
	gs, _ := e.cfg.Detacher.GuardStatus(selfJob(tx, "install"))
	detail := fmt.Sprintf("%s is at %q; the install's guard ", it.Package, v)
	if gs.Done {
		detail += fmt.Sprintf("restored %s (exit %d)", it.From, gs.ExitCode)
	} else {
		detail += "did not run"
	}
	e.j.begin(tx, StepRollback, detail)
	if v != it.From {
		err := fmt.Errorf("%s is at %q, neither the new %s nor the previous %s: %s", it.Package, v, it.To, it.From, tail([]byte(gs.Output), 400))
		e.j.finish(tx, err, "")
		tx.RollbackFailed = true
		e.setErr(fmt.Errorf("transaction %d: %w", tx.ID, err))
		e.j.end(tx, OutcomeFailed, fmt.Errorf("self-update: %w", err))
		e.done(ctx, tx)
		return
	}
	e.j.finish(tx, nil, "previous agent restored by the guard")
	e.markRolledBack(it, tx.Policy)
	e.j.end(tx, OutcomeRolledBack, fmt.Errorf("self-update: the new agent %s was not healthy in time (it did not start or did not pass its health check); the guard restored %s", it.To, it.From))
	e.done(ctx, tx)
}

// recoverSelf finishes a self-update transaction at the agent's next
// start, from the step its journal last shows.
func (e *Engine) recoverSelf(ctx context.Context, tx *Tx) {
	last := tx.LastStep()
	e.cfg.Log.Info("engine: finishing a self-update after a restart", "tx", tx.ID, "step", last.Name, "status", last.Status)
	switch last.Name {
	case StepSelfInstall:
		if last.Status == "started" {
			e.followSelfInstall(ctx, tx, true)
			return
		}
		e.selfHealth(ctx, tx)
	case StepSelfHealth:
		e.selfHealth(ctx, tx)
	case StepRollback:
		var cause error = errors.New("self-update rolled back")
		if last.Detail != "" {
			cause = errors.New(last.Detail)
		}
		e.followSelfRollback(ctx, tx, cause, true)
	default:
		e.selfRollback(ctx, tx, fmt.Errorf("interrupted at %s (%s)", last.Name, last.Status))
	}
}
