package reboot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/patchring/patchring/daemon/apitypes"
	"github.com/patchring/patchring/daemon/store"
	platformreboot "github.com/patchring/patchring/platform/reboot"
)

// Rebooter restarts the machine; platform/reboot.Rebooter is the real one.
type Rebooter interface {
	Reboot(ctx context.Context, message string) error
}

var _ Rebooter = (*platformreboot.Rebooter)(nil)

// Config configures an Orchestrator.
type Config struct {
	// Store keeps the reboot state (store.BucketReboot). Required.
	Store *store.DB
	// Log receives the orchestrator's log; nil discards it.
	Log *slog.Logger
	// Clock is the source of time; nil is the real clock.
	Clock Clock
	// Rebooter restarts the machine. Required.
	Rebooter Rebooter
	// Lease limits how many headless hosts of a group restart at once; nil
	// is LocalLease.
	Lease Lease
	// Headless says no user session is expected: every restart, automatic
	// or asked for, takes a lease when the rules limit concurrency.
	Headless bool
	// Sessions tells whether a user is at the machine, for RestartNow by
	// a user who is neither root nor in the admin group; nil means nobody
	// is (only root and the admin group restart on demand).
	Sessions Sessions
	// Site names the node's site, the default lease group "site:"+Site.
	Site string
	// Rules returns the rules in force now; it is called often and must
	// not call the Orchestrator. nil means the zero Rules.
	Rules func() Rules
	// BootTime returns when the machine booted; nil is
	// platform/reboot.BootTime.
	BootTime func() (time.Time, error)
	// Recheck is how often the rules are read again when nothing else is
	// due; zero means one minute.
	Recheck time.Duration
	// RetryAfter is the pause after a failed restart attempt; zero means
	// ten minutes.
	RetryAfter time.Duration
	// LeasePoll is how often a headless host asks again for a lease it was
	// refused; zero means one minute.
	LeasePoll time.Duration
	// Hooks returns the reboot hooks of the policy in force; nil: none.
	Hooks func() Hooks
	// HookEnv is added to the hooks' clean environment.
	HookEnv []string
}

// rebootTimeout bounds the Rebooter's call.
const rebootTimeout = 2 * time.Minute

// Orchestrator decides when the machine restarts and does it.
type Orchestrator struct {
	cfg   Config
	log   *slog.Logger
	clock Clock
	lease Lease
	wake  chan struct{}

	mu             sync.Mutex
	rec            record
	running        bool
	restartBy      string // RestartNow asked by, until Run acts on it
	target         time.Time
	targetWhy      string
	remindedFor    time.Time
	countdownFor   time.Time
	countdownSent  int
	leaseRetryAt   time.Time
	waiting        string
	lastStatusKey  string
	pendingRelease string
	lastRestart    *HistoryEntry
	hooks          hookState

	subMu sync.Mutex
	subs  map[chan apitypes.Event]struct{}

	streams streamCount // event streams of the local API
}

