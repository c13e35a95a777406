package policy

import (
	"fmt"
	"strings"
	"time"
	_ "time/tzdata" // zone names resolve the same on every node, Windows included

	"github.com/robfig/cron/v3"
)

// maxWindowDuration bounds how long one window occurrence may stay open.
const maxWindowDuration = 31 * 24 * time.Hour

// cronParser reads the standard 5-field form and the @yearly, @monthly,
// @weekly, @daily and @hourly descriptors.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// compileSchedule parses a cron expression for wall-clock time in tz.
func compileSchedule(expr, tz string, dur time.Duration) (*schedule, error) {
	loc, err := loadLocation(tz)
	if err != nil {
		return nil, err
	}
	spec, err := parseCron(expr)
	if err != nil {
		return nil, err
	}
	return &schedule{spec: spec, loc: loc, dur: dur}, nil
}

func parseCron(expr string) (spec *cron.SpecSchedule, err error) {
	e := strings.TrimSpace(expr)
	switch {
	case e == "":
		return nil, fmt.Errorf("empty cron expression; use 5 fields like \"0 2 * * *\" (minute hour day-of-month month day-of-week)")
	case strings.HasPrefix(e, "TZ=") || strings.HasPrefix(e, "CRON_TZ="):
		return nil, fmt.Errorf("%q: set the time zone with tz, not inside the cron expression", expr)
	case strings.HasPrefix(e, "@every"):
		return nil, fmt.Errorf("%q: @every is not tied to the clock; use 5 fields like \"0 */6 * * *\"", expr)
	}
	defer func() { // the parser is third-party code fed untrusted input
		if r := recover(); r != nil {
			spec, err = nil, fmt.Errorf("%q is not a valid cron expression", expr)
		}
	}()
	s, err := cronParser.Parse(e)
	if err != nil {
		return nil, fmt.Errorf("%q is not a valid cron expression (%v); use 5 fields like \"0 2 * * *\" (minute hour day-of-month month day-of-week)", expr, err)
	}
	ss, ok := s.(*cron.SpecSchedule)
	if !ok {
		return nil, fmt.Errorf("%q is not a calendar schedule; use 5 fields like \"0 2 * * *\"", expr)
	}
	c := *ss
	c.Location = time.UTC // wall-clock matching; the zone is applied by resolveWall
	if neverFires(&c) {
		return nil, fmt.Errorf("%q never fires: no month has that day", expr)
	}
	return &c, nil
}

// neverFires reports whether no date matches the day-of-month and month
// fields (e.g. "0 0 30 2 *"); a restricted day-of-week makes the day fields
// an OR, which always matches some day.
func neverFires(s *cron.SpecSchedule) bool {
	const star = 1 << 63
	if s.Dom&star != 0 || s.Dow&star == 0 {
		return false
	}
	maxDay := [13]int{0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}
	for m := 1; m <= 12; m++ {
		if s.Month&(1<<m) == 0 {
			continue
		}
		for d := 1; d <= maxDay[m]; d++ {
			if s.Dom&(1<<d) != 0 {
				return false
			}
		}
	}
	return true
}

// loadLocation resolves an IANA zone name; "" is UTC and "Local" is the
// node's own zone. Zone data is embedded (time/tzdata), so results do not
// depend on the host.
func loadLocation(tz string) (*time.Location, error) {
	switch tz {
	case "", "UTC":
		return time.UTC, nil
	case "Local":
		return time.Local, nil
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, fmt.Errorf("unknown time zone %q; use an IANA name like Europe/Berlin, America/New_York or UTC", tz)
	}
	return loc, nil
}

// wallOf returns t's wall clock in loc, labelled UTC so that calendar
// arithmetic on it knows no daylight saving time.
func wallOf(t time.Time, loc *time.Location) time.Time {
	l := t.In(loc)
	return time.Date(l.Year(), l.Month(), l.Day(), l.Hour(), l.Minute(), l.Second(), l.Nanosecond(), time.UTC)
}

