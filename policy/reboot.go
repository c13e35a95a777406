package policy

import (
	"path"
	"slices"
	"time"
)

// RebootRules are the reboot rules for one node: the policy's reboot block
// with the node's ring overrides applied.
type RebootRules struct {
	Ring         string          `json:"ring"`
	NotifyAhead  time.Duration   `json:"notify_ahead"`  // warn users this long before a forced reboot
	DeferChoices []time.Duration `json:"defer_choices"` // what a user may pick when deferring
	MaxDeferrals int             `json:"max_deferrals"` // how many times a user may defer one pending reboot
	AllowRefuse  bool            `json:"allow_refuse"`  // users may refuse outright (until the deadline)
	Deadline     time.Duration   `json:"deadline"`      // from when the update became due
	Grace        time.Duration   `json:"grace"`         // from when the restart became pending
	ActiveHours  *ActiveHours    `json:"active_hours,omitempty"`
	// UserRestart is who besides root and the admin group may restart on
	// demand: UserRestartSession or UserRestartNone, never empty.
	UserRestart string `json:"user_restart"`

	// AutoReboot is the window in which the node reboots by itself; set only
	// for headless nodes when the policy has a headless block.
	AutoReboot *Headless `json:"auto_reboot,omitempty"`
	// MaxConcurrent nodes of Group may reboot at once (0: no limit).
	MaxConcurrent int `json:"max_concurrent,omitempty"`
	// Group names the node's concurrency group, e.g. "site:berlin" or
	// "tag:rack-3".
	Group string `json:"group,omitempty"`
}

// RebootRules resolves the reboot rules for the node described by f.
func (p *Policy) RebootRules(f NodeFacts) RebootRules {
	ring, _ := RingFor(p, f)
	g := p.Reboot
	rr := RebootRules{
		Ring:         ring,
		NotifyAhead:  g.NotifyAhead.Std(),
		DeferChoices: stdDurations(g.DeferChoices),
		MaxDeferrals: g.MaxDeferrals,
		Deadline:     g.Deadline.Std(),
		Grace:        g.Grace.Std(),
		ActiveHours:  g.ActiveHours,
		UserRestart:  g.UserRestart,
	}
	headless := g.Headless
	if r, ok := p.Ring(ring); ok && r.Reboot != nil {
		o := r.Reboot
		if o.NotifyAhead != nil {
			rr.NotifyAhead = o.NotifyAhead.Std()
		}
		if o.DeferChoices != nil {
			rr.DeferChoices = stdDurations(o.DeferChoices)
		}
		if o.MaxDeferrals != nil {
			rr.MaxDeferrals = *o.MaxDeferrals
		}
		if o.Deadline != nil {
			rr.Deadline = o.Deadline.Std()
		}
		if o.Grace != nil {
			rr.Grace = o.Grace.Std()
		}
		if o.ActiveHours != nil {
			rr.ActiveHours = o.ActiveHours
		}
		if o.Headless != nil {
			headless = o.Headless
		}
		if o.UserRestart != "" {
			rr.UserRestart = o.UserRestart
		}
	}
	if rr.UserRestart == "" {
		rr.UserRestart = UserRestartSession
	}
	rr.AllowRefuse = slices.Contains(g.AllowRefuse.Rings, ring) ||
		slices.ContainsFunc(g.AllowRefuse.Tags, func(t string) bool { return slices.Contains(f.Tags, t) })
	if f.Headless && headless != nil {
		rr.AutoReboot = headless
		rr.MaxConcurrent = headless.MaxConcurrent
		rr.Group = concurrencyGroup(headless.Per, f)
	}
	return rr
}

func stdDurations(ds []Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Std()
	}
	return out
}

// concurrencyGroup names the group whose members share a reboot limit: the
// site, or the node's first tag (in sorted order) matching per's pattern;
// nodes without such a tag fall back to their site.
func concurrencyGroup(per string, f NodeFacts) string {
	if len(per) > 4 && per[:4] == "tag:" {
		tags := slices.Clone(f.Tags)
		slices.Sort(tags)
		for _, t := range tags {
			if ok, _ := path.Match(per[4:], t); ok {
				return "tag:" + t
			}
		}
	}
	return "site:" + f.Site
}

// EffectiveDeadline returns when a pending reboot must happen: the later of
// due+Deadline (due: when the update that needs it became due for the node)
// and pendingSince+Grace (pendingSince: when the restart became pending).
func (r RebootRules) EffectiveDeadline(due, pendingSince time.Time) time.Time {
	a := due.Add(r.Deadline)
	b := pendingSince.Add(r.Grace)
	if b.After(a) {
		return b
	}
	return a
}

// CanDefer reports whether a user who already deferred used times may defer
// by d: d must be one of the offered choices and used below the maximum.
func (r RebootRules) CanDefer(d time.Duration, used int) bool {
	return used < r.MaxDeferrals && slices.Contains(r.DeferChoices, d)
}

// InActiveHours reports whether t falls in the node's active hours (false
// when there are none).
func (r RebootRules) InActiveHours(t time.Time) bool {
	return r.ActiveHours.Contains(t)
}

// Contains reports whether t falls within the active hours.
func (a *ActiveHours) Contains(t time.Time) bool {
	if a == nil || a.loc == nil {
		return false
	}
	l := t.In(a.loc)
	m := l.Hour()*60 + l.Minute()
	if a.start < a.end {
		return m >= a.start && m < a.end
	}
	return m >= a.start || m < a.end
}

// HealthCheckFor returns the health check for ring: the ring's own, else the
// policy's, else nil.
func (p *Policy) HealthCheckFor(ring string) *HealthCheck {
	if r, ok := p.Ring(ring); ok && r.HealthCheck != nil {
		return r.HealthCheck
	}
	return p.HealthCheck
}

// Window returns the named window.
func (p *Policy) Window(name string) (*Window, bool) {
	for i := range p.Windows {
		if p.Windows[i].Name == name {
			return &p.Windows[i], true
		}
	}
	return nil, false
}

// Expired reports whether the policy has expired at now.
func (p *Policy) Expired(now time.Time) bool { return !now.Before(p.Expires) }