// New loads the reboot state. When the state says the machine was being
// restarted and it booted since, the restart is recorded in the history
// and the state cleared; the lease it held is released when Run starts.
func New(cfg Config) (*Orchestrator, error) {
	if cfg.Store == nil {
		return nil, errors.New("reboot: Config.Store is required")
	}
	if cfg.Rebooter == nil {
		return nil, errors.New("reboot: Config.Rebooter is required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	if cfg.Lease == nil {
		cfg.Lease = LocalLease{}
	}
	if cfg.Rules == nil {
		cfg.Rules = func() Rules { return Rules{} }
	}
	if cfg.BootTime == nil {
		cfg.BootTime = platformreboot.BootTime
	}
	if cfg.Recheck <= 0 {
		cfg.Recheck = time.Minute
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = 10 * time.Minute
	}
	if cfg.LeasePoll <= 0 {
		cfg.LeasePoll = time.Minute
	}
	if cfg.Hooks == nil {
		cfg.Hooks = func() Hooks { return Hooks{} }
	}
	o := &Orchestrator{
		cfg:   cfg,
		log:   cfg.Log,
		clock: cfg.Clock,
		lease: cfg.Lease,
		wake:  make(chan struct{}, 1),
		subs:  map[chan apitypes.Event]struct{}{},
	}
	var err error
	if o.rec, err = loadRecord(cfg.Store); err != nil {
		return nil, err
	}
	if o.pendingRelease, err = loadPendingRelease(cfg.Store); err != nil {
		return nil, err
	}
	if o.hooks, err = loadHookState(cfg.Store); err != nil {
		return nil, err
	}
	if err := o.reconcileBoot(); err != nil {
		return nil, err
	}
	if hist, err := o.History(); err == nil && len(hist) > 0 {
		o.lastRestart = &hist[len(hist)-1]
	}
	return o, nil
}

// reconcileBoot finishes a restart that happened while the daemon was
// down, or notes that one it started did not happen.
func (o *Orchestrator) reconcileBoot() error {
	r := &o.rec
	if !r.Required {
		return nil
	}
	boot, bootErr := o.cfg.BootTime()
	switch {
	case r.Rebooting && (bootErr != nil || boot.After(r.RebootingAt)):
		if bootErr != nil {
			o.log.Warn("cannot tell when the machine booted; assuming the restart patchring started happened", "err", bootErr, "restart_at", r.RebootingAt)
			boot = time.Time{}
		}
		return o.finish(r.RebootBy, boot)
	case r.Rebooting:
		o.log.Error("the restart patchring started did not happen; trying again later", "restart_at", r.RebootingAt, "booted", boot)
		if r.LeaseGroup != "" {
			if err := o.cfg.Store.Put(store.BucketReboot, keyPendingRelease, pendingRelease{Group: r.LeaseGroup}); err != nil {
				return fmt.Errorf("note lease to release: %w", err)
			}
			o.pendingRelease = r.LeaseGroup
		}
		r.LastError = fmt.Sprintf("the restart started at %s did not happen (the machine has been up since %s)",
			r.RebootingAt.Format(time.RFC3339), boot.Format(time.RFC3339))
		r.RetryAt = o.clock.Now().Add(o.cfg.RetryAfter)
		r.Rebooting, r.RebootingAt, r.RebootBy, r.LeaseGroup = false, time.Time{}, "", ""
		return saveRecord(o.cfg.Store, r)
	case bootErr == nil && boot.After(r.Since):
		return o.finish(ByOutside, boot)
	}
	return nil
}

func (o *Orchestrator) finish(by string, boot time.Time) error {
	group := o.rec.LeaseGroup
	ours := o.rec.Rebooting
	h, err := finish(o.cfg.Store, &o.rec, by, boot)
	if err != nil {
		return err
	}
	if ours || o.hooks.Held != "" {
		// The post-reboot hook runs when Run starts; a held restart is
		// over once the machine restarted.
		o.hooks.PostDue = o.hooks.PostDue || ours
		o.hooks.Held = ""
		if err := saveHookState(o.cfg.Store, &o.hooks); err != nil {
			return err
		}
	}
	o.log.Info("the machine restarted; the pending restart is done", "by", h.By, "restart_at", h.RestartAt, "booted", h.RebootedAt, "required_since", h.RequiredSince)
	o.rec = record{}
	if group != "" {
		o.pendingRelease = group
	}
	return nil
}

// Name names the service for the daemon's logs.
func (o *Orchestrator) Name() string { return "reboot" }

// RulesChanged makes Run read the rules again now (after a policy update).
func (o *Orchestrator) RulesChanged() { o.poke() }

func (o *Orchestrator) poke() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

func (o *Orchestrator) rules() Rules { return o.cfg.Rules().normalized() }

func (o *Orchestrator) group(r Rules) string {
	if r.Group != "" {
		return r.Group
	}
	return "site:" + o.cfg.Site
}

// SetRequired records that a restart is required since since (zero: now)
// because of reason and the packages installed ("name version"). Calling
// it again while a restart is pending keeps the earlier time and adds the
// packages.
func (o *Orchestrator) SetRequired(ctx context.Context, since time.Time, reason string, packages []string) error {
	return o.SetRequiredUrgent(ctx, since, reason, packages, Urgent{})
}

// Urgent is what an urgent rule of the policy (updates fixing a KEV or
// critical vulnerability) asks of the restart an update needs: a deadline
// counted from the install, shorter than the policy's reboot deadline.
type Urgent struct {
	// Deadline is the rule's reboot_deadline; zero: not urgent.
	Deadline time.Duration
	// Why names the rule and the update, for the status.
	Why string
}

// SetRequiredUrgent is SetRequired for an install an urgent rule
// approved: the restart is due by since+u.Deadline at the latest (the
// earliest such time wins), whatever the policy's deadline and grace;
// deferrals never reach past it.
func (o *Orchestrator) SetRequiredUrgent(ctx context.Context, since time.Time, reason string, packages []string, u Urgent) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.clock.Now()
	if since.IsZero() || since.After(now) {
		since = now
	}
	old := o.rec.clone()
	if !o.rec.Required {
		o.rec = record{Required: true, Since: since, Reason: reason}
		o.target, o.targetWhy = time.Time{}, ""
	} else {
		if since.Before(o.rec.Since) {
			o.rec.Since = since
		}
		if reason != "" {
			o.rec.Reason = reason
		}
	}
	for _, p := range packages {
		if !slices.Contains(o.rec.Packages, p) {
			o.rec.Packages = append(o.rec.Packages, p)
		}
	}
	if u.Deadline > 0 {
		if by := since.Add(u.Deadline); o.rec.UrgentBy.IsZero() || by.Before(o.rec.UrgentBy) {
			o.rec.UrgentBy, o.rec.UrgentWhy = by, u.Why
		}
	}
	if equalRecords(&old, &o.rec) {
		return nil
	}
	if err := saveRecord(o.cfg.Store, &o.rec); err != nil {
		o.rec = old
		return err
	}
	if !old.Required {
		o.log.Info("a restart is required", "since", since, "reason", reason, "packages", packages)
	}
	o.syncLocked(now, o.rules())
	o.poke()
	return nil
}

