package policy

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Update is one (source, package, version) a node could install, as the
// engine sees it.
type Update struct {
	Source           string `json:"source"` // apt or catalog
	Package          string `json:"package"`
	Version          string `json:"version"`
	InstalledVersion string `json:"installed_version,omitempty"` // "" when not installed
	Classification   string `json:"classification,omitempty"`    // security, bugfix, enhancement, other
	Severity         string `json:"severity,omitempty"`          // low, medium, high, critical ("" unknown)
	// KEV is set when the update fixes a CVE in CISA's KEV catalog (from
	// the signed advisory database).
	KEV       bool      `json:"kev,omitempty"`
	FirstSeen time.Time `json:"first_seen"`       // when the fleet first saw it; zero counts as now
	Reboot    bool      `json:"reboot,omitempty"` // installing it needs a reboot
}

// UpdateKey identifies an update across the fleet.
type UpdateKey struct {
	Source  string `json:"source"`
	Package string `json:"package"`
	Version string `json:"version"`
}

// Key returns the fleet-wide identity of u.
func (u Update) Key() UpdateKey {
	return UpdateKey{Source: u.Source, Package: u.Package, Version: u.Version}
}

func (u Update) String() string {
	return fmt.Sprintf("%s %s %s", u.Source, u.Package, u.Version)
}

// RingStats counts the nodes of a ring by outcome for one update.
type RingStats struct {
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
	Total     int `json:"total"` // nodes in the ring
}

// FleetView is what gates read: how each ring fared with each update. A
// nil FleetView knows nothing, so every gate lacks reports.
type FleetView interface {
	// Get returns the stats of ring for update k (zero counts when
	// unknown; Total is the ring's size either way).
	Get(ring string, k UpdateKey) RingStats
}

// FleetStats holds, per ring name and update, how the ring fared: a
// FleetView from a table. A nil FleetStats knows nothing.
type FleetStats map[string]map[UpdateKey]RingStats

var _ FleetView = FleetStats(nil)

// Get returns the stats of ring for update k (zero when unknown).
func (s FleetStats) Get(ring string, k UpdateKey) RingStats {
	return s[ring][k]
}

// FleetWideView is a FleetView that also holds the fleet's numbers across
// every site (the console's signed fleet status document), which gates with
// scope: fleet read. ok is false when there is no usable document.
type FleetWideView interface {
	FleetView
	FleetWide(ring string, k UpdateKey) (st RingStats, ok bool)
}

// Scoped joins the site's view (what its members gossip) and the fleet's
// (the signed fleet status document; nil when there is none) for gates of
// either scope.
type Scoped struct {
	Site  FleetView
	Fleet FleetView
}

var _ FleetWideView = Scoped{}

// Get implements FleetView with the site's numbers.
func (s Scoped) Get(ring string, k UpdateKey) RingStats { return fleetGet(s.Site, ring, k) }

// FleetWide implements FleetWideView with the fleet's numbers.
func (s Scoped) FleetWide(ring string, k UpdateKey) (RingStats, bool) {
	if s.Fleet == nil {
		return RingStats{}, false
	}
	return s.Fleet.Get(ring, k), true
}

// gateStats returns what gate g counts for k, and a note when its scope's
// numbers are missing.
func gateStats(v FleetView, g Gate, k UpdateKey) (RingStats, string) {
	if g.Scope != ScopeFleet {
		return fleetGet(v, g.Ring, k), ""
	}
	if fw, ok := v.(FleetWideView); ok {
		if st, ok := fw.FleetWide(g.Ring, k); ok {
			return st, ""
		}
	}
	return RingStats{}, "; no verified fleet status document (scope: fleet counts every site's reports, which the console publishes)"
}

func fleetGet(v FleetView, ring string, k UpdateKey) RingStats {
	if v == nil {
		return RingStats{}
	}
	return v.Get(ring, k)
}

// Action is what a node should do about an update.
type Action string

