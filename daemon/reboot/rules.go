package reboot

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Rules are the reboot rules that apply to this node now, from the signed
// policy. The zero value never forces a restart.
type Rules struct {
	// NotifyAhead is how long before an automatic restart the user is
	// reminded; no automatic restart comes sooner than Since+NotifyAhead.
	NotifyAhead time.Duration
	// DeferChoices are the deferrals a user may pick, in the policy's order.
	DeferChoices []Choice
	// MaxDeferrals is how many times a user may defer one pending restart.
	MaxDeferrals int
	// AllowRefuse lets users decline the restart ("Don't restart"): there
	// is then no automatic restart before the deadline.
	AllowRefuse bool
	// AdminRestartOnly lets only root and the admin group restart on
	// demand (policy reboot.user_restart: none); otherwise the user of an
	// active local session may too.
	AdminRestartOnly bool
	// Deadline and Grace, counted from when the restart became required:
	// the restart happens by the later of the two (the effective deadline),
	// and no automatic restart comes sooner than Since+Grace.
	Deadline time.Duration
	Grace    time.Duration
	// ActiveHours are when users work: no forced restart then before the
	// deadline. The zero value means none.
	ActiveHours ActiveHours
	// AutoWindow returns the automatic restart window open at t, or else the
	// next one (ok false: none). nil means automatic restarts may happen at
	// any time outside active hours. policy.Headless.Occurrence fits.
	AutoWindow func(t time.Time) (start, end time.Time, ok bool)
	// SiteConcurrency is how many headless hosts of Group may restart at
	// once; 0 means no limit (no lease is taken).
	SiteConcurrency int
	// Group names the concurrency group, e.g. "site:berlin" or
	// "tag:rack-3"; empty means "site:" + Config.Site.
	Group string
	// LeaseTTL is how long a restart lease lasts when its holder does not
	// come back to release it; zero means one hour.
	LeaseTTL time.Duration
	// Countdown are the times before an automatic restart at which a
	// countdown event is sent; nil means 15 minutes and 1 minute.
	Countdown []time.Duration
}

// Choice is one deferral the policy offers.
type Choice struct {
	// Key names the choice in requests ("1h", "4h"); empty means the
	// duration written compactly.
	Key string
	// Label names it for a human ("4 hours"); empty means derived from
	// Duration.
	Label string
	// Duration is how long the deferral lasts.
	Duration time.Duration
}

// ChoicesFromDurations turns the policy's deferral durations into choices
// with derived keys and labels.
func ChoicesFromDurations(ds []time.Duration) []Choice {
	out := make([]Choice, 0, len(ds))
	for _, d := range ds {
		out = append(out, Choice{Duration: d})
	}
	return out
}

func (c Choice) key() string {
	if c.Key != "" {
		return c.Key
	}
	return compactDuration(c.Duration)
}

func (c Choice) label() string {
	if c.Label != "" {
		return c.Label
	}
	return humanDuration(c.Duration)
}

// compactDuration writes d as "4h", "1h30m", "90s" (no zero units).
func compactDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// humanDuration writes d as "1 hour", "4 hours", "1 hour 30 minutes",
// "2 days".
func humanDuration(d time.Duration) string {
	unit := func(n int64, one string) string {
		if n == 1 {
			return "1 " + one
		}
		return strconv.FormatInt(n, 10) + " " + one + "s"
	}
	if d <= 0 {
		return "0 minutes"
	}
	var parts []string
	if days := int64(d / (24 * time.Hour)); days > 0 && d%(24*time.Hour) == 0 {
		return unit(days, "day")
	}
	if h := int64(d / time.Hour); h > 0 {
		parts = append(parts, unit(h, "hour"))
	}
	if m := int64(d % time.Hour / time.Minute); m > 0 {
		parts = append(parts, unit(m, "minute"))
	}
	if s := int64(d % time.Minute / time.Second); s > 0 || len(parts) == 0 {
		parts = append(parts, unit(s, "second"))
	}
	return strings.Join(parts, " ")
}

// ActiveHours is a daily span of wall-clock time in Location. Start after
// End spans midnight; Start equal to End means none.
type ActiveHours struct {
	Start, End time.Duration // since midnight
	Location   *time.Location
}

// ParseActiveHours reads "08:00", "18:00" and a time zone name (empty: the
// local zone).
func ParseActiveHours(start, end, tz string) (ActiveHours, error) {
	s, err := parseClock(start)
	if err != nil {
		return ActiveHours{}, fmt.Errorf("active hours start: %w", err)
	}
	e, err := parseClock(end)
	if err != nil {
		return ActiveHours{}, fmt.Errorf("active hours end: %w", err)
	}
	loc := time.Local
	if tz != "" {
		if loc, err = time.LoadLocation(tz); err != nil {
			return ActiveHours{}, fmt.Errorf("active hours time zone: %w", err)
		}
	}
	return ActiveHours{Start: s, End: e, Location: loc}, nil
}

func parseClock(s string) (time.Duration, error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a time of day like 08:00", s)
	}
	return time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute, nil
}

// IsZero reports whether there are no active hours.
func (a ActiveHours) IsZero() bool { return a.Start == a.End }

func (a ActiveHours) loc() *time.Location {
	if a.Location == nil {
		return time.Local
	}
	return a.Location
}

// Contains reports whether t falls within the active hours.
func (a ActiveHours) Contains(t time.Time) bool {
	if a.IsZero() {
		return false
	}
	l := t.In(a.loc())
	m := time.Duration(l.Hour())*time.Hour + time.Duration(l.Minute())*time.Minute + time.Duration(l.Second())*time.Second
	if a.Start < a.End {
		return m >= a.Start && m < a.End
	}
	return m >= a.Start || m < a.End
}

