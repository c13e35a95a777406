package engine

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/patchring/patchring/policy"
)

// RefusedError is a transaction the engine would not start: apt's plan
// removes packages the policy does not allow it to remove, or a package
// it changes could not be rolled back.
type RefusedError struct {
	Requested []string // the updates asked for, "pkg=version"
	Reasons   []string // one per refused package
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("transaction for %s refused: %s", strings.Join(e.Requested, ", "), strings.Join(e.Reasons, "; "))
}

// ErrRefused matches every *RefusedError with errors.Is.
var ErrRefused = errors.New("transaction refused")

func (e *RefusedError) Is(target error) bool { return target == ErrRefused }

// planItems asks apt's solver what installing exactly the requested
// updates changes and returns one journal item per change, each with its
// verified payload and the payload of the version it replaces (for the
// rollback), and the dependency components of the items (indexes into
// items). It refuses removals the policy does not allow and changes that
// could not be rolled back.
func (e *Engine) planItems(ctx context.Context, ups []policy.Update) ([]Item, [][]int, error) {
	pol, _ := e.cfg.Policy()
	var req []PkgVersion
	var names []string
	requested := map[string]string{}
	for _, u := range ups {
		req = append(req, PkgVersion{u.Package, u.Version})
		names = append(names, u.Package+"="+u.Version)
		requested[u.Package] = u.Version
	}
	changes, err := e.cfg.Packages.Simulate(ctx, req, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("plan %s with apt: %w", strings.Join(names, " "), err)
	}
	refused := &RefusedError{Requested: names}
	for _, c := range changes {
		if c.To != "" {
			continue
		}
		if pol == nil || !pol.RemovalAllowed(c.Package) {
			refused.Reasons = append(refused.Reasons, fmt.Sprintf(
				"apt's solution removes %s %s (a new version conflicts with it or breaks what it depends on) and the policy's transactions.allow_remove does not match it", c.Package, c.From))
		}
	}
	got := map[string]bool{}
	var toFetch, previous []PkgVersion
	for _, c := range changes {
		got[c.Package] = true
		if v, ok := requested[c.Package]; ok && c.To != v {
			return nil, nil, fmt.Errorf("plan %s with apt: apt would make %s %q, not %s", strings.Join(names, " "), c.Package, c.To, v)
		}
		if c.To != "" {
			toFetch = append(toFetch, PkgVersion{c.Package, c.To})
		}
		if c.From != "" {
			previous = append(previous, PkgVersion{c.Package, c.From})
		}
	}
	for pkg, v := range requested {
		if !got[pkg] {
			return nil, nil, fmt.Errorf("plan %s with apt: apt would not change %s (is %s already installed? plan again)", strings.Join(names, " "), pkg, v)
		}
	}
	// The new versions' payloads and, in the same query, the installed
	// versions' (for the rollback).
	cands, prevs, err := e.cfg.Packages.Payloads(ctx, toFetch, previous)
	if err != nil {
		return nil, nil, fmt.Errorf("plan %s: payloads: %w", strings.Join(names, " "), err)
	}
	byName := map[string]Candidate{}
	for _, c := range cands {
		byName[c.Package] = c
	}
	prevByName := map[string]Candidate{}
	for _, c := range prevs {
		prevByName[c.Package+"="+c.Version] = c
	}
	items := make([]Item, 0, len(changes))
	for _, c := range changes {
		_, req := requested[c.Package]
		it := Item{Source: e.cfg.Packages.Source(), Package: c.Package, Arch: c.Arch, From: c.From, To: c.To, Requested: req}
		switch {
		case c.To == "":
			it.Action = ActionRemove
		case c.From == "":
			it.Action = ActionInstall
		default:
			it.Action = ActionUpgrade
			if cmp, err := e.cfg.Packages.CompareVersions(c.To, c.From); err == nil && cmp < 0 {
				it.Action = ActionDowngrade
			}
		}
		if c.To != "" {
			cand, ok := byName[c.Package]
			if !ok || cand.SHA256 == "" {
				return nil, nil, fmt.Errorf("plan %s: no verified payload for %s %s", strings.Join(names, " "), c.Package, c.To)
			}
			it.Arch = cand.Arch
			it.Payload = &Payload{URI: cand.URI, Size: cand.Size, SHA256: cand.SHA256}
		}
		if c.From != "" {
			var arch string
			if p, ok := prevByName[c.Package+"="+c.From]; ok && p.SHA256 != "" {
				it.FromPayload, arch = &Payload{URI: p.URI, Size: p.Size, SHA256: p.SHA256}, p.Arch
			} else {
				it.FromPayload, arch = e.keptPayload(c.Package, c.From)
			}
			if it.Arch == "" {
				it.Arch = arch // apt prints no architecture for removals
			}
			if it.FromPayload == nil && (pol == nil || !pol.RollbackOptional(c.Package)) {
				refused.Reasons = append(refused.Reasons, fmt.Sprintf(
					"the installed %s %s is offered by no source and not kept in the content store, so it could not be rolled back (the policy's transactions.without_rollback does not match it)", c.Package, c.From))
			}
		}
		items = append(items, it)
	}
	if len(refused.Reasons) > 0 {
		return nil, nil, refused
	}
	return items, components(items, cands), nil
}