// Actions, see Decision.
const (
	ActionInstallNow   Action = "install-now"   // install at once
	ActionInstallAt    Action = "install-at"    // approved; install at At, when a window opens or the deadline comes
	ActionWaitWindow   Action = "wait-window"   // a block window is open (At: planned time after it, zero if none in a year)
	ActionWaitGate     Action = "wait-gate"     // an earlier ring has not done well enough with this update yet
	ActionWaitDeferral Action = "wait-deferral" // the ring's deferral has not ended (At: planned install time)
	ActionDenied       Action = "denied"        // a deny entry or rollback order forbids this version
	ActionNotApproved  Action = "not-approved"  // no approve or auto_approve entry matches
	ActionPinned       Action = "pinned"        // the package is held at another version
	ActionPaused       Action = "paused"        // the ring is paused (At: when the pause ends)
	ActionRollback     Action = "rollback"      // leave the installed version (a rollback order)
	ActionExpired      Action = "expired"       // the policy itself expired or is unusable: install nothing
)

// Decision is what a node should do about one update, and why.
type Decision struct {
	Update Update    `json:"update"`
	Ring   string    `json:"ring"`
	Action Action    `json:"action"`
	At     time.Time `json:"at,omitzero"`      // when (see Action); zero when not known
	Window string    `json:"window,omitempty"` // the window that decides the time, if any
	Reason string    `json:"reason"`           // for people, e.g. "pilot: due 2026-12-03 02:00 UTC in window nightly"
	Rule   string    `json:"rule,omitempty"`   // path of the policy entry that decided, e.g. "deny[0]"
}

// reasonTime is how times appear in reasons.
const reasonTime = "2006-01-02 15:04 MST"

func fmtTime(t time.Time) string { return t.UTC().Format(reasonTime) }

// usable returns a validated policy for evaluation: p itself, or a validated
// deep copy when p was built in Go without calling Validate.
func usable(p *Policy) (*Policy, error) {
	if p == nil {
		return nil, fmt.Errorf("no policy")
	}
	if p.valid {
		return p, nil
	}
	b, err := marshalJSON(p)
	if err != nil {
		return nil, err
	}
	return ParseJSON(b, "")
}

// Evaluate decides, for each update in order, what the node described by f
// should do at now under policy p. It is a pure function: the same inputs
// give the same decisions. The rules apply in this order:
//
//  1. an expired (or unusable) policy installs nothing;
//  2. a rollback order for the installed version rolls it back;
//  3. deny entries and rollback orders forbid their versions (deny wins over
//     everything below, expedite included);
//  4. pins hold a package at matching versions;
//  5. expedite installs its exact version now, regardless of what follows;
//  6. a pause stops the ring until it ends;
//  7. the update needs an approve or auto_approve entry;
//  8. gates wait for earlier rings' success;
//  9. the deferral runs from first seen; then block windows stop installs,
//     and allow windows (if the ring has any) are the only times to install
//     until the ring's deadline passes. The deadline lets installs run
//     outside allow windows; it opens no gate, pause or block window.
func Evaluate(p *Policy, f NodeFacts, updates []Update, fleet FleetView, now time.Time) []Decision {
	out := make([]Decision, 0, len(updates))
	vp, err := usable(p)
	if err != nil {
		for _, u := range updates {
			out = append(out, Decision{Update: u, Action: ActionExpired, Rule: "policy",
				Reason: fmt.Sprintf("policy unusable (%s); installing nothing", firstLine(err.Error()))})
		}
		return out
	}
	ring, _ := RingFor(vp, f)
	e := evaluator{p: vp, f: f, ring: ring, ri: vp.ringIndex(ring), fleet: fleet, now: now}
	for _, u := range updates {
		d := e.decide(u)
		d.Update, d.Ring = u, ring
		out = append(out, d)
	}
	return out
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " ..."
	}
	return s
}

