// Package engine is the agent's update engine: it discovers the updates
// that apply to the node, asks the signed policy what to do with each,
// and carries out installs and rollbacks as journaled transactions that
// survive a crash at any step.
package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/patchring/patchring/daemon/apitypes"
	"github.com/patchring/patchring/daemon/store"
	"github.com/patchring/patchring/policy"
)

// Candidate is an update the package manager offers, with the payload
// hash it verified from the vendor's signed indices.
type Candidate struct {
	Package   string
	Arch      string
	Installed string // "" when not installed
	Version   string
	Security  bool
	// Severity is the highest severity of the security advisories the
	// version fixes, in the policy's words (low, medium, high, critical);
	// "" when unknown.
	Severity string
	// Advisories are the IDs of the advisories it fixes (dnf's
	// updateinfo), when the repository says.
	Advisories []string
	Archive    string // e.g. bookworm-security, or the dnf repository

	URI    string
	Size   int64
	SHA256 string
	// Depends names the packages the version depends on (filled by
	// Packages.Payloads only).
	Depends []string
}

// Change is one package the package manager's solver would change: From "" when the
// package is new, To "" when it would be removed.
type Change struct{ Package, Arch, From, To string }

// PkgVersion names an exact package version.
type PkgVersion struct{ Package, Version string }

// Packages is the native package manager as the engine uses it. The apt
// backend implements it on Debian (AptPackages), the dnf backend on
// RPM-based systems (DnfPackages); tests use the same backends in
// sandboxed roots. Versions are in the manager's own scheme
// (CompareVersions orders them).
type Packages interface {
	// Source is the policy's name for the package manager's updates:
	// policy.SourceApt or policy.SourceDnf.
	Source() string
	// CompareVersions orders two versions: <0, 0, >0.
	CompareVersions(a, b string) (int, error)

	Refresh(ctx context.Context) error
	Upgradable(ctx context.Context) ([]Candidate, error)
	// Candidate returns the payload of an exact version, if a repository
	// still offers it.
	Candidate(ctx context.Context, pkg, version string) (Candidate, error)
	// Place puts a verified payload where the package manager installs it
	// from without downloading.
	Place(ctx context.Context, r io.Reader, c Candidate) error
	Install(ctx context.Context, pkgs []PkgVersion, allowDowngrades bool) error
	InstalledVersion(ctx context.Context, pkg string) (string, error)
	ConfigurePending(ctx context.Context) error
	Audit(ctx context.Context) ([]string, error)
	WaitLock(ctx context.Context, timeout time.Duration) error
	FreeSpace(ctx context.Context) (uint64, error)
	RebootRequired() (bool, []string)
	// Files lists the paths of the files installed packages ship (none
	// for a package that is not installed).
	Files(ctx context.Context, pkgs ...string) ([]string, error)

	// Catalog payloads, which no repository carries:
	// PlaceFile checks that the verified payload is pkg at version and
	// puts it where InstallFiles installs it from.
	PlaceFile(ctx context.Context, r io.Reader, pkg, version string) error
	// InstallFiles installs placed payload files of exact versions; their
	// dependencies come from the repositories.
	InstallFiles(ctx context.Context, pkgs []PkgVersion, allowDowngrades bool) error
	// Remove removes packages (a new catalog package rolled back).
	Remove(ctx context.Context, pkgs ...string) error

	// Whole transactions:
	// Simulate returns every change the solver makes to install pkgs
	// and remove the named packages.
	Simulate(ctx context.Context, pkgs []PkgVersion, remove []string) ([]Change, error)
	// Payloads returns the verified payload (and dependencies) of each
	// exact version in pkgs, which a configured source must offer, and,
	// from the same query, the verified payloads of those versions in
	// previous (installed versions a rollback would reinstall) that a
	// source still offers.
	Payloads(ctx context.Context, pkgs, previous []PkgVersion) (cur, prev []Candidate, err error)
	// Apply installs pkgs and removes remove in one run; it removes
	// nothing else. With noDownload every payload must be placed.
	Apply(ctx context.Context, pkgs []PkgVersion, remove []string, allowDowngrades, noDownload bool) error
	// Installed maps every installed package to its version.
	Installed(ctx context.Context) (map[string]string, error)
}

// Content fetches payloads and keeps verified copies.
type Content interface {
	// Fetch makes sure the store holds the payload, verified against its
	// hash.
	Fetch(ctx context.Context, p Payload) error
	Open(sha256 string) (io.ReadCloser, error)
	// Keep pins a payload until the given time (rollback window).
	Keep(sha256, reason string, until time.Time) error
}