func equalRecords(a, b *record) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// Defer postpones the planned automatic restart (now, if none is planned
// or it is past) by the offered choice named choice (its key, or a
// duration equal to one offered) on behalf of caller. It returns a
// *DeniedError when the policy does not allow it: a choice it does not
// offer, no deferrals left, the deadline reached or the restart already
// due at the deadline. A deferral never reaches past the effective
// deadline.
func (o *Orchestrator) Defer(ctx context.Context, caller, choice string) (apitypes.RebootStatus, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.clock.Now()
	rules := o.rules()
	if err := o.pendingLocked(); err != nil {
		return apitypes.RebootStatus{}, err
	}
	if o.rec.RefusedBy != "" {
		return apitypes.RebootStatus{}, ErrRefused
	}
	c, ok := rules.choice(choice)
	if !ok {
		return apitypes.RebootStatus{}, denied("deferral %q is not one the policy offers (it offers: %s)", choice, rules.choiceKeys())
	}
	switch {
	case rules.MaxDeferrals == 0:
		return apitypes.RebootStatus{}, denied("the policy does not allow deferring this restart")
	case o.rec.DeferralsUsed >= rules.MaxDeferrals:
		return apitypes.RebootStatus{}, denied("no deferrals left: the policy allows %d and all were used", rules.MaxDeferrals)
	}
	dl, hasDL := rules.deadline(&o.rec)
	if hasDL && !now.Before(dl) {
		return apitypes.RebootStatus{}, denied("the deadline (%s) has passed; the restart can no longer be deferred", dl.Format(time.RFC3339))
	}
	o.refreshTargetLocked(now, rules)
	until := o.deferBaseLocked(now).Add(c.Duration)
	if hasDL && until.After(dl) {
		until = dl
		if o.target.Equal(dl) {
			return apitypes.RebootStatus{}, denied("the restart is due at the deadline (%s); a deferral cannot postpone it", dl.Format(time.RFC3339))
		}
	}
	old := o.rec.clone()
	o.rec.DeferralsUsed++
	o.rec.DeferredUntil, o.rec.DeferredBy = until, caller
	if err := saveRecord(o.cfg.Store, &o.rec); err != nil {
		o.rec = old
		return apitypes.RebootStatus{}, err
	}
	o.log.Info("restart deferred", "by", caller, "choice", c.key(), "until", until, "deferrals_used", o.rec.DeferralsUsed)
	o.refreshTargetLocked(now, rules)
	if !o.target.IsZero() && !now.Before(o.target.Add(-rules.NotifyAhead)) {
		o.remindedFor = o.target // the user just chose this time: no reminder for it
	}
	o.syncLocked(now, rules)
	o.poke()
	return o.statusLocked(now, rules), nil
}

// deferBaseLocked is what a deferral postpones: the planned automatic
// restart, or now when it is past or there is none.
func (o *Orchestrator) deferBaseLocked(now time.Time) time.Time {
	return later(now, o.target)
}