type evaluator struct {
	p     *Policy
	f     NodeFacts
	ring  string
	ri    int
	fleet FleetView
	now   time.Time
}

func (e *evaluator) decide(u Update) Decision {
	p, ring, now := e.p, e.ring, e.now
	if !now.Before(p.Expires) {
		return Decision{Action: ActionExpired, Rule: "expires",
			Reason: fmt.Sprintf("policy expired %s; installing nothing until a newer policy arrives", fmtTime(p.Expires))}
	}
	if e.ri < 0 {
		return Decision{Action: ActionExpired, Rule: "rings", Reason: "the policy puts this node in no ring; installing nothing"}
	}
	// Rollback orders: first the installed version, then the candidate.
	for i, rb := range p.Rollbacks {
		if rb.Package == u.Package && u.InstalledVersion != "" && inRings(rb.Rings, ring) && globMatch(rb.Version, u.InstalledVersion) {
			return Decision{Action: ActionRollback, At: now, Rule: indexPath("rollbacks", i),
				Reason: fmt.Sprintf("%s: rollbacks[%d] orders %s %s out of this ring; rolling back the installed version%s", ring, i, rb.Package, rb.Version, because(rb.Reason))}
		}
	}
	for i, rb := range p.Rollbacks {
		if rb.Package == u.Package && inRings(rb.Rings, ring) && globMatch(rb.Version, u.Version) {
			return Decision{Action: ActionDenied, Rule: indexPath("rollbacks", i),
				Reason: fmt.Sprintf("denied by rollbacks[%d] (%s %s)%s", i, rb.Package, rb.Version, because(rb.Reason))}
		}
	}
	for i, d := range p.Deny {
		if inRings(d.Rings, ring) && globMatch(d.Package, u.Package) && globMatch(d.Version, u.Version) {
			return Decision{Action: ActionDenied, Rule: indexPath("deny", i),
				Reason: fmt.Sprintf("denied by deny[%d] (%s)%s", i, entryText(d.Package, d.Version), because(d.Reason))}
		}
	}
	for i, pin := range p.Pins {
		if inRings(pin.Rings, ring) && globMatch(pin.Package, u.Package) && !globMatch(pin.Version, u.Version) {
			return Decision{Action: ActionPinned, Rule: indexPath("pins", i),
				Reason: fmt.Sprintf("pinned by pins[%d]: %s held at %s%s", i, pin.Package, pin.Version, because(pin.Reason))}
		}
	}
	for i, x := range p.Expedite {
		if x.Package == u.Package && x.Version == u.Version && inRings(x.Rings, ring) {
			return Decision{Action: ActionInstallNow, At: now, Rule: indexPath("expedite", i),
				Reason: fmt.Sprintf("%s: expedited by expedite[%d] (%s %s): installing now regardless of deferral, gates, windows and pauses%s", ring, i, x.Package, x.Version, because(x.Reason))}
		}
	}
	if i, until := e.pausedUntil(); i >= 0 {
		return Decision{Action: ActionPaused, At: until, Rule: indexPath("pauses", i),
			Reason: fmt.Sprintf("%s: paused until %s%s", ring, fmtTime(until), because(p.Pauses[i].Reason))}
	}
	approvedBy, approvedWhy := e.approval(u)
	if approvedBy == "" {
		return Decision{Action: ActionNotApproved, Rule: "approve",
			Reason: fmt.Sprintf("not approved: no approve or auto_approve entry matches %s (%s) in ring %s", u, describeClass(u), ring)}
	}
	r := &p.Rings[e.ri]
	var openedWithout []string
	for j, g := range r.Gates {
		rule := fmt.Sprintf("rings[%d].gates[%d]", e.ri, j)
		st, missing := gateStats(e.fleet, g, u.Key())
		ok, why := gateMet(g, st)
		if ok {
			continue
		}
		if g.Scope == ScopeFleet {
			why = "across the fleet, " + why
		}
		why += missing
		open, at, note := e.tooFewReports(g, st, u)
		if open {
			openedWithout = append(openedWithout, fmt.Sprintf("gate on ring %s (%s) opened without enough reports: %s; %s", g.Ring, rule, why, note))
			continue
		}
		return Decision{Action: ActionWaitGate, At: at, Rule: rule,
			Reason: fmt.Sprintf("%s: waiting for ring %s: %s%s", ring, g.Ring, why, note)}
	}
	d := e.timing(u, r, approvedBy, approvedWhy)
	for _, s := range openedWithout {
		d.Reason += "; " + s
	}
	return d
}

