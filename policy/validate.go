package policy

import (
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Validate checks p the way Parse checks a file and prepares it for
// evaluation. It returns a *ValidationError listing every problem (without
// positions). Parse and ParseJSON call it; call it on a Policy built in Go.
func (p *Policy) Validate() error {
	ps := &problems{}
	validate(p, ps)
	if err := ps.err(""); err != nil {
		p.valid = false
		return err
	}
	p.valid = true
	return nil
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

const nameRule = "use 1-63 lowercase letters, digits, - or _, starting with a letter or digit"

// validate checks everything that concerns more than one value and compiles
// schedules, zones and times. It reports into ps.
func validate(p *Policy, ps *problems) {
	v := &validator{p: p, ps: ps, rings: map[string]int{}}
	v.top()
	v.ringsAndGates()
	v.windows()
	v.approvals()
	v.holds()
	v.urgent()
	v.reboot(&p.Reboot, "reboot")
	for i := range p.Rings {
		if o := p.Rings[i].Reboot; o != nil {
			v.rebootOverride(o, indexPath("rings", i)+".reboot")
		}
	}
	v.healthCheck(p.HealthCheck, "health_check")
	switch d := p.SelfUpdate.HealthDeadline; {
	case d < 0:
		v.ps.at("self_update.health_deadline", "must not be negative, e.g. 5m")
	case d > 0 && d.Std() < 10*time.Second:
		v.ps.at("self_update.health_deadline", "%s is too short for an agent to start, rejoin gossip and verify its policy; use at least 10s", d)
	case d.Std() > MaxSelfHealthDeadline:
		v.ps.at("self_update.health_deadline", "%s is too long; use at most %s", d, FormatDuration(MaxSelfHealthDeadline))
	}
	for i, g := range p.Transactions.AllowRemove {
		at := indexPath("transactions.allow_remove", i)
		v.required(g, at, "a package glob, e.g. linux-image-*")
		if g != "" {
			v.glob(g, at)
		}
	}
	v.console(p.Console)
	v.unmanaged(&p.Unmanaged)
	for i, g := range p.Transactions.WithoutRollback {
		at := indexPath("transactions.without_rollback", i)
		v.required(g, at, "a package glob")
		if g != "" {
			v.glob(g, at)
		}
	}
	v.restartServices(&p.RestartServices)
	v.hook(p.RebootHooks.PreReboot, "reboot_hooks.pre_reboot")
	v.hook(p.RebootHooks.PostReboot, "reboot_hooks.post_reboot")
}

func (v *validator) restartServices(rs *RestartServices) {
	switch rs.Mode {
	case "", RestartAuto, RestartNotify, RestartNever:
	default:
		v.ps.at("restart_services.mode", "'%s' is not a restart mode; use auto, notify or never", rs.Mode)
	}
	for _, l := range []struct {
		name  string
		globs []string
	}{{"include", rs.Include}, {"exclude", rs.Exclude}} {
		for i, g := range l.globs {
			at := indexPath("restart_services."+l.name, i)
			v.required(g, at, "a service name or glob, e.g. nginx or php*-fpm")
			if g != "" {
				v.glob(g, at)
			}
		}
	}
}

func (v *validator) hook(h *Hook, at string) {
	if h == nil {
		return
	}
	if len(h.Command) == 0 || h.Command[0] == "" {
		v.ps.at(at+".command", "is required: the program and its arguments, e.g. [/usr/local/bin/drain, --wait]")
	} else if !strings.HasPrefix(h.Command[0], "/") {
		v.ps.at(at+".command", "'%s' must be an absolute path: hooks run with a fixed PATH", h.Command[0])
	}
	switch {
	case h.Timeout <= 0:
		v.ps.at(at+".timeout", "must be above 0, e.g. 2m")
	case h.Timeout.Std() > MaxHookTimeout:
		v.ps.at(at+".timeout", "%s is too long; use at most %s", h.Timeout, FormatDuration(MaxHookTimeout))
	}
	switch {
	case h.MaxOutput < 0:
		v.ps.at(at+".max_output", "must not be negative (bytes kept of the hook's output; 0: %d)", DefaultHookOutput)
	case h.MaxOutput > MaxHookOutput:
		v.ps.at(at+".max_output", "%d bytes is too much to keep and report; use at most %d", h.MaxOutput, MaxHookOutput)
	}
}

type validator struct {
	p     *Policy
	ps    *problems
	rings map[string]int // name -> index
}

func (v *validator) top() {
	p := v.p
	switch {
	case p.Schema == 0:
		v.ps.at("schema", "is required; write schema: %d", SchemaVersion)
	case p.Schema != SchemaVersion:
		v.ps.at("schema", "schema %d is not supported; this patchring reads schema %d", p.Schema, SchemaVersion)
	}
	if p.Expires.IsZero() {
		v.ps.at("expires", "is required: the time after which agents stop following this policy, e.g. 2027-01-31T00:00:00Z")
	}
	p.Expires = p.Expires.UTC()
	if len(p.Name) > 200 {
		v.ps.at("name", "is %d characters long; use at most 200", len(p.Name))
	}
}

func (v *validator) ringsAndGates() {
	p := v.p
	if len(p.Rings) == 0 {
		v.ps.at("rings", "at least one ring is required, e.g. [{name: broad, default: true}]")
		return
	}
	var defaults []int
	for i, r := range p.Rings {
		rp := indexPath("rings", i)
		switch {
		case r.Name == "":
			v.ps.at(rp+".name", "is required")
		case !nameRE.MatchString(r.Name):
			v.ps.at(rp+".name", "%q is not a valid ring name; %s", r.Name, nameRule)
		default:
			if j, dup := v.rings[r.Name]; dup {
				v.ps.at(rp+".name", "ring %q is already defined by rings[%d]; ring names must be unique", r.Name, j)
			} else {
				v.rings[r.Name] = i
			}
		}
		if r.Default {
			defaults = append(defaults, i)
		}
	}
	switch {
	case len(defaults) == 0:
		v.ps.at("rings", "no default ring: mark the ring for nodes no selector matches with default: true")
	case len(defaults) > 1:
		for _, i := range defaults[1:] {
			v.ps.at(indexPath("rings", i)+".default", "rings[%d] is already the default ring; only one ring may be", defaults[0])
		}
	}
	for i := range p.Rings {
		r := &p.Rings[i]
		rp := indexPath("rings", i)
		if len(r.Select) == 0 && !r.Default {
			v.ps.at(rp, "ring %q has no select and is not the default ring, so no node can join it; add select: [{tags: [...]}]", r.Name)
		}
		for j := range r.Select {
			v.selector(&r.Select[j], indexPath(rp+".select", j))
		}
		if r.Defer < 0 {
			v.ps.at(rp+".defer", "must not be negative")
		}
		if r.Deadline < 0 {
			v.ps.at(rp+".deadline", "must not be negative")
		}
		if r.Deadline > 0 && r.Deadline < r.Defer {
			v.ps.at(rp+".deadline", "%s is shorter than defer (%s); the deadline counts from first seen too, so make it at least the deferral", r.Deadline, r.Defer)
		}
		for j, g := range r.Gates {
			gp := indexPath(rp+".gates", j)
			v.ringRef(g.Ring, gp+".ring", true)
			if g.Ring == r.Name && g.Ring != "" {
				v.ps.at(gp+".ring", "a ring cannot wait for itself")
			}
			if math.IsNaN(g.MinSuccess) || g.MinSuccess < 0 || g.MinSuccess > 100 {
				v.ps.at(gp+".min_success", "%v is out of range; use a percentage from 0 to 100", g.MinSuccess)
			}
			if g.MinNodes < 1 {
				v.ps.at(gp+".min_nodes", "%d is out of range; use at least 1", g.MinNodes)
			}
			v.gateTooFewReports(g, gp)
			switch g.Scope {
			case "", ScopeSite, ScopeFleet:
			default:
				v.ps.at(gp+".scope", "%q is not a scope; use site (count the node's own site, the default) or fleet (count every site, from the console's signed fleet status)", g.Scope)
			}
		}
		v.healthCheck(r.HealthCheck, rp+".health_check")
	}
	v.gateCycles()
}

// gateCycles reports gates that wait for each other in a circle.
func (v *validator) gateCycles() {
	p := v.p
	state := make([]int, len(p.Rings)) // 0 new, 1 on stack, 2 done
	var stack []int
	reported := false
	var visit func(i int)
	visit = func(i int) {
		state[i] = 1
		stack = append(stack, i)
		for j, g := range p.Rings[i].Gates {
			k, ok := v.rings[g.Ring]
			if !ok || k == i {
				continue
			}
			switch state[k] {
			case 0:
				visit(k)
			case 1:
				if !reported {
					reported = true
					at := slices.Index(stack, k)
					var names []string
					for _, s := range stack[at:] {
						names = append(names, p.Rings[s].Name)
					}
					names = append(names, p.Rings[k].Name)
					v.ps.at(indexPath(indexPath("rings", i)+".gates", j)+".ring",
						"gates wait for each other in a circle (%s), so none of these rings would ever install", strings.Join(names, " -> "))
				}
			}
		}
		stack = stack[:len(stack)-1]
		state[i] = 2
	}
	for i := range p.Rings {
		if state[i] == 0 {
			visit(i)
		}
	}
}

func (v *validator) selector(s *Selector, sp string) {
	if len(s.Tags) == 0 && s.Hostname == "" && s.Site == "" && s.Percent == 0 && !v.ps.badUnder(sp) {
		v.ps.at(sp, "an empty selector matches nothing; set tags, hostname, site or percent")
	}
	for k, t := range s.Tags {
		v.word(t, indexPath(sp+".tags", k), "tag")
	}
	if s.Hostname != "" {
		v.glob(s.Hostname, sp+".hostname")
	}
	if s.Site != "" {
		v.glob(s.Site, sp+".site")
	}
	if s.Percent != 0 || math.IsNaN(s.Percent) {
		switch {
		case math.IsNaN(s.Percent) || s.Percent <= 0 || s.Percent > 100:
			v.ps.at(sp+".percent", "%v is out of range; use a percentage above 0 and at most 100", s.Percent)
		case math.Abs(s.Percent*100-math.Round(s.Percent*100)) > 1e-6:
			v.ps.at(sp+".percent", "%v has too many decimals; use at most two (e.g. 12.5)", s.Percent)
		}
	}
}

// ringRef checks that name is a defined ring.
func (v *validator) ringRef(name, at string, required bool) {
	if name == "" {
		if required {
			v.ps.at(at, "is required: the name of a ring")
		}
		return
	}
	if _, ok := v.rings[name]; !ok {
		v.ps.at(at, "unknown ring %q; rings are: %s", name, strings.Join(v.ringNames(), ", "))
	}
}

func (v *validator) ringRefs(names []string, at string) {
	for i, n := range names {
		v.ringRef(n, indexPath(at, i), true)
	}
}

func (v *validator) ringNames() []string {
	names := make([]string, 0, len(v.p.Rings))
	for _, r := range v.p.Rings {
		if r.Name != "" && !slices.Contains(names, r.Name) {
			names = append(names, r.Name)
		}
	}
	return names
}

func (v *validator) glob(pattern, at string) {
	if strings.ContainsAny(pattern, " \t\n") {
		v.ps.at(at, "'%s' contains spaces; patterns use * ? and [...]", pattern)
		return
	}
	if _, err := path.Match(pattern, ""); err != nil {
		v.ps.at(at, "'%s' is not a valid pattern; use * for any text, ? for one character, [...] for a set", pattern)
	}
}

// word checks a single token such as a tag, package name or version.
func (v *validator) word(s, at, what string) {
	switch {
	case s == "":
		v.ps.at(at, "an empty %s is not allowed", what)
	case strings.ContainsAny(s, " \t\n\r"):
		v.ps.at(at, "%s '%s' contains spaces", what, s)
	case len(s) > 255:
		v.ps.at(at, "%s is %d characters long; use at most 255", what, len(s))
	}
}

// exact checks a value that must not be a pattern.
func (v *validator) exact(s, at, what string) {
	v.word(s, at, what)
	if strings.ContainsAny(s, "*?[") {
		v.ps.at(at, "%s '%s' must be exact here, not a pattern", what, s)
	}
}

func (v *validator) windows() {
	names := map[string]int{}
	for i := range v.p.Windows {
		w := &v.p.Windows[i]
		wp := indexPath("windows", i)
		switch {
		case w.Name == "":
			v.ps.at(wp+".name", "is required")
		case !nameRE.MatchString(w.Name):
			v.ps.at(wp+".name", "%q is not a valid window name; %s", w.Name, nameRule)
		default:
			if j, dup := names[w.Name]; dup {
				v.ps.at(wp+".name", "window %q is already defined by windows[%d]; window names must be unique", w.Name, j)
			}
			names[w.Name] = i
		}
		if w.Action == "" {
			w.Action = WindowAllow
		}
		if w.Action != WindowAllow && w.Action != WindowBlock {
			v.ps.at(wp+".action", "'%s' is not a window action; use allow or block", w.Action)
		}
		v.ringRefs(w.Rings, wp+".rings")
		w.sched = v.schedule(w.Cron, w.TZ, w.Duration, wp)
		switch {
		case w.Margin < 0:
			v.ps.at(wp+".margin", "must not be negative, e.g. 30m")
		case w.Margin > 0 && w.Action == WindowBlock:
			v.ps.at(wp+".margin", "applies to allow windows only: a block window stops installs from its start")
		case w.Margin > 0 && w.Duration > 0 && w.Margin >= w.Duration:
			v.ps.at(wp+".margin", "%s leaves no time to start an install in a %s window; use less than the duration", w.Margin, w.Duration)
		}
	}
}

// schedule validates and compiles cron, tz and duration found under at.
func (v *validator) schedule(expr, tz string, dur Duration, at string) *schedule {
	ok := true
	if dur <= 0 {
		v.ps.at(at+".duration", "is required and must be above 0, e.g. 4h")
		ok = false
	} else if dur.Std() > maxWindowDuration {
		v.ps.at(at+".duration", "%s is too long; a window may stay open at most %s", dur, FormatDuration(maxWindowDuration))
		ok = false
	}
	var loc bool
	if tz == "" {
		v.ps.at(at+".tz", "is required: an IANA time zone like Europe/Berlin or America/New_York, UTC, or Local for each node's own zone")
	} else if _, err := loadLocation(tz); err != nil {
		v.ps.at(at+".tz", "%v", err)
	} else {
		loc = true
	}
	if expr == "" {
		v.ps.at(at+".cron", "is required, e.g. \"0 2 * * *\" (minute hour day-of-month month day-of-week)")
		return nil
	}
	if _, err := parseCron(expr); err != nil {
		v.ps.at(at+".cron", "%v", err)
		return nil
	}
	if !ok || !loc {
		return nil
	}
	s, err := compileSchedule(expr, tz, dur.Std())
	if err != nil {
		v.ps.at(at, "%v", err)
		return nil
	}
	return s
}

func (v *validator) urgent() {
	for i, u := range v.p.Urgent {
		up := indexPath("urgent", i)
		if !u.KEV && u.MinSeverity == "" && !v.ps.badUnder(up) {
			v.ps.at(up, "an urgent rule needs kev: true or min_severity")
		}
		if u.MinSeverity != "" && !slices.Contains(severities, u.MinSeverity) {
			v.ps.at(up+".min_severity", "'%s' is not a severity; use one of %s", u.MinSeverity, strings.Join(severities[1:], ", "))
		}
		if u.RebootDeadline < 0 {
			v.ps.at(up+".reboot_deadline", "must not be negative, e.g. 24h")
		}
		v.ringRefs(u.Rings, up+".rings")
	}
}

func (v *validator) approvals() {
	p := v.p
	for i, a := range p.AutoApprove {
		ap := indexPath("auto_approve", i)
		if len(a.Sources) == 0 && len(a.Classifications) == 0 && a.MinSeverity == "" && len(a.Packages) == 0 && !v.ps.badUnder(ap) {
			v.ps.at(ap, "a rule with no criteria would approve everything; set sources, classifications, min_severity or packages (packages: [\"*\"] to approve all)")
		}
		for k, s := range a.Sources {
			if !slices.Contains(sources, s) {
				v.ps.at(indexPath(ap+".sources", k), "'%s' is not a source; use one of %s", s, strings.Join(sources, ", "))
			}
		}
		for k, c := range a.Classifications {
			if !slices.Contains(classifications, c) {
				v.ps.at(indexPath(ap+".classifications", k), "'%s' is not a classification; use one of %s", c, strings.Join(classifications, ", "))
			}
		}
		if a.MinSeverity != "" && !slices.Contains(severities, a.MinSeverity) {
			v.ps.at(ap+".min_severity", "'%s' is not a severity; use one of %s", a.MinSeverity, strings.Join(severities[1:], ", "))
		}
		for k, g := range a.Packages {
			v.glob(g, indexPath(ap+".packages", k))
		}
		v.ringRefs(a.Rings, ap+".rings")
	}
	for _, list := range []struct {
		name  string
		items []Approval
	}{{"approve", p.Approve}, {"deny", p.Deny}} {
		for i, a := range list.items {
			ap := indexPath(list.name, i)
			if a.Package == "" {
				v.ps.at(ap+".package", "is required: a package name or pattern")
			} else {
				v.glob(a.Package, ap+".package")
			}
			if a.Version != "" {
				v.glob(a.Version, ap+".version")
			}
			v.ringRefs(a.Rings, ap+".rings")
		}
	}
}

// holds checks pins, expedite, pauses and rollbacks.
func (v *validator) holds() {
	p := v.p
	for i, x := range p.Pins {
		xp := indexPath("pins", i)
		v.required(x.Package, xp+".package", "a package name or pattern")
		v.required(x.Version, xp+".version", "the version (or pattern) to hold the package at")
		if x.Package != "" {
			v.glob(x.Package, xp+".package")
		}
		if x.Version != "" {
			v.glob(x.Version, xp+".version")
		}
		v.ringRefs(x.Rings, xp+".rings")
		for j := range i {
			if y := p.Pins[j]; y.Package == x.Package && x.Package != "" && ringsOverlap(x.Rings, y.Rings) {
				v.ps.at(xp+".package", "%s is already pinned by pins[%d] in an overlapping set of rings; keep one pin per package and ring", x.Package, j)
			}
		}
	}
	for i, x := range p.Expedite {
		xp := indexPath("expedite", i)
		v.required(x.Package, xp+".package", "the exact package name")
		v.required(x.Version, xp+".version", "the exact version to install now")
		if x.Package != "" {
			v.exact(x.Package, xp+".package", "package")
		}
		if x.Version != "" {
			v.exact(x.Version, xp+".version", "version")
		}
		v.ringRefs(x.Rings, xp+".rings")
	}
	for i := range p.Pauses {
		x := &p.Pauses[i]
		xp := indexPath("pauses", i)
		v.ringRef(x.Ring, xp+".ring", true)
		if x.From.IsZero() {
			v.ps.at(xp+".from", "is required: when the pause starts, e.g. 2026-12-18T00:00:00Z")
		}
		if x.Until.IsZero() {
			v.ps.at(xp+".until", "is required: when the pause ends (at most %s after from)", FormatDuration(MaxPause))
		}
		x.From, x.Until = x.From.UTC(), x.Until.UTC()
		if !x.From.IsZero() && !x.Until.IsZero() {
			switch d := x.Until.Sub(x.From); {
			case d <= 0:
				v.ps.at(xp+".until", "is not after from")
			case d > MaxPause:
				v.ps.at(xp+".until", "pauses %s; a pause may last at most %s (renew it by publishing a new policy)", humanDuration(d), FormatDuration(MaxPause))
			}
		}
	}
	for i, x := range p.Rollbacks {
		xp := indexPath("rollbacks", i)
		v.required(x.Package, xp+".package", "the exact package name")
		v.required(x.Version, xp+".version", "the version (or pattern) to leave")
		if x.Package != "" {
			v.exact(x.Package, xp+".package", "package")
		}
		if x.Version != "" {
			v.glob(x.Version, xp+".version")
		}
		v.ringRefs(x.Rings, xp+".rings")
	}
}

func (v *validator) required(s, at, what string) {
	if s == "" {
		v.ps.at(at, "is required: %s", what)
	}
}

// ringsOverlap reports whether two ring lists (empty: all rings) share a ring.
func ringsOverlap(a, b []string) bool {
	if len(a) == 0 || len(b) == 0 {
		return true
	}
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

const maxRebootSpan = 90 * 24 * time.Hour

func (v *validator) span(d Duration, at string, positive bool) {
	switch {
	case d < 0:
		v.ps.at(at, "must not be negative")
	case positive && d == 0:
		v.ps.at(at, "must be above 0")
	case d.Std() > maxRebootSpan:
		v.ps.at(at, "%s is too long; use at most %s", d, FormatDuration(maxRebootSpan))
	}
}

func (v *validator) deferChoices(ds []Duration, at string) {
	if len(ds) > 10 {
		v.ps.at(at, "offers %d choices; offer at most 10", len(ds))
	}
	for i, d := range ds {
		v.span(d, indexPath(at, i), true)
		if slices.Index(ds, d) < i {
			v.ps.at(indexPath(at, i), "%s is offered twice", d)
		}
	}
}

func (v *validator) maxDeferrals(n int, choices []Duration, at string) {
	switch {
	case n < 0 || n > 100:
		v.ps.at(at, "%d is out of range; use 0 to 100", n)
	case n > 0 && len(choices) == 0:
		v.ps.at(at, "users may defer %d times but defer_choices is empty; offer choices like [1h, 4h, 1d] or set max_deferrals: 0", n)
	}
}

func (v *validator) reboot(r *Reboot, at string) {
	v.span(r.NotifyAhead, at+".notify_ahead", false)
	v.deferChoices(r.DeferChoices, at+".defer_choices")
	v.maxDeferrals(r.MaxDeferrals, r.DeferChoices, at+".max_deferrals")
	v.ringRefs(r.AllowRefuse.Rings, at+".allow_refuse.rings")
	for i, t := range r.AllowRefuse.Tags {
		v.word(t, indexPath(at+".allow_refuse.tags", i), "tag")
	}
	if len(r.AllowRefuse.Rings) == 0 {
		r.AllowRefuse.Rings = nil
	}
	if len(r.AllowRefuse.Tags) == 0 {
		r.AllowRefuse.Tags = nil
	}
	v.span(r.Deadline, at+".deadline", false)
	v.span(r.Grace, at+".grace", false)
	v.activeHours(r.ActiveHours, at+".active_hours")
	v.headless(r.Headless, at+".headless")
	v.userRestart(r.UserRestart, at+".user_restart")
}

func (v *validator) userRestart(s, at string) {
	switch s {
	case "", UserRestartSession, UserRestartNone:
	default:
		v.ps.at(at, "'%s' is not a choice; use session (the user at the machine may restart it) or none (only root and the admin group)", s)
	}
}

func (v *validator) rebootOverride(o *RebootOverride, at string) {
	if o.NotifyAhead != nil {
		v.span(*o.NotifyAhead, at+".notify_ahead", false)
	}
	v.deferChoices(o.DeferChoices, at+".defer_choices")
	if o.MaxDeferrals != nil {
		choices := o.DeferChoices
		if choices == nil {
			choices = v.p.Reboot.DeferChoices
		}
		v.maxDeferrals(*o.MaxDeferrals, choices, at+".max_deferrals")
	}
	if o.Deadline != nil {
		v.span(*o.Deadline, at+".deadline", false)
	}
	if o.Grace != nil {
		v.span(*o.Grace, at+".grace", false)
	}
	v.activeHours(o.ActiveHours, at+".active_hours")
	v.headless(o.Headless, at+".headless")
	v.userRestart(o.UserRestart, at+".user_restart")
}

var clockRE = regexp.MustCompile(`^([01][0-9]|2[0-3]):([0-5][0-9])$`)

func parseClock(s string) (int, bool) {
	m := clockRE.FindStringSubmatch(s)
	if m == nil {
		return 0, false
	}
	h := int(m[1][0]-'0')*10 + int(m[1][1]-'0')
	mi := int(m[2][0]-'0')*10 + int(m[2][1]-'0')
	return h*60 + mi, true
}

func (v *validator) activeHours(a *ActiveHours, at string) {
	if a == nil {
		return
	}
	var ok1, ok2 bool
	a.start, ok1 = parseClock(a.Start)
	if !ok1 {
		v.ps.at(at+".start", "'%s' is not a time of day; use 24-hour HH:MM like 08:00", a.Start)
	}
	a.end, ok2 = parseClock(a.End)
	if !ok2 {
		v.ps.at(at+".end", "'%s' is not a time of day; use 24-hour HH:MM like 18:00", a.End)
	}
	if ok1 && ok2 && a.start == a.end {
		v.ps.at(at+".end", "equals start; active hours need a span (end before start spans midnight)")
	}
	if a.TZ == "" {
		v.ps.at(at+".tz", "is required: an IANA time zone like Europe/Berlin, UTC, or Local for each node's own zone")
		return
	}
	loc, err := loadLocation(a.TZ)
	if err != nil {
		v.ps.at(at+".tz", "%v", err)
		return
	}
	a.loc = loc
}

func (v *validator) headless(h *Headless, at string) {
	if h == nil {
		return
	}
	h.sched = v.schedule(h.Cron, h.TZ, h.Duration, at)
	if h.MaxConcurrent < 0 {
		v.ps.at(at+".max_concurrent", "%d is out of range; use 0 (no limit) or more", h.MaxConcurrent)
	}
	if h.Per == "" {
		h.Per = "site"
	}
	if h.Per != "site" {
		g, ok := strings.CutPrefix(h.Per, "tag:")
		if !ok || g == "" {
			v.ps.at(at+".per", "'%s' is not a grouping; use site or tag:<pattern> (e.g. tag:rack-*)", h.Per)
		} else {
			v.glob(g, at+".per")
		}
	}
}

func (v *validator) healthCheck(h *HealthCheck, at string) {
	if h == nil {
		return
	}
	if len(h.Command) == 0 || h.Command[0] == "" {
		v.ps.at(at+".command", "is required: the program and its arguments, e.g. [/usr/local/bin/check, --quick]")
	}
	switch {
	case h.Timeout <= 0:
		v.ps.at(at+".timeout", "must be above 0, e.g. 60s")
	case h.Timeout.Std() > time.Hour:
		v.ps.at(at+".timeout", "%s is too long; use at most 1h", h.Timeout)
	}
}

// Summary describes the policy in one line: what it holds and when it
// expires, e.g. "3 rings, 2 windows, 1 deny rule; expires 2027-06-30 00:00 UTC".
func (p *Policy) Summary() string {
	parts := []string{plural(len(p.Rings), "ring")}
	add := func(n int, what string) {
		if n > 0 {
			parts = append(parts, plural(n, what))
		}
	}
	add(len(p.Windows), "window")
	add(len(p.AutoApprove), "auto-approval rule")
	add(len(p.Approve), "approval")
	add(len(p.Deny), "deny rule")
	add(len(p.Pins), "pin")
	add(len(p.Expedite), "expedited update")
	add(len(p.Pauses), "pause")
	add(len(p.Rollbacks), "rollback order")
	return strings.Join(parts, ", ") + fmt.Sprintf("; expires %s", p.Expires.UTC().Format(reasonTime))
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// gateTooFewReports checks what a gate does without enough reports.
func (v *validator) gateTooFewReports(g Gate, gp string) {
	switch g.TooFewReports {
	case "", TooFewReportsWait:
		if g.OpenAfter != 0 {
			v.ps.at(gp+".open_after", "has no effect while too_few_reports is wait; set too_few_reports: open, or remove open_after")
		}
	case TooFewReportsOpen:
		if g.OpenAfter <= 0 {
			v.ps.at(gp+".open_after", "too_few_reports: open needs a positive open_after (how long after first seen the gate opens without enough reports), e.g. 3d")
		}
	default:
		v.ps.at(gp+".too_few_reports", "%q is not a choice; use wait (hold the ring until min_nodes nodes reported) or open (open after open_after)", g.TooFewReports)
	}
}

var pinRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// console checks the console's address: an absolute https URL (http only
// on a loopback address), no credentials, query or fragment, and a pin of
// 64 lowercase hex digits, only with https.
func (v *validator) console(c *Console) {
	if c == nil {
		return
	}
	v.required(c.URL, "console.url", "the console's base URL, e.g. https://console.example:8443")
	if c.URL != "" {
		u, err := url.Parse(c.URL)
		switch {
		case err != nil:
			v.ps.at("console.url", "%q is not a URL: %v", c.URL, err)
		case u.Scheme != "https" && u.Scheme != "http" || u.Host == "":
			v.ps.at("console.url", "%q: want https://HOST[:PORT][/PATH]", c.URL)
		case u.User != nil || u.RawQuery != "" || u.Fragment != "":
			v.ps.at("console.url", "%q: no credentials, query or fragment", c.URL)
		case u.Scheme == "http" && !loopbackHost(u.Hostname()):
			v.ps.at("console.url", "%q: plain http only to a loopback address; use https", c.URL)
		case u.Scheme == "http" && c.TLSPin != "":
			v.ps.at("console.tls_pin", "a pin needs an https console.url")
		}
	}
	if c.TLSPin != "" && !pinRE.MatchString(c.TLSPin) {
		v.ps.at("console.tls_pin", "%q: want the hex SHA-256 (64 lowercase hex digits) of the certificate's public key", c.TLSPin)
	}
}

func loopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func (v *validator) unmanaged(u *Unmanaged) {
	switch {
	case u.Interval < 0:
		v.ps.at("unmanaged.interval", "must not be negative, e.g. 1m")
	case u.Interval > 0 && u.Interval.Std() < time.Second:
		v.ps.at("unmanaged.interval", "%s is too short; use at least 1s", u.Interval)
	case u.Interval.Std() > 24*time.Hour:
		v.ps.at("unmanaged.interval", "%s is too long; use at most 24h", u.Interval)
	}
	switch {
	case u.Expiry < 0:
		v.ps.at("unmanaged.expiry", "must not be negative, e.g. 24h")
	case u.Expiry > 0 && u.Expiry.Std() < u.EffectiveInterval()*2:
		v.ps.at("unmanaged.expiry", "%s is shorter than two intervals (%s): devices would expire between two looks", u.Expiry, FormatDuration(2*u.EffectiveInterval()))
	}
	if u.MaxPerNode < 0 || u.MaxPerNode > MaxUnmanagedPerNode {
		v.ps.at("unmanaged.max_per_node", "%d is out of range; use 1 to %d (0: %d)", u.MaxPerNode, MaxUnmanagedPerNode, DefaultUnmanagedPerNode)
	}
	if u.MaxPerSite < 0 || u.MaxPerSite > MaxUnmanagedPerSite {
		v.ps.at("unmanaged.max_per_site", "%d is out of range; use 1 to %d (0: %d)", u.MaxPerSite, MaxUnmanagedPerSite, DefaultUnmanagedPerSite)
	}
	s := u.Sweep
	if s == nil {
		return
	}
	if len(s.Sites) == 0 && len(s.Subnets) == 0 {
		v.ps.at("unmanaged.sweep", "names no sites and no subnets: say where the sweep runs, e.g. {sites: [branch-1]} or {subnets: [10.20.0.0/24]}")
	}
	for i, st := range s.Sites {
		if st == "" {
			v.ps.at(indexPath("unmanaged.sweep.sites", i), "must not be empty")
		}
	}
	for i, sn := range s.Subnets {
		pf, err := netip.ParsePrefix(sn)
		at := indexPath("unmanaged.sweep.subnets", i)
		switch {
		case err != nil:
			v.ps.at(at, "%q is not a subnet, e.g. 10.20.0.0/24", sn)
		case !pf.Addr().Is4():
			v.ps.at(at, "%q is not IPv4: the sweep sends ARP requests on IPv4 subnets only", sn)
		case pf.Masked() != pf:
			v.ps.at(at, "%q has host bits set; write %s", sn, pf.Masked())
		}
	}
	if s.Rate < 0 || s.Rate > MaxSweepRate {
		v.ps.at("unmanaged.sweep.rate", "%d probes/s is out of range; use 1 to %d (0: %d)", s.Rate, MaxSweepRate, DefaultSweepRate)
	}
	switch {
	case s.Every < 0:
		v.ps.at("unmanaged.sweep.every", "must not be negative, e.g. 6h")
	case s.Every > 0 && s.Every.Std() < time.Minute:
		v.ps.at("unmanaged.sweep.every", "%s is too short; use at least 1m", s.Every)
	}
	if !u.UnmanagedOn() {
		v.ps.at("unmanaged.sweep", "is set while unmanaged.enabled is false: discovery off sends nothing; remove one")
	}
}