// pendingLocked says why no restart can be acted on, or nil.
func (o *Orchestrator) pendingLocked() error {
	switch {
	case !o.rec.Required:
		return ErrNoRestartPending
	case o.rec.Rebooting || o.restartBy != "":
		return ErrRestarting
	}
	return nil
}

// Refuse declines the pending restart on behalf of caller where the
// policy allows it: no automatic restart happens before the deadline, and
// the status names who refused until the machine restarts.
func (o *Orchestrator) Refuse(ctx context.Context, caller string) (apitypes.RebootStatus, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.clock.Now()
	rules := o.rules()
	if err := o.pendingLocked(); err != nil {
		return apitypes.RebootStatus{}, err
	}
	if !rules.AllowRefuse {
		return apitypes.RebootStatus{}, denied("the policy does not let users decline this restart")
	}
	if dl, ok := rules.deadline(&o.rec); ok && !now.Before(dl) {
		return apitypes.RebootStatus{}, denied("the deadline (%s) has passed; the restart can no longer be declined", dl.Format(time.RFC3339))
	}
	if o.rec.RefusedBy == "" {
		old := o.rec.clone()
		o.rec.RefusedBy, o.rec.RefusedAt = caller, now
		if err := saveRecord(o.cfg.Store, &o.rec); err != nil {
			o.rec = old
			return apitypes.RebootStatus{}, err
		}
		o.log.Info("reboot refused by user", "by", caller)
		o.syncLocked(now, rules)
		o.poke()
	}
	return o.statusLocked(now, rules), nil
}

// AuthorizeRestart says whether the local user uid (admin: root or in the
// admin group) may restart the machine on demand: root and the admin group
// may; another user only with an active local session (a seat or the
// console, not a remote login) and where the policy lets users restart.
// It returns a *DeniedError with the reason otherwise.
func (o *Orchestrator) AuthorizeRestart(ctx context.Context, uid int, admin bool) error {
	if admin {
		return nil
	}
	if o.rules().AdminRestartOnly {
		return denied("the policy lets only root and the admin group restart this machine (reboot.user_restart: none)")
	}
	if o.cfg.Sessions == nil {
		return denied("uid %d may not restart this machine: only root, the admin group or a user logged in at the machine may, and this agent knows of no local sessions", uid)
	}
	ok, where, err := o.cfg.Sessions.LocalSession(ctx, uid)
	if err != nil {
		o.log.Warn("cannot tell whether a user is at the machine; refusing the restart", "uid", uid, "err", err)
		return denied("uid %d may not restart this machine: cannot tell whether it is logged in at the machine (%v)", uid, err)
	}
	if !ok {
		return denied("uid %d may not restart this machine: it has no active local session (a seat or the console; remote logins do not count); ask root or the admin group", uid)
	}
	o.log.Debug("restart allowed to the user at the machine", "uid", uid, "session", where)
	return nil
}

// RestartNow asks Run to restart the machine at once on behalf of caller,
// who must have passed AuthorizeRestart. It needs a pending restart; it
// returns before the restart starts. On a headless host that shares
// restart slots it still waits for a free slot.
func (o *Orchestrator) RestartNow(ctx context.Context, caller string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.pendingLocked(); err != nil {
		return err
	}
	if !o.running {
		return ErrNotRunning
	}
	o.restartBy = caller
	o.log.Info("restart requested", "by", caller)
	o.poke()
	return nil
}

// History returns the recorded restarts, oldest first.
func (o *Orchestrator) History() ([]HistoryEntry, error) {
	var out []HistoryEntry
	err := o.cfg.Store.ForEach(store.BucketReboot, func(k, v []byte) error {
		if len(k) <= len(historyPrefix) || string(k[:len(historyPrefix)]) != historyPrefix {
			return nil
		}
		var h HistoryEntry
		if err := json.Unmarshal(v, &h); err != nil {
			return fmt.Errorf("reboot history %s: %w", k, err)
		}
		out = append(out, h)
		return nil
	})
	return out, err
}

// Run plans and carries out the restarts until ctx is done: reminders and
// countdown events before an automatic restart, the restart itself through
// the Rebooter (once), the lease for headless hosts. A cancelled context
// is a clean exit.
func (o *Orchestrator) Run(ctx context.Context) error {
	o.mu.Lock()
	if o.running {
		o.mu.Unlock()
		return errors.New("reboot: Run is already running")
	}
	o.running = true
	o.mu.Unlock()
	defer func() {
		o.mu.Lock()
		o.running, o.restartBy = false, ""
		o.mu.Unlock()
	}()
	o.postReboot(ctx)
	for ctx.Err() == nil {
		o.releasePending(ctx)
		act, wait := o.step()
		if act != nil {
			o.restart(ctx, *act)
			continue
		}
		select {
		case <-ctx.Done():
		case <-o.wake:
		case <-o.clock.After(wait):
		}
	}
	return nil
}