// tooFewReports applies the gate's choice for missing reports when st does
// not meet g. It reports whether the gate opens, and otherwise when it
// will (zero: not by time) and a note for the reason.
func (e *evaluator) tooFewReports(g Gate, st RingStats, u Update) (bool, time.Time, string) {
	reported := st.Succeeded + st.Failed
	if reported >= g.MinNodes {
		return false, time.Time{}, "" // enough reports, and they are not good enough
	}
	noMembers := ""
	where := "here"
	if g.Scope == ScopeFleet {
		where = "in the fleet"
	}
	if st.Total == 0 {
		noMembers = fmt.Sprintf("; no node of ring %s is known %s", g.Ring, where)
	} else if st.Total < g.MinNodes {
		noMembers = fmt.Sprintf("; ring %s has only %d known nodes %s", g.Ring, st.Total, where)
	}
	if g.TooFewReports != TooFewReportsOpen {
		return false, time.Time{}, noMembers + "; with too few reports this gate waits (too_few_reports: wait)"
	}
	if reported > 0 && 100*float64(st.Succeeded)/float64(reported) < g.MinSuccess {
		return false, time.Time{}, noMembers + "; the reports so far are below the success threshold, so the gate does not open by time"
	}
	first := u.FirstSeen
	if first.IsZero() {
		first = e.now
	}
	at := first.Add(g.OpenAfter.Std())
	if e.now.Before(at) {
		return false, at, fmt.Sprintf("%s; with too few reports it opens %s (too_few_reports: open, open_after %s)", noMembers, fmtTime(at), g.OpenAfter)
	}
	return true, at, fmt.Sprintf("too_few_reports: open, open_after %s passed %s%s", g.OpenAfter, fmtTime(at), noMembers)
}

func because(reason string) string {
	if reason == "" {
		return ""
	}
	return ": " + reason
}

func entryText(pkg, version string) string {
	if version == "" {
		return pkg + " (any version)"
	}
	return pkg + " " + version
}

func describeClass(u Update) string {
	c, s := u.Classification, u.Severity
	if c == "" {
		c = "unclassified"
	}
	if s == "" {
		s = SeverityUnknown
	}
	return c + ", " + s
}

// pausedUntil returns the pause in effect now for the node's ring and when
// the ring is free again, following pauses that overlap one another.
func (e *evaluator) pausedUntil() (int, time.Time) {
	first, t := -1, e.now
	for range len(e.p.Pauses) + 1 {
		moved := false
		for i, pa := range e.p.Pauses {
			if pa.Ring == e.ring && !t.Before(pa.From) && t.Before(pa.Until) {
				if first < 0 {
					first = i
				}
				t, moved = pa.Until, true
			}
		}
		if !moved {
			break
		}
	}
	return first, t
}

// approval returns the rule approving u in the node's ring and a short text.
func (e *evaluator) approval(u Update) (rule, why string) {
	for i, a := range e.p.Approve {
		if inRings(a.Rings, e.ring) && globMatch(a.Package, u.Package) && globMatch(a.Version, u.Version) {
			return indexPath("approve", i), fmt.Sprintf("approve[%d] (%s)", i, entryText(a.Package, a.Version))
		}
	}
	for i, x := range e.p.Urgent {
		if why := x.match(u, e.ring); why != "" {
			name := x.Name
			if name == "" {
				name = "urgent"
			}
			return indexPath("urgent", i), fmt.Sprintf("urgent[%d] (%s: %s)", i, name, why)
		}
	}
	for i, a := range e.p.AutoApprove {
		if a.match(u, e.ring) {
			name := a.Name
			if name == "" {
				name = describeClass(u)
			}
			return indexPath("auto_approve", i), fmt.Sprintf("auto_approve[%d] (%s)", i, name)
		}
	}
	return "", ""
}