// keptPayload finds the payload of an installed version no source offers
// any more in an earlier transaction that installed it (kept in the
// content store).
func (e *Engine) keptPayload(pkg, version string) (*Payload, string) {
	if txs, err := e.j.list(0); err == nil {
		for _, tx := range txs {
			for _, it := range tx.Items {
				for _, p := range []struct {
					v  string
					pl *Payload
				}{{it.To, it.Payload}, {it.From, it.FromPayload}} {
					if it.Package == pkg && p.v == version && p.pl != nil && p.pl.SHA256 != "" {
						if r, err := e.cfg.Content.Open(p.pl.SHA256); err == nil {
							r.Close()
							pl := *p.pl
							return &pl, it.Arch
						}
					}
				}
			}
		}
	}
	return nil, ""
}

// components groups the items along dependency lines: two items are in
// one component when the new version of one depends on the other.
// Removals join every component that changes something (apt removes a
// package because of the batch as a whole). Components are returned in
// item order.
func components(items []Item, cands []Candidate) [][]int {
	parent := make([]int, len(items))
	for i := range parent {
		parent[i] = i
	}
	find := func(i int) int {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	union := func(a, b int) { parent[find(a)] = find(b) }
	idx := map[string]int{}
	for i, it := range items {
		idx[it.Package] = i
	}
	deps := map[string][]string{}
	for _, c := range cands {
		deps[c.Package] = c.Depends
	}
	firstRemoval := -1
	for i, it := range items {
		for _, d := range deps[it.Package] {
			if j, ok := idx[d]; ok {
				union(i, j)
			}
		}
		if it.Action == ActionRemove {
			if firstRemoval < 0 {
				firstRemoval = i
			}
		}
	}
	if firstRemoval >= 0 {
		for i := range items {
			union(i, firstRemoval)
		}
	}
	groups := map[int][]int{}
	var order []int
	for i := range items {
		r := find(i)
		if _, ok := groups[r]; !ok {
			order = append(order, r)
		}
		groups[r] = append(groups[r], i)
	}
	out := make([][]int, 0, len(order))
	for _, r := range order {
		out = append(out, groups[r])
	}
	return out
}

// pack puts components into transactions of at most max items, first fit
// in order; a component larger than max is a transaction of its own.
func pack(comps [][]int, max int) [][]int {
	var out [][]int
	for _, c := range comps {
		placed := false
		for i := range out {
			if len(out[i])+len(c) <= max {
				out[i] = append(out[i], c...)
				placed = true
				break
			}
		}
		if !placed {
			out = append(out, append([]int(nil), c...))
		}
	}
	return out
}

// requestedIn returns the updates whose package is among items[idx].
func requestedIn(ups []policy.Update, items []Item, idx []int) []policy.Update {
	in := map[string]bool{}
	for _, i := range idx {
		in[items[i].Package] = true
	}
	var out []policy.Update
	for _, u := range ups {
		if in[u.Package] {
			out = append(out, u)
		}
	}
	return out
}

// InstallBatch installs the apt updates due together as whole
// transactions: one when the batch fits in MaxBatch packages, else one per
// group of dependency components. When a transaction of several
// components fails, each component is tried again on its own, so the
// failing one is isolated and holds back only what depends on it. It
// returns the transactions it ran.
func (e *Engine) InstallBatch(ctx context.Context, ups []policy.Update, reason, policyVersion string) ([]*Tx, error) {
	e.txMu.Lock()
	defer e.txMu.Unlock()
	return e.installBatchLocked(ctx, ups, reason, policyVersion)
}

func (e *Engine) installBatchLocked(ctx context.Context, ups []policy.Update, reason, policyVersion string) ([]*Tx, error) {
	if len(ups) == 0 {
		return nil, nil
	}
	sort.Slice(ups, func(i, j int) bool { return ups[i].Package < ups[j].Package })
	e.setState(fmt.Sprintf("installing %d updates", len(ups)))
	defer e.setState("idle")
	items, comps, err := e.planItems(ctx, ups)
	if err != nil {
		return nil, fmt.Errorf("install: %w", err)
	}
	groups := pack(comps, e.cfg.MaxBatch)
	if len(groups) > 1 {
		// Too large for one step: one transaction per group, each planned
		// again on the system the previous one left.
		var txs []*Tx
		var errs []error
		for _, g := range groups {
			sub := requestedIn(ups, items, g)
			if len(sub) == 0 {
				continue
			}
			t, err := e.installBatchLocked(ctx, sub, reason, policyVersion)
			txs = append(txs, t...)
			if err != nil {
				errs = append(errs, err)
			}
		}
		return txs, errors.Join(errs...)
	}
	tx, err := e.runWhole(ctx, items, reason, policyVersion, 0)
	if err != nil {
		return nil, err
	}
	txs := []*Tx{tx}
	if tx.Outcome == OutcomeInstalled || len(comps) < 2 || ctx.Err() != nil {
		return txs, txErr(tx)
	}
	// Isolate the failing part: each component on its own.
	e.cfg.Log.Info("engine: batch failed; trying its dependency components one by one", "tx", tx.ID, "components", len(comps))
	var errs []error
	for _, c := range comps {
		sub := requestedIn(ups, items, c)
		if len(sub) == 0 {
			continue
		}
		subItems, _, err := e.planItems(ctx, sub)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		t, err := e.runWhole(ctx, subItems, reason+" (part of failed batch transaction "+fmt.Sprint(tx.ID)+")", policyVersion, tx.ID)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		txs = append(txs, t)
		if err := txErr(t); err != nil {
			errs = append(errs, err)
		}
	}
	return txs, errors.Join(append([]error{txErr(tx)}, errs...)...)
}

// runWhole journals and runs one whole transaction of planned items.
func (e *Engine) runWhole(ctx context.Context, items []Item, reason, policyVersion string, batch uint64) (*Tx, error) {
	var size int64
	for _, it := range items {
		if it.Payload != nil {
			size += it.Payload.Size
		}
		if it.FromPayload != nil {
			size += it.FromPayload.Size
		}
	}
	need := uint64(size)*2 + e.cfg.MinFree
	if free, err := e.cfg.Packages.FreeSpace(ctx); err == nil && free < need {
		return nil, fmt.Errorf("install %s: not enough free disk: %d bytes free, need %d", itemsString(items), free, need)
	}
	tx, err := e.j.createBatch(KindInstall, items, reason, policyVersion, batch)
	if err != nil {
		return nil, err
	}
	e.noteUrgency(tx)
	e.run(ctx, tx)
	return tx, nil
}

// applyForward installs a whole transaction's new versions and removals
// in one apt run from the placed payloads.
func (e *Engine) applyForward(ctx context.Context, tx *Tx) error {
	var pkgs []PkgVersion
	var remove []string
	for _, it := range tx.Items {
		if it.To == "" {
			remove = append(remove, it.Package)
		} else {
			pkgs = append(pkgs, PkgVersion{it.Package, it.To})
		}
	}
	before, err := e.cfg.Packages.Installed(ctx)
	if err != nil {
		return err
	}
	tx.before = before
	return e.cfg.Packages.Apply(ctx, pkgs, remove, false, true)
}

// checkNothingElseRemoved compares the installed packages with those
// before the install: only the transaction's removals may be missing.
func (e *Engine) checkNothingElseRemoved(ctx context.Context, tx *Tx) error {
	if tx.before == nil {
		return nil
	}
	now, err := e.cfg.Packages.Installed(ctx)
	if err != nil {
		return err
	}
	planned := map[string]bool{}
	for _, it := range tx.Items {
		planned[it.Package] = true
	}
	var gone []string
	for pkg := range tx.before {
		if _, ok := now[pkg]; !ok && !planned[pkg] {
			gone = append(gone, pkg)
		}
	}
	sort.Strings(gone)
	if len(gone) > 0 {
		return fmt.Errorf("packages outside the transaction were removed: %s", strings.Join(gone, ", "))
	}
	return nil
}

// restoreWhole brings every item back to its From version in one apt run
// with downgrades allowed: previous versions reinstalled from the content
// store, added packages removed, removed ones reinstalled.
func (e *Engine) restoreWhole(ctx context.Context, items []Item) error {
	var pkgs []PkgVersion
	var remove []string
	noDownload := true
	for _, it := range items {
		cur, _ := e.cfg.Packages.InstalledVersion(ctx, it.Package)
		if cur == it.From {
			continue
		}
		if it.From == "" {
			remove = append(remove, it.Package)
			continue
		}
		if it.FromPayload != nil {
			if err := e.place(ctx, it.Source, it.Package, it.Arch, it.From, it.FromPayload); err != nil {
				return err
			}
		} else {
			noDownload = false // the policy accepted it without a kept payload
		}
		pkgs = append(pkgs, PkgVersion{it.Package, it.From})
	}
	if len(pkgs) == 0 && len(remove) == 0 {
		return nil
	}
	if err := e.cfg.Packages.WaitLock(ctx, e.cfg.LockTimeout); err != nil {
		return err
	}
	if err := e.cfg.Packages.Apply(ctx, pkgs, remove, true, noDownload); err != nil {
		return err
	}
	var wrong []string
	for _, it := range items {
		if v, err := e.cfg.Packages.InstalledVersion(ctx, it.Package); err != nil || v != it.From {
			wrong = append(wrong, fmt.Sprintf("%s is at %q, want %q", it.Package, v, it.From))
		}
	}
	if len(wrong) > 0 {
		return fmt.Errorf("after the rollback: %s", strings.Join(wrong, "; "))
	}
	return nil
}

// settle leaves the node consistent after a rollback failed: dpkg's
// interrupted work finished, and if a package that was installed before
// the transaction is missing, the transaction's new set installed again
// (apt installed it once, so it is consistent).
func (e *Engine) settle(ctx context.Context, tx *Tx) string {
	if audit, _ := e.cfg.Packages.Audit(ctx); len(audit) > 0 {
		if err := e.cfg.Packages.ConfigurePending(ctx); err != nil {
			e.cfg.Log.Warn("engine: dpkg --configure -a after a failed rollback", "err", err)
		}
	}
	var missing []string
	for _, it := range tx.Items {
		if it.From == "" {
			continue
		}
		if v, _ := e.cfg.Packages.InstalledVersion(ctx, it.Package); v == "" && it.To != "" {
			missing = append(missing, it.Package)
		}
	}
	audit, _ := e.cfg.Packages.Audit(ctx)
	if len(missing) == 0 && len(audit) == 0 {
		return "the node is consistent (dpkg --audit clean, nothing that was installed before is missing)"
	}
	var why []string
	if len(missing) > 0 {
		why = append(why, "missing: "+strings.Join(missing, ", "))
	}
	if len(audit) > 0 {
		why = append(why, "dpkg --audit: "+strings.Join(audit, ", "))
	}
	if err := e.applyForward(ctx, tx); err != nil {
		return fmt.Sprintf("%s; installing the new set again failed: %v", strings.Join(why, "; "), err)
	}
	return fmt.Sprintf("%s: the new set was installed again", strings.Join(why, "; "))
}

// recordResults writes where each package of tx is now.
func (e *Engine) recordResults(ctx context.Context, tx *Tx, changed bool) {
	for i := range tx.Items {
		it := &tx.Items[i]
		v, _ := e.cfg.Packages.InstalledVersion(ctx, it.Package)
		it.Now = v
		switch {
		case !changed && v == it.From:
			it.Result = ResultUnchanged
		case v == it.To && it.To == "":
			it.Result = ResultRemoved
		case v == it.To:
			it.Result = ResultInstalled
		case v == it.From:
			it.Result = ResultRestored
		default:
			it.Result = ResultStuck
		}
	}
}

// stuck lists the items neither at their old nor at their new version.
func stuck(tx *Tx) []string {
	var out []string
	for _, it := range tx.Items {
		if it.Result == ResultStuck {
			out = append(out, fmt.Sprintf("%s at %q (was %q, planned %q)", it.Package, it.Now, it.From, it.To))
		}
	}
	return out
}