// releasePending gives back the lease held over the last restart.
func (o *Orchestrator) releasePending(ctx context.Context) {
	o.mu.Lock()
	group := o.pendingRelease
	o.mu.Unlock()
	if group == "" {
		return
	}
	if err := o.lease.Release(ctx, group); err != nil {
		o.log.Warn("release restart lease; trying again later", "group", group, "err", err)
		return
	}
	if err := clearPendingRelease(o.cfg.Store); err != nil {
		o.log.Warn("released restart lease but could not note it", "group", group, "err", err)
	}
	o.mu.Lock()
	if o.pendingRelease == group {
		o.pendingRelease = ""
	}
	o.mu.Unlock()
	o.log.Info("released the restart lease after coming back", "group", group)
}

type action struct {
	by     string
	manual bool // RestartNow
}

// step takes the decisions due now: it returns a restart to carry out, or
// how long to wait for the next decision.
func (o *Orchestrator) step() (*action, time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.clock.Now()
	rules := o.rules()
	wait := o.cfg.Recheck
	if o.pendingRelease != "" {
		wait = min(wait, o.cfg.LeasePoll)
	}
	switch {
	case !o.rec.Required:
		o.target, o.targetWhy, o.restartBy, o.waiting = time.Time{}, "", "", ""
		o.syncLocked(now, rules)
		return nil, wait
	case o.rec.Rebooting:
		o.target, o.targetWhy = time.Time{}, ""
		return nil, wait
	case o.restartBy != "" && now.Before(o.leaseRetryAt):
		return nil, min(wait, o.leaseRetryAt.Sub(now))
	case o.restartBy != "":
		return &action{by: "user " + o.restartBy, manual: true}, 0
	}
	o.refreshTargetLocked(now, rules)
	o.announceLocked(now, rules)
	o.syncLocked(now, rules)
	if o.target.IsZero() {
		return nil, wait
	}
	if !now.Before(o.target) && !now.Before(o.rec.RetryAt) && !now.Before(o.leaseRetryAt) {
		return &action{by: o.targetWhy}, 0
	}
	next := []time.Time{o.target, o.rec.RetryAt, o.leaseRetryAt, o.target.Add(-rules.lead())}
	if rules.NotifyAhead > 0 {
		next = append(next, o.target.Add(-rules.NotifyAhead))
	}
	for _, c := range rules.Countdown {
		next = append(next, o.target.Add(-c))
	}
	for _, t := range next {
		if t.After(now) {
			wait = min(wait, t.Sub(now))
		}
	}
	return nil, wait
}

// refreshTargetLocked updates the planned automatic restart. An automatic
// restart is moved later freely; it is moved earlier only as far as the
// longest notice from now allows, so a restart the user has not been told
// about never comes sooner than that.
func (o *Orchestrator) refreshTargetLocked(now time.Time, rules Rules) {
	at, why, ok := rules.plan(&o.rec, now)
	if !ok {
		o.target, o.targetWhy = time.Time{}, ""
		return
	}
	floor := now.Add(rules.lead())
	fromFloor := func() (time.Time, string) {
		if a, w, ok := rules.plan(&o.rec, floor); ok {
			return a, w
		}
		return at, why
	}
	switch {
	case o.target.IsZero():
		if at.Before(floor) {
			at, why = fromFloor()
		}
		o.target, o.targetWhy = at, why
	case at.After(o.target) && at.After(now):
		o.target, o.targetWhy = at, why // postponed
	case at.Before(o.target):
		if at.Before(floor) {
			at, why = fromFloor()
		}
		if at.Before(o.target) {
			o.target, o.targetWhy = at, why
		}
	}
}