// Config wires the engine.
type Config struct {
	// Vulns returns the worst severity ("" unknown) of the vulnerabilities
	// installing version of package fixes, and whether one of them is in
	// CISA's KEV catalog (daemon/vulns); nil without advisories.
	Vulns    func(pkg, version string) (severity string, kev bool)
	DB       *store.DB
	Log      *slog.Logger
	Packages Packages
	Content  Content
	Now      func() time.Time
	// Policy returns the verified policy and its version; nil when none.
	Policy func() (*policy.Policy, string)
	// Facts returns the node facts for ring selection.
	Facts func() policy.NodeFacts
	// Fleet returns what the fleet knows of each ring's results (gates).
	Fleet func() policy.FleetView
	// FirstSeen returns when the fleet first saw an update (the console's
	// signed fleet status), if known: a deferral starts at the earlier of
	// that and this node's own first sighting, so a node that was off
	// when the update appeared does not start late. Nil: this node's own.
	FirstSeen func(policy.UpdateKey) (time.Time, bool)
	// Catalog is the signed third-party catalog; nil offers apt updates
	// only.
	Catalog Catalog
	// Interval is how often to re-plan. Zero: 1 minute.
	Interval time.Duration
	// RefreshEvery is how often planning refreshes the package indices
	// (apt-get update). Zero: every plan.
	RefreshEvery time.Duration
	// LockTimeout is how long to wait for the package manager's lock.
	LockTimeout time.Duration
	// MinFree is the free space an install needs besides its payloads.
	MinFree uint64
	// RollbackWindow is how long previous versions stay in the content
	// store. Zero: 14 days.
	RollbackWindow time.Duration
	// HealthEnv is added to the health check's environment.
	HealthEnv []string
	// OnReboot is told when an install leaves the machine needing a
	// reboot.
	OnReboot func(since time.Time, reason string, pkgs []string)
	// OnUrgentReboot, when set, is told instead of OnReboot when the
	// install that needs the reboot was approved by an urgent rule with a
	// reboot_deadline: deadline is that deadline, counted from since, and
	// rule names the rule and the update.
	OnUrgentReboot func(since time.Time, reason string, pkgs []string, deadline time.Duration, rule string)
	// OnResult is told of every finished transaction (fleet stats).
	OnResult func(tx *Tx)
	// MaxBatch is the most packages one transaction changes; a larger
	// batch is split along dependency lines (a package and what it depends
	// on in the batch stay together, however many they are). Zero: 200.
	MaxBatch int

	// SelfPackage is the agent's own package (e.g. "patchring"); "" treats
	// it like any other. Its updates come only from the catalog and are
	// installed detached (see selfupdate.go), with Detacher, SelfHealth
	// and SelfRestart.
	SelfPackage string
	// SelfVersion is the version of the running agent's package.
	SelfVersion string
	// Detacher runs the self-install outside the agent's process.
	Detacher Detacher
	// SelfHealth reports whether the running agent is healthy: service
	// running, local API answering, gossip rejoined, policy verified.
	SelfHealth func(ctx context.Context) error
	// SelfRestart asks for the agent to be restarted (its own package was
	// installed or restored and the package did not restart it).
	SelfRestart func(reason string)
	// SelfGuardAfter is how long the detached install's guard waits for
	// the new agent to be healthy before it restores the previous package
	// itself. Zero: the policy's self-update health deadline plus 2 min.
	SelfGuardAfter time.Duration
	// SelfPoll is how often a self-update polls its detached job and the
	// health check. Zero: 1 second.
	SelfPoll time.Duration
	// SelfSteadyMax caps how long the new agent must stay healthy before
	// its self-update is committed (a quarter of the health deadline).
	// Zero: 30 seconds.
	SelfSteadyMax time.Duration

	// Services finds the processes still running code a transaction
	// replaced and restarts their services (restart_services in the
	// policy); nil skips the restart step.
	Services Services
}

// Engine plans and installs updates.
type Engine struct {
	cfg     Config
	j       *journal
	trigger chan struct{}
	txMu    sync.Mutex // one transaction at a time

	mu              sync.Mutex
	cands           map[string]Candidate   // from the last plan, by package=version
	catalog         map[string]CatalogItem // catalog updates of the last plan, by package=version
	catalogProblems map[string]string      // catalog entries ignored, by target (logged once)
	lastRefresh     time.Time
	decisions       []policy.Decision
	planned         time.Time
	lastErr         error
	state           string
}

// New returns an engine.
func New(cfg Config) *Engine {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Interval == 0 {
		cfg.Interval = time.Minute
	}
	if cfg.LockTimeout == 0 {
		cfg.LockTimeout = 5 * time.Minute
	}
	if cfg.RollbackWindow == 0 {
		cfg.RollbackWindow = 14 * 24 * time.Hour
	}
	if cfg.MinFree == 0 {
		cfg.MinFree = 64 << 20
	}
	if cfg.MaxBatch == 0 {
		cfg.MaxBatch = 200
	}
	if cfg.SelfPoll == 0 {
		cfg.SelfPoll = time.Second
	}
	if cfg.SelfSteadyMax == 0 {
		cfg.SelfSteadyMax = 30 * time.Second
	}
	return &Engine{cfg: cfg, j: &journal{db: cfg.DB, now: cfg.Now}, trigger: make(chan struct{}, 1), state: "idle"}
}

// Name implements the daemon's service interface.
func (e *Engine) Name() string { return "engine" }

// Trigger asks the engine to plan now (after a policy refresh or an
// inventory change).
func (e *Engine) Trigger() {
	select {
	case e.trigger <- struct{}{}:
	default:
	}
}