func sameWall(t time.Time, loc *time.Location, w time.Time) bool {
	l := t.In(loc)
	return l.Year() == w.Year() && l.Month() == w.Month() && l.Day() == w.Day() &&
		l.Hour() == w.Hour() && l.Minute() == w.Minute() && l.Second() == w.Second()
}

// resolveWall turns a wall-clock time w (labelled UTC) into the instant it
// denotes in loc. When w occurs twice (clocks fall back) it is the first
// occurrence; when it does not occur (clocks spring forward) it is moved
// forward by the length of the gap.
func resolveWall(w time.Time, loc *time.Location) time.Time {
	t := time.Date(w.Year(), w.Month(), w.Day(), w.Hour(), w.Minute(), w.Second(), 0, loc)
	if loc == time.UTC {
		return t
	}
	// The offsets in effect a while before and after t: at a transition they
	// differ, and w minus each offset gives the candidate instants.
	_, before := t.Add(-12 * time.Hour).Zone()
	_, after := t.Add(12 * time.Hour).Zone()
	c1 := w.Add(-time.Duration(before) * time.Second).In(loc)
	c2 := w.Add(-time.Duration(after) * time.Second).In(loc)
	var best time.Time
	for _, c := range []time.Time{t, c1, c2} {
		if sameWall(c, loc, w) && (best.IsZero() || c.Before(best)) {
			best = c
		}
	}
	if !best.IsZero() {
		return best
	}
	// A gap: the later candidate keeps the wall-clock distance from the
	// start of the gap.
	if c1.After(c2) {
		return c1
	}
	return c2
}

// resolveMargin bounds how far resolveWall moves a time from its naive
// offset, so that scanning wall-clock matches this far beyond the first hit
// finds the earliest instant.
const resolveMargin = 3 * time.Hour

// nextStart returns the earliest start at or after t, or false when there is
// none within five years.
func (s *schedule) nextStart(t time.Time) (time.Time, bool) {
	// Near a clock change a wall-clock match before t's wall clock can land
	// at or after t, and a later match can land before an earlier one; only
	// there is it worth looking resolveMargin around.
	w := wallOf(t, s.loc).Add(-time.Nanosecond)
	if s.nearTransition(t) {
		w = w.Add(-resolveMargin)
	}
	var best, stopWall time.Time
	for range 4096 { // bounded: at most ~6h of minute-by-minute matches
		w = s.spec.Next(w)
		if w.IsZero() || (!stopWall.IsZero() && w.After(stopWall)) {
			break
		}
		c := resolveWall(w, s.loc)
		if c.Before(t) {
			continue
		}
		if best.IsZero() || c.Before(best) {
			best = c
		}
		if stopWall.IsZero() {
			if !s.nearTransition(c) {
				break
			}
			stopWall = w.Add(resolveMargin)
		}
	}
	return best, !best.IsZero()
}

// nearTransition reports whether the zone's offset changes within
// resolveMargin of t.
func (s *schedule) nearTransition(t time.Time) bool {
	if s.loc == time.UTC {
		return false
	}
	_, a := t.Add(-resolveMargin).In(s.loc).Zone()
	_, b := t.Add(resolveMargin).In(s.loc).Zone()
	return a != b
}

// lastStart returns the latest start in (after, t], if any.
func (s *schedule) lastStart(after, t time.Time) (time.Time, bool) {
	w := wallOf(t, s.loc)
	if s.nearTransition(t) {
		w = w.Add(resolveMargin)
	}
	floor := wallOf(after, s.loc).Add(-resolveMargin)
	var best, stopWall time.Time
	for range 4096 { // bounded: at most ~6h of minute-by-minute matches
		pw, ok := prevWall(s.spec, w, floor)
		if !ok || (!stopWall.IsZero() && pw.Before(stopWall)) {
			break
		}
		w = pw.Add(-time.Minute)
		c := resolveWall(pw, s.loc)
		if c.After(t) || !c.After(after) {
			continue
		}
		if best.IsZero() || c.After(best) {
			best = c
		}
		if stopWall.IsZero() {
			if !s.nearTransition(c) {
				break
			}
			stopWall = pw.Add(-resolveMargin)
		}
	}
	return best, !best.IsZero()
}

