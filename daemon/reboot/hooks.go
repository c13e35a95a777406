package reboot

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/patchring/patchring/daemon/apitypes"
	"github.com/patchring/patchring/daemon/store"
	"github.com/patchring/patchring/internal/hookrun"
)

// Hook is a command the signed policy names to run around a reboot.
type Hook struct {
	Command   []string
	Timeout   time.Duration
	MaxOutput int // bytes of output kept
}

// Hooks are the reboot hooks in force: PreReboot runs before every restart
// patchring starts (its failure holds the restart: retried after
// Config.RetryAfter), PostReboot once the machine is back from one (its
// failure marks the node unhealthy until a later run passes).
type Hooks struct {
	PreReboot  *Hook
	PostReboot *Hook
}

// Hook names in reports.
const (
	HookPreReboot  = "pre_reboot"
	HookPostReboot = "post_reboot"
)

// maxHookRuns is how many hook runs the state keeps.
const maxHookRuns = 20

// hookState is the persisted state of the hooks (store.BucketReboot).
type hookState struct {
	// PostDue is set when the machine restarted by patchring's hand and
	// the post-reboot hook has not run since.
	PostDue bool `json:"post_due,omitempty"`
	// Unhealthy says why the node is unhealthy: the last post-reboot hook
	// failed.
	Unhealthy string `json:"unhealthy,omitempty"`
	// Held says why the last restart attempt was held by the pre-reboot
	// hook; cleared when a restart starts or is no longer required.
	Held string `json:"held,omitempty"`
	// Runs are the latest hook runs, oldest first.
	Runs []apitypes.HookRun `json:"runs,omitempty"`
}

var keyHooks = []byte("hooks")

func loadHookState(db *store.DB) (hookState, error) {
	var h hookState
	if err := db.Get(store.BucketReboot, keyHooks, &h); err != nil && !errors.Is(err, store.ErrNotFound) {
		return hookState{}, fmt.Errorf("load reboot hook state: %w", err)
	}
	return h, nil
}

func saveHookState(db *store.DB, h *hookState) error {
	if err := db.Put(store.BucketReboot, keyHooks, h); err != nil {
		return fmt.Errorf("save reboot hook state: %w", err)
	}
	return nil
}

// runHook runs h and records the run; it returns the failure, if any.
func (o *Orchestrator) runHook(ctx context.Context, name string, h *Hook) error {
	limit := h.MaxOutput
	if limit <= 0 {
		limit = 16 << 10
	}
	timeout := h.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	at := o.clock.Now()
	o.log.Info("running reboot hook", "hook", name, "command", h.Command, "timeout", timeout)
	res := hookrun.Run(ctx, h.Command, o.cfg.HookEnv, timeout, limit)
	run := apitypes.HookRun{Hook: name, Command: strings.Join(h.Command, " "), At: at, OK: res.Err == nil,
		Output: res.Output, DroppedBytes: res.Dropped, Seconds: res.Took.Seconds()}
	var err error
	if res.Err != nil {
		run.Error = res.Err.Error()
		err = fmt.Errorf("%s hook %s failed: %w", name, run.Command, res.Err)
		o.log.Warn("reboot hook failed", "hook", name, "err", res.Err, "output", res.Output)
	}
	o.mu.Lock()
	o.hooks.Runs = append(o.hooks.Runs, run)
	if n := len(o.hooks.Runs); n > maxHookRuns {
		o.hooks.Runs = o.hooks.Runs[n-maxHookRuns:]
	}
	o.mu.Unlock()
	return err
}

// preReboot runs the pre-reboot hook, if any; an error holds the restart,
// and the caller records the hold (holdLocked) together with the restart's
// own error, so no status is read with one and not the other.
func (o *Orchestrator) preReboot(ctx context.Context) error {
	h := o.cfg.Hooks().PreReboot
	if h == nil {
		return nil
	}
	err := o.runHook(ctx, HookPreReboot, h)
	if err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.hooks.Held = ""
	if serr := saveHookState(o.cfg.Store, &o.hooks); serr != nil {
		o.log.Error("record the pre-reboot hook's run", "err", serr)
	}
	return nil
}

// holdLocked records that the pre-reboot hook held the restart.
func (o *Orchestrator) holdLocked(err error) {
	o.hooks.Held = err.Error()
	if serr := saveHookState(o.cfg.Store, &o.hooks); serr != nil {
		o.log.Error("record the pre-reboot hook's run", "err", serr)
	}
}

// postReboot runs the post-reboot hook once after a restart patchring
// started, and marks the node unhealthy when it fails.
func (o *Orchestrator) postReboot(ctx context.Context) {
	o.mu.Lock()
	due := o.hooks.PostDue
	o.mu.Unlock()
	if !due {
		return
	}
	h := o.cfg.Hooks().PostReboot
	var err error
	if h != nil {
		err = o.runHook(ctx, HookPostReboot, h)
		if ctx.Err() != nil {
			return // stopping: run it at the next start
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.hooks.PostDue = false
	switch {
	case err != nil:
		o.hooks.Unhealthy = err.Error()
	case h != nil:
		o.hooks.Unhealthy = ""
	}
	if serr := saveHookState(o.cfg.Store, &o.hooks); serr != nil {
		o.log.Error("record the post-reboot hook's run", "err", serr)
	}
	o.syncLocked(o.clock.Now(), o.rules())
}