// Run recovers any transaction a crash left open, then plans and installs
// on the interval and on Trigger until ctx ends.
func (e *Engine) Run(ctx context.Context) error {
	if err := e.Recover(ctx); err != nil {
		e.cfg.Log.Error("engine: recovery failed", "err", err)
		e.setErr(err)
	}
	t := time.NewTicker(e.cfg.Interval)
	defer t.Stop()
	for {
		if err := e.Cycle(ctx); err != nil && ctx.Err() == nil {
			e.cfg.Log.Warn("engine: cycle failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-e.trigger:
		}
	}
}

func (e *Engine) setErr(err error) {
	e.mu.Lock()
	e.lastErr = err
	e.mu.Unlock()
}

func (e *Engine) setState(s string) {
	e.mu.Lock()
	e.state = s
	e.mu.Unlock()
}

// Cycle discovers updates, evaluates the policy and carries out what is
// due now.
func (e *Engine) Cycle(ctx context.Context) error {
	decisions, err := e.Plan(ctx)
	e.setErr(err)
	if err != nil && decisions == nil {
		return err
	}
	p, version := e.cfg.Policy()
	if p == nil {
		return nil
	}
	// Rollback orders first: they undo what the fleet decided was bad.
	for _, d := range policy.Rollbacks(p, e.facts(ctx), e.cfg.Now()) {
		if err := e.rollbackOrdered(ctx, d, version); err != nil {
			e.cfg.Log.Warn("engine: rollback order", "package", d.Update.Package, "err", err)
		}
	}
	var due []policy.Decision
	for _, d := range decisions {
		if d.Action == policy.ActionInstallNow {
			due = append(due, d)
		}
	}
	// The apt updates due now are one batch: apt's solver orders them and
	// the batch is journaled and rolled back as a whole. Catalog payloads
	// are one transaction each.
	var batch []policy.Update
	var reasons []string
	for _, d := range due {
		if d.Update.Source == policy.SourceCatalog {
			continue
		}
		if d.Update.Package == e.cfg.SelfPackage && e.cfg.SelfPackage != "" {
			e.cfg.Log.Warn("engine: the agent's own package is updated only from the signed catalog, not from apt", "update", d.Update.String())
			continue
		}
		batch = append(batch, d.Update)
		if !slices.Contains(reasons, d.Reason) {
			reasons = append(reasons, d.Reason)
		}
	}
	// A batch that does not start (refused: which packages, why; or not
	// planned: apt failed) is no transaction: its error is the cycle's
	// error and the engine's status until a plan succeeds. Failed
	// transactions are in the history.
	var refused error
	if len(batch) > 0 {
		if txs, err := e.InstallBatch(ctx, batch, strings.Join(reasons, "; "), version); err != nil {
			e.cfg.Log.Warn("engine: batch install failed", "updates", len(batch), "err", err)
			if errors.Is(err, ErrRefused) || len(txs) == 0 {
				refused = err
			}
		}
	}
	for _, d := range due {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if d.Update.Source != policy.SourceCatalog {
			continue
		}
		_, err := e.Install(ctx, d.Update, d.Reason, version)
		switch {
		case errors.Is(err, ErrRestartPending):
			// Not a failure: the agent's own package is in, and the
			// agent that starts next finishes the transaction.
			e.cfg.Log.Info("engine: the agent's own package was installed; waiting for the restart", "update", d.Update.String())
		case err != nil:
			e.cfg.Log.Warn("engine: install failed", "update", d.Update.String(), "err", err)
		}
	}
	if len(due) > 0 {
		// Show what the installs changed (new versions, rollbacks) in
		// the plan at once, not at the next cycle.
		if _, err := e.Plan(ctx); err != nil {
			return errors.Join(err, refused)
		}
	}
	if refused != nil {
		e.setErr(refused)
		return errors.Join(err, refused)
	}
	return err
}

// facts returns the node facts with the installed versions the policy's
// rollback orders and catalog checks need.
func (e *Engine) facts(ctx context.Context) policy.NodeFacts {
	f := e.cfg.Facts()
	if f.Installed == nil {
		f.Installed = map[string]string{}
	}
	// Packages this engine installed are the ones rollback orders can
	// act on; add their current versions.
	txs, _ := e.j.list(0)
	for _, tx := range txs {
		for _, it := range tx.Items {
			if _, ok := f.Installed[it.Package]; ok {
				continue
			}
			if v, err := e.cfg.Packages.InstalledVersion(ctx, it.Package); err == nil && v != "" {
				f.Installed[it.Package] = v
			}
		}
	}
	return f
}

// Plan refreshes the package indices, lists the applicable updates (apt's
// upgrades and the catalog's entries for this node), and evaluates the
// policy for each. It records first-seen times.
func (e *Engine) Plan(ctx context.Context) ([]policy.Decision, error) {
	p, pv := e.cfg.Policy()
	e.mu.Lock()
	stale := e.cfg.RefreshEvery == 0 || e.cfg.Now().Sub(e.lastRefresh) >= e.cfg.RefreshEvery
	e.mu.Unlock()
	var refreshErr error
	if stale {
		if err := e.cfg.Packages.Refresh(ctx); err != nil {
			// An unreachable repository (a WAN outage) must not stop a
			// site that has the payloads on its LAN: plan on the indices
			// apt verified last time, and say so.
			refreshErr = fmt.Errorf("plan: refresh package indices (planned on the last verified indices): %w", err)
			e.cfg.Log.Warn("engine: package index refresh failed; planning on the last verified indices", "err", err)
		} else {
			e.mu.Lock()
			e.lastRefresh = e.cfg.Now()
			e.mu.Unlock()
		}
	}
	cands, err := e.cfg.Packages.Upgradable(ctx)
	if err != nil {
		return nil, fmt.Errorf("plan: list upgradable packages: %w", err)
	}
	now := e.cfg.Now()
	byKey := make(map[string]Candidate, len(cands))
	updates := make([]policy.Update, 0, len(cands))
	for _, c := range cands {
		byKey[c.Package+"="+c.Version] = c
		u := policy.Update{Source: e.cfg.Packages.Source(), Package: c.Package, Version: c.Version, InstalledVersion: c.Installed, Classification: "other"}
		if c.Security {
			u.Classification = "security"
			u.Severity = c.Severity
		}
		if e.cfg.Vulns != nil {
			// What the signed advisory database says this version fixes:
			// the policy's urgent rules and min_severity read it.
			u.Severity, u.KEV = e.cfg.Vulns(c.Package, c.Version)
		}
		first, err := e.firstSeen(u, now)
		if err != nil {
			return nil, err
		}
		u.FirstSeen = first
		updates = append(updates, u)
	}
	catUpdates, catItems, err := e.catalogUpdates(ctx, now, byKey)
	if err != nil {
		return nil, err
	}
	updates = append(updates, catUpdates...)
	var decisions []policy.Decision
	if p != nil {
		var fleet policy.FleetView = policy.FleetStats{}
		if e.cfg.Fleet != nil {
			fleet = e.cfg.Fleet()
		}
		decisions = policy.Evaluate(p, e.facts(ctx), updates, fleet, now)
	} else {
		why := installRefusal(nil, pv, now)
		for _, u := range updates {
			decisions = append(decisions, policy.Decision{Update: u, Action: policy.ActionExpired, Rule: "policy", Reason: why.Error()})
		}
	}
	// An update rolled back under this policy version stays out until the
	// policy changes, whatever the policy would say now.
	for i, d := range decisions {
		if under, ok := e.rolledBack(d.Update); ok {
			decisions[i].Action = policy.ActionDenied
			decisions[i].At = time.Time{}
			decisions[i].Reason = fmt.Sprintf("rolled back on this node under policy %s; not installed again until the policy changes", under)
			decisions[i].Rule = "rollback"
		}
	}
	sort.SliceStable(decisions, func(i, j int) bool { return decisions[i].Update.Package < decisions[j].Update.Package })
	e.mu.Lock()
	e.decisions, e.planned, e.cands, e.catalog = decisions, now, byKey, catItems
	e.lastErr = refreshErr
	e.mu.Unlock()
	return decisions, refreshErr
}

// Decisions returns the last plan.
func (e *Engine) Decisions() ([]policy.Decision, time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]policy.Decision(nil), e.decisions...), e.planned
}

type updateRecord struct {
	FirstSeen time.Time `json:"first_seen"`
	// RolledBackUnder is the policy version under which this update was
	// rolled back; it is not installed again until the policy changes.
	RolledBackUnder string `json:"rolled_back_under,omitempty"`
}

func updateKey(u policy.Update) []byte {
	return []byte(u.Source + "/" + u.Package + "/" + u.Version)
}