// prevWall returns the latest wall-clock time at or before w (both labelled
// UTC, minute resolution) that spec matches, looking back no further than
// floor.
func prevWall(spec *cron.SpecSchedule, w, floor time.Time) (time.Time, bool) {
	w = w.Truncate(time.Minute)
	lastDay := time.Date(w.Year(), w.Month(), w.Day(), 0, 0, 0, 0, time.UTC)
	floorDay := time.Date(floor.Year(), floor.Month(), floor.Day(), 0, 0, 0, 0, time.UTC)
	for day := lastDay; !day.Before(floorDay); day = day.AddDate(0, 0, -1) {
		if spec.Month&(1<<uint(day.Month())) == 0 || !dayMatches(spec, day) {
			continue
		}
		hStart := 23
		if day.Equal(lastDay) {
			hStart = w.Hour()
		}
		for h := hStart; h >= 0; h-- {
			if spec.Hour&(1<<uint(h)) == 0 {
				continue
			}
			mStart := 59
			if day.Equal(lastDay) && h == w.Hour() {
				mStart = w.Minute()
			}
			for m := mStart; m >= 0; m-- {
				if spec.Minute&(1<<uint(m)) != 0 {
					t := day.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute)
					if t.Before(floor) {
						return time.Time{}, false
					}
					return t, true
				}
			}
		}
	}
	return time.Time{}, false
}

// dayMatches mirrors cron's rule: when day-of-month or day-of-week is "*",
// both must match; when both are restricted, either may.
func dayMatches(s *cron.SpecSchedule, t time.Time) bool {
	const star = 1 << 63
	dom := s.Dom&(1<<uint(t.Day())) != 0
	dow := s.Dow&(1<<uint(t.Weekday())) != 0
	if s.Dom&star != 0 || s.Dow&star != 0 {
		return dom && dow
	}
	return dom || dow
}

// occurrence returns the occurrence open at t ([start, end) contains t) or,
// if none is open, the next one; ok is false when there is none in five years.
func (s *schedule) occurrence(t time.Time) (start, end time.Time, ok bool) {
	if st, ok := s.lastStart(t.Add(-s.dur), t); ok {
		return st, st.Add(s.dur), true
	}
	st, ok := s.nextStart(t)
	if !ok {
		return time.Time{}, time.Time{}, false
	}
	return st, st.Add(s.dur), true
}

// openAt returns the end of the occurrence open at t, if one is.
func (s *schedule) openAt(t time.Time) (end time.Time, ok bool) {
	st, ok := s.lastStart(t.Add(-s.dur), t)
	if !ok {
		return time.Time{}, false
	}
	return st.Add(s.dur), true
}

// Occurrence returns the occurrence of w open at t, or else the next one.
// ok is false when w does not open within five years or was not validated.
func (w *Window) Occurrence(t time.Time) (start, end time.Time, ok bool) {
	if w.sched == nil {
		return time.Time{}, time.Time{}, false
	}
	return w.sched.occurrence(t)
}

// Occurrence returns the automatic reboot window open at t, or else the
// next one. ok is false when there is none within five years or h was not
// validated.
func (h *Headless) Occurrence(t time.Time) (start, end time.Time, ok bool) {
	if h == nil || h.sched == nil {
		return time.Time{}, time.Time{}, false
	}
	return h.sched.occurrence(t)
}

// appliesTo reports whether w governs ring.
func (w *Window) appliesTo(ring string) bool {
	if len(w.Rings) == 0 {
		return true
	}
	for _, r := range w.Rings {
		if r == ring {
			return true
		}
	}
	return false
}

// ringWindows splits the windows governing ring by action.
func (p *Policy) ringWindows(ring string) (allow, block []*Window) {
	for i := range p.Windows {
		w := &p.Windows[i]
		if w.sched == nil || !w.appliesTo(ring) {
			continue
		}
		if w.Action == WindowBlock {
			block = append(block, w)
		} else {
			allow = append(allow, w)
		}
	}
	return allow, block
}