// announceLocked sends the reminder and the countdown events that are due.
func (o *Orchestrator) announceLocked(now time.Time, rules Rules) {
	if o.target.IsZero() || !now.Before(o.target) {
		return
	}
	if rules.NotifyAhead > 0 && !o.remindedFor.Equal(o.target) && !now.Before(o.target.Add(-rules.NotifyAhead)) {
		o.remindedFor = o.target
		o.emitLocked(apitypes.EventRebootReminder, now, rules)
	}
	if !o.countdownFor.Equal(o.target) {
		o.countdownFor, o.countdownSent = o.target, 0
	}
	last := -1
	for i, c := range rules.Countdown {
		if !now.Before(o.target.Add(-c)) {
			last = i
		}
	}
	if last >= o.countdownSent {
		o.countdownSent = last + 1
		o.emitLocked(apitypes.EventRebootCountdown, now, rules)
	}
}

// restart carries out act: the lease (headless), the persisted
// "rebooting" state, the event, then the Rebooter.
func (o *Orchestrator) restart(ctx context.Context, act action) {
	o.mu.Lock()
	rules := o.rules()
	o.mu.Unlock()
	group := o.group(rules)
	held := ""
	if o.cfg.Headless && rules.SiteConcurrency > 0 {
		ok, err := o.lease.TryAcquire(ctx, group, rules.SiteConcurrency, rules.LeaseTTL)
		switch {
		case err != nil:
			o.log.Warn("ask for a restart lease", "group", group, "err", err)
		case ok:
			held = group
		}
		if held == "" { // a user's request waits for a slot too
			o.mu.Lock()
			now := o.clock.Now()
			o.leaseRetryAt = now.Add(o.cfg.LeasePoll)
			o.waiting = fmt.Sprintf("waiting for a free restart slot of %s (at most %d at once)", group, rules.SiteConcurrency)
			if act.manual {
				o.waiting += "; restart asked by " + act.by
			}
			o.syncLocked(now, rules)
			o.mu.Unlock()
			return
		}
	}
	release := func() {
		if held == "" {
			return
		}
		if err := o.lease.Release(ctx, held); err != nil {
			o.log.Warn("release restart lease", "group", held, "err", err)
		}
	}

	o.mu.Lock()
	now := o.clock.Now()
	valid := o.rec.Required && !o.rec.Rebooting
	if act.manual {
		valid = valid && o.restartBy != ""
	} else {
		valid = valid && o.restartBy == "" && !o.target.IsZero() && !now.Before(o.target)
	}
	if !valid { // the user acted in between
		o.mu.Unlock()
		release()
		return
	}
	o.mu.Unlock()

	// The pre-reboot hook (drain, stop a database) runs under the lease;
	// its failure holds the restart until the retry.
	if err := o.preReboot(ctx); err != nil {
		if ctx.Err() != nil {
			release()
			return
		}
		o.mu.Lock()
		now := o.clock.Now()
		o.holdLocked(err)
		o.rec.LastError, o.rec.RetryAt = "held: "+err.Error(), now.Add(o.cfg.RetryAfter)
		if act.manual {
			o.restartBy = ""
		}
		if serr := saveRecord(o.cfg.Store, &o.rec); serr != nil {
			o.log.Error("cannot record the held restart", "err", serr)
		}
		o.syncLocked(now, rules)
		o.mu.Unlock()
		o.log.Warn("restart held by the pre-reboot hook; trying again later", "err", err, "retry_in", o.cfg.RetryAfter)
		release()
		return
	}

	o.mu.Lock()
	now = o.clock.Now()
	if !o.rec.Required || o.rec.Rebooting || (act.manual && o.restartBy == "") {
		o.mu.Unlock()
		release()
		return
	}
	old := o.rec.clone()
	o.rec.Rebooting, o.rec.RebootingAt, o.rec.RebootBy, o.rec.LeaseGroup = true, now, act.by, held
	o.rec.LastError, o.rec.RetryAt = "", time.Time{}
	if err := saveRecord(o.cfg.Store, &o.rec); err != nil {
		o.rec = old
		o.restartBy = ""
		o.leaseRetryAt = now.Add(o.cfg.RetryAfter)
		o.mu.Unlock()
		o.log.Error("cannot record the restart; not restarting", "err", err)
		release()
		return
	}
	o.restartBy, o.waiting, o.leaseRetryAt = "", "", time.Time{}
	o.target, o.targetWhy = time.Time{}, ""
	o.emitLocked(apitypes.EventRebooting, now, rules)
	msg := "patchring: restarting to finish installing updates"
	if o.rec.Reason != "" {
		msg += ": " + o.rec.Reason
	}
	o.mu.Unlock()

	o.log.Info("restarting the machine", "by", act.by, "lease", held)
	rctx, cancel := context.WithTimeout(ctx, rebootTimeout)
	err := o.cfg.Rebooter.Reboot(rctx, msg)
	cancel()
	if err == nil {
		return
	}
	if ctx.Err() != nil {
		o.log.Warn("the daemon is stopping while the restart command ran; keeping the restart recorded", "err", err)
		return
	}
	o.log.Error("restart failed; trying again later", "err", err, "retry_in", o.cfg.RetryAfter)
	o.mu.Lock()
	now = o.clock.Now()
	o.rec.Rebooting, o.rec.RebootingAt, o.rec.RebootBy, o.rec.LeaseGroup = false, time.Time{}, "", ""
	o.rec.LastError, o.rec.RetryAt = err.Error(), now.Add(o.cfg.RetryAfter)
	if err := saveRecord(o.cfg.Store, &o.rec); err != nil {
		o.log.Error("cannot record the failed restart", "err", err)
	}
	o.syncLocked(now, rules)
	o.mu.Unlock()
	release()
}