func (e *Engine) firstSeen(u policy.Update, now time.Time) (time.Time, error) {
	local, err := e.localFirstSeen(u, now)
	if err != nil || e.cfg.FirstSeen == nil {
		return local, err
	}
	if fleet, ok := e.cfg.FirstSeen(u.Key()); ok && fleet.Before(local) {
		return fleet, nil
	}
	return local, nil
}

// localFirstSeen is when this node first saw u, recorded at the first
// sighting.
func (e *Engine) localFirstSeen(u policy.Update, now time.Time) (time.Time, error) {
	var rec updateRecord
	err := e.cfg.DB.Get(store.BucketUpdates, updateKey(u), &rec)
	if err == nil {
		return rec.FirstSeen, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return time.Time{}, err
	}
	rec.FirstSeen = now
	if err := e.cfg.DB.Put(store.BucketUpdates, updateKey(u), rec); err != nil {
		return time.Time{}, fmt.Errorf("record first seen of %s: %w", u, err)
	}
	return now, nil
}

// rolledBack reports whether u was rolled back under the current policy
// version, and that version.
func (e *Engine) rolledBack(u policy.Update) (string, bool) {
	var rec updateRecord
	if err := e.cfg.DB.Get(store.BucketUpdates, updateKey(u), &rec); err != nil {
		return "", false
	}
	_, version := e.cfg.Policy()
	if version == "" {
		version = "none"
	}
	return rec.RolledBackUnder, rec.RolledBackUnder != "" && rec.RolledBackUnder == version
}

func (e *Engine) markRolledBack(it Item, policyVersion string) {
	u := policy.Update{Source: it.Source, Package: it.Package, Version: it.To}
	var rec updateRecord
	if err := e.cfg.DB.Get(store.BucketUpdates, updateKey(u), &rec); err != nil {
		rec.FirstSeen = e.cfg.Now()
	}
	rec.RolledBackUnder = policyVersion
	if rec.RolledBackUnder == "" {
		rec.RolledBackUnder = "none"
	}
	if err := e.cfg.DB.Put(store.BucketUpdates, updateKey(u), rec); err != nil {
		e.cfg.Log.Warn("engine: record rollback", "update", u.String(), "err", err)
	}
}

// ErrOutsideWindow is returned when an install is asked for outside what
// the policy allows, without --now.
var ErrOutsideWindow = errors.New("not due under the policy (outside its maintenance windows or deferrals)")

// InstallNow installs an applicable update at once on an admin's word
// (`patchring install --now`): windows, deferrals, gates and approvals are
// skipped, but a deny, pin or rollback order in the policy still wins, and
// without a usable policy (none verified, or expired) nothing is installed.
func (e *Engine) InstallNow(ctx context.Context, pkg, version string) (*Tx, error) {
	decisions, err := e.Plan(ctx)
	if err != nil && decisions == nil {
		return nil, err
	}
	for _, d := range decisions {
		if d.Update.Package != pkg || (version != "" && d.Update.Version != version) {
			continue
		}
		switch d.Action {
		case policy.ActionDenied, policy.ActionPinned, policy.ActionRollback, policy.ActionExpired:
			return nil, fmt.Errorf("install %s %s: refused by policy: %s", pkg, d.Update.Version, d.Reason)
		}
		_, pv := e.cfg.Policy()
		return e.Install(ctx, d.Update, "admin: install --now ("+d.Reason+")", pv)
	}
	return nil, fmt.Errorf("install %s: no applicable update for this package%s", pkg, map[bool]string{true: " at version " + version}[version != ""])
}

// Install runs one install transaction for u.
func (e *Engine) Install(ctx context.Context, u policy.Update, reason, policyVersion string) (*Tx, error) {
	if err := e.policyAllowsInstalls(); err != nil {
		return nil, fmt.Errorf("install %s: %w", u, err)
	}
	e.txMu.Lock()
	defer e.txMu.Unlock()
	if u.Source != policy.SourceCatalog {
		// What apt really changes for u is one whole transaction.
		txs, err := e.installBatchLocked(ctx, []policy.Update{u}, reason, policyVersion)
		if len(txs) == 0 {
			return nil, err
		}
		return txs[0], err
	}
	e.setState("installing " + u.Package)
	defer e.setState("idle")

	var it Item
	if u.Source == policy.SourceCatalog {
		var err error
		if it, err = e.catalogTxItem(ctx, u); err != nil {
			return nil, fmt.Errorf("install %s: %w", u, err)
		}
	} else {
		e.mu.Lock()
		c, ok := e.cands[u.Package+"="+u.Version]
		e.mu.Unlock()
		if !ok || c.SHA256 == "" {
			var err error
			if c, err = e.cfg.Packages.Candidate(ctx, u.Package, u.Version); err != nil {
				return nil, fmt.Errorf("install %s: payload: %w", u, err)
			}
		}
		it = Item{Source: u.Source, Package: u.Package, Arch: c.Arch, From: u.InstalledVersion, To: u.Version,
			Payload: &Payload{URI: c.URI, Size: c.Size, SHA256: c.SHA256}}
		if it.From != "" {
			if prev, err := e.cfg.Packages.Candidate(ctx, u.Package, it.From); err == nil {
				it.FromPayload = &Payload{URI: prev.URI, Size: prev.Size, SHA256: prev.SHA256}
			}
		}
	}
	// Refuse before anything starts when the disk cannot hold it.
	need := uint64(it.Payload.Size)*3 + e.cfg.MinFree
	if free, err := e.cfg.Packages.FreeSpace(ctx); err == nil && free < need {
		return nil, fmt.Errorf("install %s: not enough free disk: %d bytes free, need %d", u, free, need)
	}
	tx, err := e.j.create(KindInstall, []Item{it}, reason, policyVersion)
	if err != nil {
		return nil, err
	}
	e.noteUrgency(tx)
	e.run(ctx, tx)
	return tx, txErr(tx)
}

func txErr(tx *Tx) error {
	if tx.Outcome == OutcomeInstalled {
		return nil
	}
	if tx.Open() {
		return fmt.Errorf("transaction %d: %w", tx.ID, ErrRestartPending)
	}
	return &txError{id: tx.ID, outcome: tx.Outcome, msg: tx.Error}
}