// blockedAt returns the block window open at t that stays open longest, and
// when it closes.
func blockedAt(block []*Window, t time.Time) (*Window, time.Time) {
	var by *Window
	var until time.Time
	for _, w := range block {
		if end, ok := w.sched.openAt(t); ok && end.After(until) {
			by, until = w, end
		}
	}
	return by, until
}

// allowedAt returns the allow window open at t that closes last, among
// those that stay open at least their margin after t (an install started
// later could not finish inside the window).
func allowedAt(allow []*Window, t time.Time) (*Window, time.Time) {
	var in *Window
	var until time.Time
	for _, w := range allow {
		if end, ok := w.sched.openAt(t); ok && !t.Add(w.Margin.Std()).After(end) && end.After(until) {
			in, until = w, end
		}
	}
	return in, until
}

// InWindow reports whether windows let ring install at t: no block window
// is open, and the ring has no allow windows or one of them is open. name is
// the window that decided: the open allow window, the open block window, or
// "" when no window governs the ring at t.
func (p *Policy) InWindow(ring string, t time.Time) (name string, ok bool) {
	allow, block := p.ringWindows(ring)
	if w, _ := blockedAt(block, t); w != nil {
		return w.Name, false
	}
	if len(allow) == 0 {
		return "", true
	}
	if w, _ := allowedAt(allow, t); w != nil {
		return w.Name, true
	}
	return "", false
}

// NextWindow returns the allow window of ring open at now, or the next one,
// with block windows taken out: start is the first instant at or after now
// when ring may install, end the moment that stops being true. ok is false
// when the ring has no allow windows (it may install whenever no block window
// is open) or none opens within a year.
func (p *Policy) NextWindow(ring string, now time.Time) (start, end time.Time, name string, ok bool) {
	allow, block := p.ringWindows(ring)
	if len(allow) == 0 {
		return time.Time{}, time.Time{}, "", false
	}
	slot, ok := nextSlot(allow, block, now, time.Time{}, now.AddDate(1, 0, 0))
	if !ok || slot.allow == nil {
		return time.Time{}, time.Time{}, "", false
	}
	end = slot.allowEnd
	for _, w := range block {
		if s, ok := w.sched.nextStart(slot.at); ok && s.Before(end) {
			end = s
		}
	}
	return slot.at, end, slot.allow.Name, true
}

// slot is the outcome of nextSlot.
type slot struct {
	at       time.Time
	allow    *Window   // the allow window open at at, nil when none was needed
	allowEnd time.Time // when allow closes
	blocked  *Window   // the first block window that pushed at back, if any
	deadline bool      // at was reached through the deadline, not a window
}

// nextSlot finds the first instant at or after t when installs may run:
// outside every block window and inside an allow window, unless there are no
// allow windows or deadline (if set) has passed. It gives up after horizon.
func nextSlot(allow, block []*Window, t, deadline, horizon time.Time) (slot, bool) {
	var out slot
	for range 1024 {
		if t.After(horizon) {
			return out, false
		}
		if w, until := blockedAt(block, t); w != nil {
			if out.blocked == nil {
				out.blocked = w
			}
			t = until
			continue
		}
		if len(allow) == 0 {
			out.at = t
			return out, true
		}
		if !deadline.IsZero() && !t.Before(deadline) {
			out.at, out.deadline = t, true
			return out, true
		}
		if w, until := allowedAt(allow, t); w != nil {
			out.at, out.allow, out.allowEnd = t, w, until
			return out, true
		}
		var next time.Time
		for _, w := range allow {
			if s, ok := w.sched.nextStart(t); ok && (next.IsZero() || s.Before(next)) {
				next = s
			}
		}
		switch {
		case !deadline.IsZero() && (next.IsZero() || next.After(deadline)):
			t = deadline
		case next.IsZero():
			return out, false
		default:
			t = next
		}
	}
	return out, false
}