// nextEnd returns the first end of the active hours after t.
func (a ActiveHours) nextEnd(t time.Time) time.Time {
	l := t.In(a.loc())
	for day := 0; day < 3; day++ {
		end := time.Date(l.Year(), l.Month(), l.Day()+day, 0, 0, 0, 0, a.loc())
		end = time.Date(end.Year(), end.Month(), end.Day(), int(a.End/time.Hour), int(a.End%time.Hour/time.Minute), 0, 0, a.loc())
		if end.After(t) {
			return end
		}
	}
	return t.Add(24 * time.Hour)
}

// String is "08:00-18:00 Europe/Berlin".
func (a ActiveHours) String() string {
	if a.IsZero() {
		return ""
	}
	clock := func(d time.Duration) string {
		return fmt.Sprintf("%02d:%02d", int(d/time.Hour), int(d%time.Hour/time.Minute))
	}
	return clock(a.Start) + "-" + clock(a.End) + " " + a.loc().String()
}

// defaultCountdown are the countdown steps when the rules name none.
var defaultCountdown = []time.Duration{15 * time.Minute, time.Minute}

// normalized returns r with defaults applied and nonsense removed.
func (r Rules) normalized() Rules {
	r.NotifyAhead = max(r.NotifyAhead, 0)
	r.Deadline = max(r.Deadline, 0)
	r.Grace = max(r.Grace, 0)
	r.MaxDeferrals = max(r.MaxDeferrals, 0)
	if r.LeaseTTL <= 0 {
		r.LeaseTTL = time.Hour
	}
	cd := r.Countdown
	if cd == nil {
		cd = defaultCountdown
	}
	r.Countdown = nil
	for _, c := range cd {
		if c > 0 && !slices.Contains(r.Countdown, c) {
			r.Countdown = append(r.Countdown, c)
		}
	}
	slices.SortFunc(r.Countdown, func(a, b time.Duration) int { return cmp.Compare(b, a) }) // longest first
	r.DeferChoices = slices.DeleteFunc(slices.Clone(r.DeferChoices), func(c Choice) bool { return c.Duration <= 0 })
	return r
}

// deadline is the restart's deadline for st: the policy's effective
// deadline, or the one an urgent update set (record.UrgentBy) when that
// is sooner. The grace period does not extend an urgent deadline.
func (r Rules) deadline(st *record) (time.Time, bool) {
	dl, ok := r.EffectiveDeadline(st.Since)
	if !st.UrgentBy.IsZero() && (!ok || st.UrgentBy.Before(dl)) {
		return st.UrgentBy, true
	}
	return dl, ok
}

// EffectiveDeadline returns the later of since+Deadline and since+Grace;
// ok is false when the rules set neither.
func (r Rules) EffectiveDeadline(since time.Time) (time.Time, bool) {
	if r.Deadline <= 0 && r.Grace <= 0 {
		return time.Time{}, false
	}
	return since.Add(max(r.Deadline, r.Grace)), true
}

// lead is the longest notice an automatic restart gets.
func (r Rules) lead() time.Duration {
	l := r.NotifyAhead
	for _, c := range r.Countdown {
		l = max(l, c)
	}
	return l
}

// choice finds the offered choice named by s: its key, or a duration equal
// to one offered ("240m" for "4h").
func (r Rules) choice(s string) (Choice, bool) {
	s = strings.TrimSpace(s)
	for _, c := range r.DeferChoices {
		if strings.EqualFold(c.key(), s) {
			return c, true
		}
	}
	if d, err := time.ParseDuration(s); err == nil {
		for _, c := range r.DeferChoices {
			if c.Duration == d {
				return c, true
			}
		}
	}
	return Choice{}, false
}

func (r Rules) choiceKeys() string {
	keys := make([]string, 0, len(r.DeferChoices))
	for _, c := range r.DeferChoices {
		keys = append(keys, c.key())
	}
	if len(keys) == 0 {
		return "none"
	}
	return strings.Join(keys, ", ")
}

// Why an automatic restart happens, for logs and history.
const (
	ByDeadline = "deadline"
	ByWindow   = "maintenance window"
	ByDeferral = "end of deferral"
	BySchedule = "scheduled restart"
)

// plan returns the earliest time at or after earliest at which the rules
// restart st automatically, and why; ok is false when they never do.
func (r Rules) plan(st *record, earliest time.Time) (at time.Time, why string, ok bool) {
	if !st.Required || st.Rebooting {
		return time.Time{}, "", false
	}
	dl, hasDL := r.deadline(st)
	atDeadline := func() (time.Time, string, bool) {
		if !hasDL {
			return time.Time{}, "", false
		}
		return later(dl, earliest), ByDeadline, true
	}
	if !hasDL && r.AutoWindow == nil {
		return time.Time{}, "", false
	}
	earliest = later(earliest, st.RetryAt)
	if st.RefusedBy != "" {
		return atDeadline()
	}
	base := later(earliest, st.Since.Add(max(r.NotifyAhead, r.Grace)))
	why = BySchedule
	if st.DeferredUntil.After(base) {
		base, why = st.DeferredUntil, ByDeferral
	}
	t := base
	for range 1000 {
		if hasDL && !t.Before(dl) {
			return atDeadline()
		}
		if r.ActiveHours.Contains(t) {
			t, why = r.ActiveHours.nextEnd(t), BySchedule
			continue
		}
		if r.AutoWindow != nil {
			start, end, ok := r.AutoWindow(t)
			if !ok {
				return atDeadline()
			}
			if t.Before(start) {
				t, why = start, ByWindow
				continue
			}
			if !t.Before(end) { // a window function that does not move on
				return atDeadline()
			}
			why = ByWindow
		}
		return t, why, true
	}
	return atDeadline()
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