// txError is a transaction that ran and did not install (its journal says
// why).
type txError struct {
	id      uint64
	outcome Outcome
	msg     string
}

func (e *txError) Error() string { return fmt.Sprintf("transaction %d %s: %s", e.id, e.outcome, e.msg) }

// run carries an install transaction from its last journaled step.
func (e *Engine) run(ctx context.Context, tx *Tx) {
	fail := func(o Outcome, err error) {
		e.j.finish(tx, err, "")
		e.j.end(tx, o, err)
		e.done(ctx, tx)
	}
	// Fetch every payload, the previous versions too (rollback).
	if err := e.j.begin(tx, StepFetch, ""); err != nil {
		fail(OutcomeFailed, err)
		return
	}
	pol, _ := e.cfg.Policy()
	for i := range tx.Items {
		it := &tx.Items[i]
		until := e.cfg.Now().Add(e.cfg.RollbackWindow)
		if it.Payload != nil {
			if err := e.cfg.Content.Fetch(ctx, *it.Payload); err != nil {
				fail(OutcomeFailed, fmt.Errorf("fetch %s %s: %w", it.Package, it.To, err))
				return
			}
			e.cfg.Content.Keep(it.Payload.SHA256, fmt.Sprintf("tx %d", tx.ID), until)
		}
		if it.FromPayload != nil {
			if err := e.cfg.Content.Fetch(ctx, *it.FromPayload); err != nil && tx.whole() && (pol == nil || !pol.RollbackOptional(it.Package)) {
				// A whole transaction does not start without the payloads
				// its rollback needs.
				fail(OutcomeFailed, fmt.Errorf("fetch the previous version %s %s for the rollback: %w", it.Package, it.From, err))
				return
			} else if err != nil {
				e.cfg.Log.Warn("engine: previous version's payload unavailable; rollback will need a repository", "package", it.Package, "version", it.From, "err", err)
				it.FromPayload = nil
			} else {
				e.cfg.Content.Keep(it.FromPayload.SHA256, fmt.Sprintf("rollback of tx %d", tx.ID), until)
			}
		}
	}
	e.j.finish(tx, nil, "payloads verified")

	if err := e.j.begin(tx, StepPlace, ""); err != nil {
		fail(OutcomeFailed, err)
		return
	}
	for _, it := range tx.Items {
		if it.Payload == nil {
			continue // a removal
		}
		if err := e.place(ctx, it.Source, it.Package, it.Arch, it.To, it.Payload); err != nil {
			fail(OutcomeFailed, err)
			return
		}
	}
	e.j.finish(tx, nil, "")
	if e.isSelf(tx) {
		e.selfInstall(ctx, tx)
		return
	}
	e.installAndVerify(ctx, tx)
}

func (e *Engine) place(ctx context.Context, source, pkg, arch, version string, p *Payload) error {
	if source == policy.SourceCatalog {
		return e.placeFile(ctx, pkg, version, p)
	}
	r, err := e.cfg.Content.Open(p.SHA256)
	if err != nil {
		return fmt.Errorf("place %s %s: %w", pkg, version, err)
	}
	defer r.Close()
	c := Candidate{Package: pkg, Arch: arch, Version: version, URI: p.URI, Size: p.Size, SHA256: p.SHA256}
	if err := e.cfg.Packages.Place(ctx, r, c); err != nil {
		return fmt.Errorf("place %s %s: %w", pkg, version, err)
	}
	return nil
}

// installAndVerify runs the install, verify and health-check steps, and
// rolls back when one fails after the system changed.
func (e *Engine) installAndVerify(ctx context.Context, tx *Tx) {
	if err := e.cfg.Packages.WaitLock(ctx, e.cfg.LockTimeout); err != nil {
		e.j.end(tx, OutcomeFailed, fmt.Errorf("package manager busy: %w", err))
		e.done(ctx, tx)
		return
	}
	e.noteOldFiles(ctx, tx)
	if err := e.j.begin(tx, StepInstall, ""); err != nil {
		e.j.end(tx, OutcomeFailed, err)
		e.done(ctx, tx)
		return
	}
	var err error
	if tx.whole() {
		err = e.applyForward(ctx, tx)
	} else {
		named, files := itemVersions(tx.Items, func(it Item) string { return it.To }, func(it Item) *Payload { return it.Payload })
		err = e.installVersions(ctx, named, files, false)
	}
	if err != nil {
		e.j.finish(tx, err, "")
		e.rollback(ctx, tx, fmt.Errorf("install: %w", err))
		return
	}
	crashPoint(CrashAfterInstall)
	e.j.finish(tx, nil, "")
	e.verifyAndCheck(ctx, tx)
}

func (e *Engine) verifyAndCheck(ctx context.Context, tx *Tx) {
	if err := e.j.begin(tx, StepVerify, ""); err != nil {
		e.j.end(tx, OutcomeFailed, err)
		e.done(ctx, tx)
		return
	}
	for _, it := range tx.Items {
		v, err := e.cfg.Packages.InstalledVersion(ctx, it.Package)
		if err == nil && v != it.To {
			err = fmt.Errorf("%s is at %q after the install, want %s", it.Package, v, orNone(it.To))
		}
		if err != nil {
			e.j.finish(tx, err, "")
			e.rollback(ctx, tx, fmt.Errorf("verify: %w", err))
			return
		}
	}
	if err := e.checkNothingElseRemoved(ctx, tx); err != nil {
		e.j.finish(tx, err, "")
		e.rollback(ctx, tx, fmt.Errorf("verify: %w", err))
		return
	}
	e.j.finish(tx, nil, "installed versions confirmed")

	// Services still running replaced code are restarted before the
	// health check, which then sees them on the new code; a restart that
	// fails is a failed health check.
	if err := e.restartServices(ctx, tx); err != nil {
		e.rollback(ctx, tx, fmt.Errorf("health check: %w", err))
		return
	}

	if err := e.j.begin(tx, StepHealth, ""); err != nil {
		e.j.end(tx, OutcomeFailed, err)
		e.done(ctx, tx)
		return
	}
	if err := e.healthCheck(ctx); err != nil {
		e.j.finish(tx, err, "")
		e.rollback(ctx, tx, fmt.Errorf("health check: %w", err))
		return
	}
	e.j.finish(tx, nil, "")
	if reasons, pkgs := e.rebootReasons(tx); len(reasons) > 0 {
		tx.Reboot, tx.RebootReasons = true, reasons
		why := fmt.Sprintf("transaction %d installed %s: %s", tx.ID, itemsString(tx.Items), strings.Join(reasons, "; "))
		switch {
		case tx.UrgentRebootDeadline > 0 && e.cfg.OnUrgentReboot != nil:
			e.cfg.OnUrgentReboot(e.cfg.Now(), why, pkgs, tx.UrgentRebootDeadline, tx.UrgentRule)
		case e.cfg.OnReboot != nil:
			e.cfg.OnReboot(e.cfg.Now(), why, pkgs)
		}
	}
	e.j.end(tx, OutcomeInstalled, nil)
	e.done(ctx, tx)
}