// match says why x matches u in ring ("" when it does not).
func (x *Urgent) match(u Update, ring string) string {
	if !inRings(x.Rings, ring) {
		return ""
	}
	if x.KEV && u.KEV {
		return "fixes a known exploited vulnerability (KEV)"
	}
	if x.MinSeverity != "" && u.Severity != "" && severityRank(u.Severity) >= severityRank(x.MinSeverity) {
		return "fixes a " + u.Severity + " vulnerability"
	}
	return ""
}

// urgentRule returns the urgent rule approvedBy names, nil for another rule.
func (e *evaluator) urgentRule(approvedBy string) *Urgent {
	for i := range e.p.Urgent {
		if approvedBy == indexPath("urgent", i) {
			return &e.p.Urgent[i]
		}
	}
	return nil
}

func (a *AutoApproval) match(u Update, ring string) bool {
	if !inRings(a.Rings, ring) {
		return false
	}
	if len(a.Sources) > 0 && !slices.Contains(a.Sources, u.Source) {
		return false
	}
	if len(a.Classifications) > 0 && !slices.Contains(a.Classifications, u.Classification) {
		return false
	}
	if a.MinSeverity != "" && severityRank(u.Severity) < severityRank(a.MinSeverity) {
		return false
	}
	if len(a.Packages) > 0 && !slices.ContainsFunc(a.Packages, func(g string) bool { return globMatch(g, u.Package) }) {
		return false
	}
	return true
}

// gateMet reports whether st satisfies g, and if not, why.
func gateMet(g Gate, st RingStats) (bool, string) {
	reported := st.Succeeded + st.Failed
	rate := 0.0
	if reported > 0 {
		rate = 100 * float64(st.Succeeded) / float64(reported)
	}
	if reported >= g.MinNodes && rate >= g.MinSuccess {
		return true, ""
	}
	return false, fmt.Sprintf("%d of %d nodes reported (%d succeeded, %d failed, %s%% success); needs %s%% success over at least %d",
		reported, st.Total, st.Succeeded, st.Failed, formatPct(rate), formatPct(g.MinSuccess), g.MinNodes)
}