// RebootStatus returns the reboot status as the local API shows it.
func (o *Orchestrator) RebootStatus() apitypes.RebootStatus {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.clock.Now()
	rules := o.rules()
	if o.rec.Required && !o.rec.Rebooting {
		o.refreshTargetLocked(now, rules)
	}
	return o.statusLocked(now, rules)
}

func (o *Orchestrator) statusLocked(now time.Time, rules Rules) apitypes.RebootStatus {
	r := &o.rec
	st := apitypes.RebootStatus{State: apitypes.RebootStateUpToDate}
	st.Unhealthy = o.hooks.Unhealthy
	st.Hooks = slices.Clone(o.hooks.Runs)
	if !r.Required {
		return st
	}
	st.Required, st.Since, st.Reason, st.Packages = true, r.Since, r.Reason, slices.Clone(r.Packages)
	dl, hasDL := rules.deadline(r)
	if rules.Deadline > 0 {
		st.Deadline = r.Since.Add(rules.Deadline)
	}
	if !r.UrgentBy.IsZero() {
		st.UrgentDeadline, st.Urgent = r.UrgentBy, r.UrgentWhy
	}
	if hasDL {
		st.EffectiveDeadline = dl
	}
	st.DeferralsUsed = r.DeferralsUsed
	st.DeferralsLeft = max(0, rules.MaxDeferrals-r.DeferralsUsed)
	for _, c := range rules.DeferChoices {
		d := c.Duration
		if hasDL {
			d = max(0, min(d, dl.Sub(o.deferBaseLocked(now))))
		}
		st.Choices = append(st.Choices, apitypes.DeferChoice{Label: c.label(), Duration: c.key(), Seconds: int64(d / time.Second)})
	}
	st.CanRefuse = rules.AllowRefuse && !r.Rebooting && (!hasDL || now.Before(dl))
	st.Refused, st.RefusedBy, st.RefusedAt = r.RefusedBy != "", r.RefusedBy, r.RefusedAt
	st.DeferredUntil = r.DeferredUntil
	st.NextAutomatic = o.target
	st.ActiveHours = rules.ActiveHours.String()
	st.Waiting, st.LastError = o.waiting, r.LastError
	st.Held = o.hooks.Held
	switch {
	case r.Rebooting:
		st.State = apitypes.RebootStateRebooting
		st.NextAutomatic = time.Time{}
	case !o.target.IsZero() && !now.Before(o.target.Add(-rules.lead())):
		st.State = apitypes.RebootStateDeadlineNear
	default:
		st.State = apitypes.RebootStateRestartRequired
	}
	return st
}

// statusKey identifies a status for change detection: the seconds of the
// choices shrink near the deadline without being news.
func statusKey(st apitypes.RebootStatus) string {
	st.Choices = slices.Clone(st.Choices)
	for i := range st.Choices {
		st.Choices[i].Seconds = 0
	}
	b, _ := json.Marshal(st)
	return string(b)
}

// syncLocked sends a status event when the status changed.
func (o *Orchestrator) syncLocked(now time.Time, rules Rules) {
	if o.rec.Required && !o.rec.Rebooting {
		o.refreshTargetLocked(now, rules)
	}
	if statusKey(o.statusLocked(now, rules)) != o.lastStatusKey {
		o.emitLocked(apitypes.EventRebootStatus, now, rules)
	}
}