func itemsString(items []Item) string {
	var parts []string
	for _, it := range items {
		parts = append(parts, fmt.Sprintf("%s %s -> %s", it.Package, orNone(it.From), orNone(it.To)))
	}
	return strings.Join(parts, ", ")
}

func orNone(v string) string {
	if v == "" {
		return "(none)"
	}
	return v
}

// rollback puts the previous versions back after a failure in tx.
func (e *Engine) rollback(ctx context.Context, tx *Tx, cause error) {
	e.j.begin(tx, StepRollback, cause.Error())
	// The files of the versions about to be replaced, for the restart
	// step after the rollback.
	rolledOut, ferr := e.listFiles(ctx, tx)
	if ferr != nil {
		e.cfg.Log.Warn("engine: the restart step after the rollback will count the restored versions' files only", "tx", tx.ID, "err", ferr)
	}
	if err := e.restore(ctx, tx.Items); err != nil {
		e.j.finish(tx, err, "")
		if tx.whole() {
			// Leave the node consistent and say where each package is.
			e.j.begin(tx, StepRecover, "rollback failed: settling the node")
			detail := e.settle(ctx, tx)
			e.recordResults(ctx, tx, true)
			if s := stuck(tx); len(s) > 0 {
				detail += "; not at the old nor the new version: " + strings.Join(s, ", ")
			}
			e.j.finish(tx, nil, detail)
			tx.RollbackFailed = true
			e.setErr(fmt.Errorf("transaction %d: rollback failed; %s", tx.ID, detail))
			// Whatever new versions stayed are in use: the reboot logic
			// hears of them as of an install.
			if req, pkgs := e.cfg.Packages.RebootRequired(); req && e.cfg.OnReboot != nil {
				e.cfg.OnReboot(e.cfg.Now(), fmt.Sprintf("transaction %d could not be rolled back: %s", tx.ID, detail), pkgs)
			}
		}
		e.j.end(tx, OutcomeFailed, fmt.Errorf("%v; rollback failed too: %w", cause, err))
		e.done(ctx, tx)
		return
	}
	e.j.finish(tx, nil, "previous versions restored")
	for _, it := range tx.Items {
		if it.To != "" {
			e.markRolledBack(it, tx.Policy)
		}
	}
	// The services restarted onto the new versions (and any process
	// mapping a file the rollback replaced) go back to the old ones.
	if err := e.restartAfterRollback(ctx, tx, rolledOut, true); err != nil {
		cause = fmt.Errorf("%w; %w", cause, err)
		e.setErr(fmt.Errorf("transaction %d: %w", tx.ID, err))
	}
	e.j.end(tx, OutcomeRolledBack, cause)
	e.done(ctx, tx)
}

// restore reinstalls every item's From version. A package that was not
// installed before stays for an admin to judge (a new dependency), except
// a catalog package, which is removed: the catalog entry brought it.
func (e *Engine) restore(ctx context.Context, items []Item) error {
	if audit, _ := e.cfg.Packages.Audit(ctx); len(audit) > 0 {
		if err := e.cfg.Packages.ConfigurePending(ctx); err != nil {
			e.cfg.Log.Warn("engine: dpkg --configure -a", "err", err)
		}
	}
	if (&Tx{Items: items}).whole() {
		return e.restoreWhole(ctx, items)
	}
	var todo []Item
	var remove []string
	for _, it := range items {
		cur, _ := e.cfg.Packages.InstalledVersion(ctx, it.Package)
		if it.From == "" {
			if it.Source == policy.SourceCatalog && cur != "" {
				remove = append(remove, it.Package)
			}
			continue
		}
		if cur == it.From {
			continue
		}
		if it.FromPayload != nil {
			if err := e.place(ctx, it.Source, it.Package, it.Arch, it.From, it.FromPayload); err != nil {
				return err
			}
		}
		todo = append(todo, it)
	}
	if len(todo) == 0 && len(remove) == 0 {
		return nil
	}
	if err := e.cfg.Packages.WaitLock(ctx, e.cfg.LockTimeout); err != nil {
		return err
	}
	named, files := itemVersions(todo, func(it Item) string { return it.From }, func(it Item) *Payload { return it.FromPayload })
	if err := e.installVersions(ctx, named, files, true); err != nil {
		return err
	}
	if len(remove) > 0 {
		if err := e.cfg.Packages.Remove(ctx, remove...); err != nil {
			return err
		}
		for _, pkg := range remove {
			if v, err := e.cfg.Packages.InstalledVersion(ctx, pkg); err != nil || v != "" {
				return fmt.Errorf("%s is at %q after its removal, want it removed (%v)", pkg, v, err)
			}
		}
	}
	for _, p := range append(named, files...) {
		if v, err := e.cfg.Packages.InstalledVersion(ctx, p.Package); err != nil || v != p.Version {
			return fmt.Errorf("%s is at %q after the rollback, want %s (%v)", p.Package, v, p.Version, err)
		}
	}
	return nil
}

func (e *Engine) done(ctx context.Context, tx *Tx) {
	if tx.whole() {
		e.recordResults(ctx, tx, tx.reached(StepInstall))
		if err := e.j.save(tx); err != nil {
			e.cfg.Log.Warn("engine: record per-package results", "tx", tx.ID, "err", err)
		}
	}
	e.cfg.Log.Info("engine: transaction ended", "tx", tx.ID, "kind", tx.Kind, "outcome", tx.Outcome, "items", itemsString(tx.Items), "err", tx.Error)
	if e.cfg.OnResult != nil {
		e.cfg.OnResult(tx)
	}
}