// timing applies deferral, deadline and windows to an approved update.
func (e *evaluator) timing(u Update, r *Ring, approvedBy, approvedWhy string) Decision {
	now, ring := e.now, e.ring
	first := u.FirstSeen
	if first.IsZero() {
		first = now
	}
	due := first.Add(r.Defer.Std())
	if x := e.urgentRule(approvedBy); x != nil && x.NoDeferral {
		due = first // the urgent rule skips the ring's deferral
	}
	var deadline time.Time
	if r.Deadline > 0 {
		deadline = first.Add(r.Deadline.Std())
	}
	t0 := now
	if due.After(now) {
		t0 = due
	}
	allow, block := e.p.ringWindows(ring)
	sl, ok := nextSlot(allow, block, t0, deadline, t0.AddDate(1, 0, 0))
	if !ok {
		d := Decision{Action: ActionWaitWindow, Rule: "windows",
			Reason: fmt.Sprintf("%s: no window lets this ring install within a year after %s; check the windows", ring, fmtTime(t0))}
		if w, _ := blockedAt(block, now); w != nil {
			d.Window, d.Rule = w.Name, e.windowRule(w)
		}
		return d
	}
	then := e.slotText(sl)
	if due.After(now) {
		reason := fmt.Sprintf("%s: waiting: deferral ends in %s (%s)", ring, humanDuration(due.Sub(now)), fmtTime(due))
		if !sl.at.Equal(due) || sl.allow != nil {
			reason += "; then due " + then
		}
		return Decision{Action: ActionWaitDeferral, At: sl.at, Window: windowName(sl.allow),
			Rule: fmt.Sprintf("rings[%d].defer", e.ri), Reason: reason}
	}
	if sl.at.Equal(now) {
		d := Decision{Action: ActionInstallNow, At: now, Window: windowName(sl.allow), Rule: approvedBy}
		switch {
		case sl.allow != nil:
			d.Reason = fmt.Sprintf("%s: approved by %s; in window %s until %s", ring, approvedWhy, sl.allow.Name, fmtTime(sl.allowEnd))
		case sl.deadline && len(allow) > 0:
			d.Rule = fmt.Sprintf("rings[%d].deadline", e.ri)
			d.Reason = fmt.Sprintf("%s: approved by %s; deadline %s has passed, installing outside maintenance windows", ring, approvedWhy, fmtTime(deadline))
		default:
			d.Reason = fmt.Sprintf("%s: approved by %s; deferral ended %s and no maintenance window restricts this ring", ring, approvedWhy, fmtTime(due))
		}
		return d
	}
	if w, until := blockedAt(block, now); w != nil {
		return Decision{Action: ActionWaitWindow, At: sl.at, Window: w.Name, Rule: e.windowRule(w),
			Reason: fmt.Sprintf("%s: blocked by window %s until %s; then due %s", ring, w.Name, fmtTime(until), then)}
	}
	d := Decision{Action: ActionInstallAt, At: sl.at, Window: windowName(sl.allow), Reason: fmt.Sprintf("%s: due %s", ring, then)}
	switch {
	case sl.allow != nil:
		d.Rule = e.windowRule(sl.allow)
	case sl.deadline:
		d.Rule = fmt.Sprintf("rings[%d].deadline", e.ri)
	case sl.blocked != nil:
		d.Rule = e.windowRule(sl.blocked)
	default:
		d.Rule = approvedBy
	}
	return d
}

// slotText describes when and why a slot opens: "2026-12-03 01:00 UTC in
// window nightly (02:00 Europe/Berlin)".
func (e *evaluator) slotText(sl slot) string {
	s := fmtTime(sl.at)
	switch {
	case sl.allow != nil:
		s += " in window " + sl.allow.Name
		if loc := sl.allow.sched.loc; loc != time.UTC {
			s += fmt.Sprintf(" (%s %s)", sl.at.In(loc).Format("15:04"), sl.allow.TZ)
		}
	case sl.deadline:
		s += " at the ring's install deadline"
	}
	if sl.blocked != nil {
		s += fmt.Sprintf(", after block window %s", sl.blocked.Name)
	}
	return s
}

func windowName(w *Window) string {
	if w == nil {
		return ""
	}
	return w.Name
}

func (e *evaluator) windowRule(w *Window) string {
	for i := range e.p.Windows {
		if &e.p.Windows[i] == w {
			return indexPath("windows", i)
		}
	}
	return "windows"
}

// Rollbacks returns a rollback decision for every installed package
// (f.Installed) that a rollback order tells the node's ring to leave, sorted
// by package name. It returns nothing once the policy has expired.
func Rollbacks(p *Policy, f NodeFacts, now time.Time) []Decision {
	vp, err := usable(p)
	if err != nil || !now.Before(vp.Expires) {
		return nil
	}
	ring, _ := RingFor(vp, f)
	e := evaluator{p: vp, f: f, ring: ring, ri: vp.ringIndex(ring), now: now}
	var out []Decision
	for _, pkg := range sortedKeys(f.Installed) {
		u := Update{Package: pkg, Version: f.Installed[pkg], InstalledVersion: f.Installed[pkg]}
		if d := e.decide(u); d.Action == ActionRollback {
			d.Update, d.Ring = u, ring
			out = append(out, d)
		}
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