func (o *Orchestrator) emitLocked(typ string, now time.Time, rules Rules) {
	st := o.statusLocked(now, rules)
	o.lastStatusKey = statusKey(st)
	o.broadcast(apitypes.Event{Type: typ, Reboot: &st, Time: now})
}

// subscriberBuffer is how many events a slow subscriber may lag behind;
// beyond it the oldest are dropped (each event carries the full status).
const subscriberBuffer = 32

// Subscribe returns a channel of the orchestrator's events and a function
// that ends the subscription and closes the channel. Sending never blocks:
// a subscriber that falls behind loses its oldest events.
func (o *Orchestrator) Subscribe() (<-chan apitypes.Event, func()) {
	ch := make(chan apitypes.Event, subscriberBuffer)
	o.subMu.Lock()
	o.subs[ch] = struct{}{}
	o.subMu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			o.subMu.Lock()
			delete(o.subs, ch)
			close(ch)
			o.subMu.Unlock()
		})
	}
}

func (o *Orchestrator) broadcast(ev apitypes.Event) {
	o.subMu.Lock()
	defer o.subMu.Unlock()
	for ch := range o.subs {
		e := ev
		if ev.Reboot != nil {
			st := *ev.Reboot
			st.Packages, st.Choices = slices.Clone(st.Packages), slices.Clone(st.Choices)
			e.Reboot = &st
		}
		select {
		case ch <- e:
			continue
		default:
		}
		select { // full: drop the oldest
		case <-ch:
		default:
		}
		select {
		case ch <- e:
		default:
		}
	}
}

// Status is the reboot section of `patchring status`.
func (o *Orchestrator) Status() apitypes.SubsystemStatus {
	st := o.RebootStatus()
	o.mu.Lock()
	last := o.lastRestart
	o.mu.Unlock()
	s := apitypes.SubsystemStatus{Name: "reboot", State: "ok", Details: map[string]string{}}
	when := func(t time.Time) string { return t.Format(time.RFC3339) }
	switch {
	case !st.Required:
		s.Summary = "no restart needed"
		if last != nil {
			s.Summary += fmt.Sprintf("; last restart %s (%s)", when(last.RebootedAt), last.By)
			s.Details["last_restart"] = when(last.RebootedAt)
			s.Details["last_restart_by"] = last.By
		}
		if st.Unhealthy != "" {
			s.State = "unhealthy"
			s.Summary += "; unhealthy: " + st.Unhealthy
			s.Details["unhealthy"] = st.Unhealthy
		}
		return s
	case st.State == apitypes.RebootStateRebooting:
		s.State = "rebooting"
		s.Summary = "restarting the machine"
	case st.Refused:
		s.State = "refused"
		s.Summary = "reboot refused by user " + st.RefusedBy
		if !st.EffectiveDeadline.IsZero() {
			s.Summary += "; it happens at the deadline " + when(st.EffectiveDeadline)
		}
	default:
		s.State = "pending"
		s.Summary = "restart required since " + when(st.Since)
		if !st.NextAutomatic.IsZero() {
			s.Summary += ", automatic restart at " + when(st.NextAutomatic)
		}
		if st.DeferralsUsed > 0 {
			s.Summary += fmt.Sprintf(", deferred %d times", st.DeferralsUsed)
		}
	}
	if st.LastError != "" {
		s.State = "error"
		s.Summary += "; last attempt failed: " + st.LastError
	}
	if st.Waiting != "" {
		s.Summary += "; " + st.Waiting
	}
	s.Details["required_since"] = when(st.Since)
	if st.Reason != "" {
		s.Details["reason"] = st.Reason
	}
	if !st.EffectiveDeadline.IsZero() {
		s.Details["effective_deadline"] = when(st.EffectiveDeadline)
	}
	if !st.NextAutomatic.IsZero() {
		s.Details["next_automatic"] = when(st.NextAutomatic)
	}
	s.Details["deferrals"] = fmt.Sprintf("%d used, %d left", st.DeferralsUsed, st.DeferralsLeft)
	if st.Refused {
		s.Details["refused_by"] = st.RefusedBy
		s.Details["refused_at"] = when(st.RefusedAt)
	}
	if st.Held != "" {
		s.Details["held"] = st.Held
	}
	if st.Unhealthy != "" {
		s.State = "unhealthy"
		s.Summary += "; unhealthy: " + st.Unhealthy
		s.Details["unhealthy"] = st.Unhealthy
	}
	return s
}