// noteUrgency records on tx (journaled with its next step) the shortest
// reboot deadline of the urgent rules that approved its updates in the
// last plan, so the restart it may need gets that deadline.
func (e *Engine) noteUrgency(tx *Tx) {
	p, _ := e.cfg.Policy()
	if p == nil || len(p.Urgent) == 0 {
		return
	}
	e.mu.Lock()
	decisions := e.decisions
	e.mu.Unlock()
	for _, d := range decisions {
		var i int
		if _, err := fmt.Sscanf(d.Rule, "urgent[%d]", &i); err != nil || i < 0 || i >= len(p.Urgent) {
			continue
		}
		dl := p.Urgent[i].RebootDeadline.Std()
		if dl <= 0 {
			continue
		}
		for _, it := range tx.Items {
			if it.Package != d.Update.Package || it.To != d.Update.Version {
				continue
			}
			if tx.UrgentRebootDeadline == 0 || dl < tx.UrgentRebootDeadline {
				name := p.Urgent[i].Name
				if name == "" {
					name = "urgent"
				}
				tx.UrgentRebootDeadline = dl
				tx.UrgentRule = fmt.Sprintf("%s (%s): %s %s, reboot within %s", d.Rule, name, it.Package, it.To, dl)
			}
		}
	}
}

// Rollback undoes transaction id on an admin's word: a new rollback
// transaction reinstalls the versions id replaced.
func (e *Engine) Rollback(ctx context.Context, id uint64, reason string) (*Tx, error) {
	e.txMu.Lock()
	defer e.txMu.Unlock()
	orig, err := e.j.get(id)
	if err != nil {
		return nil, fmt.Errorf("rollback %d: %w", id, err)
	}
	if orig.Kind != KindInstall || orig.Outcome != OutcomeInstalled {
		return nil, fmt.Errorf("rollback %d: only a completed install can be rolled back (this is a %s that ended %q)", id, orig.Kind, orig.Outcome)
	}
	if orig.RolledBy != 0 {
		return nil, fmt.Errorf("rollback %d: already rolled back by transaction %d", id, orig.RolledBy)
	}
	return e.rollbackTx(ctx, orig, reason)
}

func (e *Engine) rollbackTx(ctx context.Context, orig *Tx, reason string) (*Tx, error) {
	var items []Item
	for _, it := range orig.Items {
		if orig.whole() {
			// The whole set goes back: added packages removed, removed
			// ones reinstalled, the others at their previous versions.
			items = append(items, Item{Source: it.Source, Package: it.Package, Arch: it.Arch, From: it.To, To: it.From,
				Payload: it.FromPayload, FromPayload: it.Payload, Action: reverseAction(it.Action), Requested: it.Requested})
			continue
		}
		if it.From == "" {
			continue
		}
		items = append(items, Item{Source: it.Source, Package: it.Package, Arch: it.Arch, From: it.To, To: it.From,
			Payload: it.FromPayload, FromPayload: it.Payload})
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("rollback %d: it installed new packages only; there is no earlier version to return to", orig.ID)
	}
	_, pv := e.cfg.Policy()
	tx, err := e.j.create(KindRollback, items, fmt.Sprintf("%s (undo transaction %d)", reason, orig.ID), pv)
	if err != nil {
		return nil, err
	}
	e.j.begin(tx, StepInstall, "reinstall previous versions")
	rolledOut, ferr := e.listFiles(ctx, tx)
	if ferr != nil {
		e.cfg.Log.Warn("engine: the restart step after the rollback will count the restored versions' files only", "tx", tx.ID, "err", ferr)
	}
	if err := e.restore(ctx, backItems(items)); err != nil {
		e.j.finish(tx, err, "")
		e.j.end(tx, OutcomeFailed, err)
		e.done(ctx, tx)
		return tx, txErr(tx)
	}
	e.j.finish(tx, nil, "")
	e.restartBackOrReport(ctx, tx, rolledOut)
	orig.RolledBy = tx.ID
	e.j.save(orig)
	for _, it := range orig.Items {
		if it.To != "" {
			e.markRolledBack(it, pv)
		}
	}
	e.j.end(tx, OutcomeInstalled, nil)
	e.done(ctx, tx)
	return tx, nil
}

// restartBackOrReport runs the restart step after a rollback transaction
// (an admin's or the policy's): a failed restart cannot be rolled back in
// turn, so it is journaled and makes the engine's status degraded.
func (e *Engine) restartBackOrReport(ctx context.Context, tx *Tx, rolledOut []string) {
	if err := e.restartAfterRollback(ctx, tx, rolledOut, false); err != nil {
		e.cfg.Log.Warn("engine: restart services after a rollback", "tx", tx.ID, "err", err)
		e.setErr(fmt.Errorf("transaction %d: %w", tx.ID, err))
	}
	var reasons []string
	for _, s := range tx.Stale {
		if s.Reboot {
			reasons = append(reasons, s.String())
		}
	}
	if len(reasons) > 0 {
		tx.Reboot, tx.RebootReasons = true, reasons
		if e.cfg.OnReboot != nil {
			e.cfg.OnReboot(e.cfg.Now(), fmt.Sprintf("rollback transaction %d: %s", tx.ID, strings.Join(reasons, "; ")), nil)
		}
	}
}

// rollbackOrdered carries out a rollback order from the signed policy for
// the installed version in d.
func (e *Engine) rollbackOrdered(ctx context.Context, d policy.Decision, policyVersion string) error {
	txs, err := e.j.list(0)
	if err != nil {
		return err
	}
	for _, tx := range txs {
		if tx.Kind != KindInstall || tx.Outcome != OutcomeInstalled || tx.RolledBy != 0 {
			continue
		}
		for _, it := range tx.Items {
			if it.Package == d.Update.Package && it.To == d.Update.Version {
				e.txMu.Lock()
				_, err := e.rollbackTx(ctx, tx, "policy rollback order: "+d.Reason)
				e.txMu.Unlock()
				return err
			}
		}
	}
	return fmt.Errorf("rollback order for %s %s: no transaction of this agent installed it, so no earlier version is known", d.Update.Package, d.Update.Version)
}

// Recover finishes or rolls back a transaction that a crash left open.
func (e *Engine) Recover(ctx context.Context) error {
	txs, err := e.j.list(0)
	if err != nil {
		return err
	}
	for _, tx := range txs {
		if !tx.Open() {
			continue
		}
		if err := e.recoverTx(ctx, tx); err != nil {
			return fmt.Errorf("recover transaction %d: %w", tx.ID, err)
		}
	}
	return nil
}

func (e *Engine) recoverTx(ctx context.Context, tx *Tx) error {
	e.txMu.Lock()
	defer e.txMu.Unlock()
	if e.isSelf(tx) && tx.reached(StepSelfInstall) {
		e.recoverSelf(ctx, tx)
		return nil
	}
	last := tx.LastStep()
	e.cfg.Log.Warn("engine: found a transaction interrupted by a crash", "tx", tx.ID, "step", last.Name, "status", last.Status)
	audit, _ := e.cfg.Packages.Audit(ctx)
	detail := fmt.Sprintf("interrupted at %s (%s)", last.Name, last.Status)
	if len(audit) > 0 {
		if e.cfg.Packages.Source() == policy.SourceApt {
			detail += "; dpkg was interrupted: ran dpkg --configure -a"
		} else {
			detail += "; the package database shows an interrupted transaction (" + strings.Join(audit, "; ") + "): finished it"
		}
	}
	if err := e.j.begin(tx, StepRecover, detail); err != nil {
		return err
	}
	if len(audit) > 0 {
		if err := e.cfg.Packages.WaitLock(ctx, e.cfg.LockTimeout); err != nil {
			return err
		}
		if err := e.cfg.Packages.ConfigurePending(ctx); err != nil {
			e.cfg.Log.Warn("engine: dpkg --configure -a failed", "err", err)
		}
	}
	if tx.Kind == KindRollback {
		// A rollback is an install of the previous versions: finish it,
		// with its restart step.
		err := e.restore(ctx, backItems(tx.Items))
		e.j.finish(tx, err, "")
		if err != nil {
			return e.j.end(tx, OutcomeFailed, err)
		}
		e.restartBackOrReport(ctx, tx, nil)
		return e.j.end(tx, OutcomeInstalled, nil)
	}
	if !tx.reached(StepInstall) {
		// Nothing on the system changed yet.
		e.j.finish(tx, nil, "nothing was installed yet; the update will be planned again")
		err := e.j.end(tx, OutcomeAborted, errors.New("interrupted before installing"))
		e.done(ctx, tx)
		return err
	}
	if tx.reached(StepRollback) && !tx.RollbackFailed {
		// The rollback (or its restart step) was under way: finish it.
		// Restoring and restarting are idempotent.
		e.j.finish(tx, nil, "the rollback was under way; finishing it")
		cause := "interrupted during the rollback"
		for _, st := range tx.Steps {
			if st.Name == StepRollback && st.Detail != "" {
				cause = st.Detail
			}
		}
		e.rollback(ctx, tx, errors.New(cause))
		return nil
	}
	// The install may or may not have happened: look.
	atNew, atOld := true, true
	for _, it := range tx.Items {
		v, _ := e.cfg.Packages.InstalledVersion(ctx, it.Package)
		atNew = atNew && v == it.To
		atOld = atOld && v == it.From
	}
	switch {
	case atNew:
		e.j.finish(tx, nil, "the new versions are installed; verifying")
		e.verifyAndCheck(ctx, tx)
	case atOld:
		e.j.finish(tx, nil, "the install had not changed anything")
		e.j.end(tx, OutcomeAborted, errors.New("interrupted before the install changed anything"))
		e.done(ctx, tx)
	default:
		e.j.finish(tx, nil, "the system is between versions; rolling back")
		e.rollback(ctx, tx, errors.New("interrupted during install"))
	}
	return nil
}

// History returns transactions newest first.
func (e *Engine) History(limit int) ([]*Tx, error) { return e.j.list(limit) }

// HistoryVersion changes whenever the journal is written: what is derived
// from History(0) stays true while it does not.
func (e *Engine) HistoryVersion() uint64 { return e.j.gen.Load() }

// Transaction returns one transaction.
func (e *Engine) Transaction(id uint64) (*Tx, error) { return e.j.get(id) }

// Status summarizes the engine for `patchring status`.
func (e *Engine) Status() apitypes.SubsystemStatus {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := apitypes.SubsystemStatus{Name: "updates", State: "ok", Details: map[string]string{}}
	counts := map[policy.Action]int{}
	for _, d := range e.decisions {
		counts[d.Action]++
	}
	pending := len(e.decisions) - counts[policy.ActionDenied] - counts[policy.ActionNotApproved]
	st.Summary = fmt.Sprintf("%s; %d applicable updates, %d pending", e.state, len(e.decisions), pending)
	if !e.planned.IsZero() {
		st.Details["planned"] = e.planned.Format(time.RFC3339)
	}
	if e.lastErr != nil {
		st.State = "degraded"
		st.Details["last_error"] = e.lastErr.Error()
	}
	if len(e.catalogProblems) > 0 {
		st.Details["catalog_ignored"] = catalogProblemsText(e.catalogProblems)
	}
	// A transaction whose rollback failed keeps the engine degraded until
	// a later install transaction ends.
	if txs, err := e.j.list(20); err == nil {
		for _, tx := range txs {
			if tx.Kind != KindInstall || tx.Open() {
				continue
			}
			if tx.RollbackFailed {
				st.State = "degraded"
				st.Details["rollback_failed"] = fmt.Sprintf("transaction %d: %s", tx.ID, tx.Error)
			}
			break
		}
	}
	return st
}

// backItems turns a rollback transaction's items into what restore takes:
// each package brought to the rollback's To version (From in restore's
// terms) from its payload.
func backItems(items []Item) []Item {
	back := make([]Item, len(items))
	for i, it := range items {
		back[i] = Item{Source: it.Source, Package: it.Package, Arch: it.Arch, From: it.To, To: it.From,
			FromPayload: it.Payload, Payload: it.FromPayload, Action: it.Action}
	}
	return back
}

func reverseAction(a string) string {
	switch a {
	case ActionInstall:
		return ActionRemove
	case ActionRemove:
		return ActionInstall
	case ActionUpgrade:
		return ActionDowngrade
	case ActionDowngrade:
		return ActionUpgrade
	}
	return a
}
