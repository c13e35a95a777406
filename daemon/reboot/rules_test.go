package reboot

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC) // a Monday, 09:00 UTC

func TestEffectiveDeadlineLaterWins(t *testing.T) {
	tests := []struct {
		name            string
		deadline, grace time.Duration
		want            time.Duration
		none            bool
	}{
		{"deadline later", 72 * time.Hour, 4 * time.Hour, 72 * time.Hour, false},
		{"grace later", 2 * time.Hour, 8 * time.Hour, 8 * time.Hour, false},
		{"only deadline", 24 * time.Hour, 0, 24 * time.Hour, false},
		{"only grace", 0, 6 * time.Hour, 6 * time.Hour, false},
		{"neither: never forced", 0, 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Rules{Deadline: tt.deadline, Grace: tt.grace}.EffectiveDeadline(t0)
			if ok == tt.none {
				t.Fatalf("ok = %v", ok)
			}
			if !tt.none && !got.Equal(t0.Add(tt.want)) {
				t.Errorf("effective deadline = %v, want %v", got, t0.Add(tt.want))
			}
		})
	}
}

func TestPlan(t *testing.T) {
	utc := time.UTC
	office := ActiveHours{Start: 8 * time.Hour, End: 18 * time.Hour, Location: utc}
	night := ActiveHours{Start: 20 * time.Hour, End: 6 * time.Hour, Location: utc} // spans midnight
	at := func(day, h, m int) time.Time { return time.Date(2026, 3, 2+day, h, m, 0, 0, utc) }
	// A window every night 02:00-04:00.
	nightly := func(t time.Time) (time.Time, time.Time, bool) {
		t = t.In(utc)
		for d := -1; d < 3; d++ {
			s := time.Date(t.Year(), t.Month(), t.Day()+d, 2, 0, 0, 0, utc)
			if e := s.Add(2 * time.Hour); t.Before(e) {
				return s, e, true
			}
		}
		return time.Time{}, time.Time{}, false
	}
	never := func(time.Time) (time.Time, time.Time, bool) { return time.Time{}, time.Time{}, false }
	base := Rules{NotifyAhead: time.Hour, Deadline: 72 * time.Hour}
	with := func(f func(*Rules)) Rules { r := base; f(&r); return r }
	tests := []struct {
		name    string
		rules   Rules
		rec     record
		now     time.Time
		want    time.Time
		wantWhy string
		none    bool
	}{
		{"no deadline, no window: never forced", Rules{NotifyAhead: time.Hour}, record{Required: true, Since: t0}, t0, time.Time{}, "", true},
		{"not required", base, record{}, t0, time.Time{}, "", true},
		{"notice after the requirement", base, record{Required: true, Since: t0}, t0, t0.Add(time.Hour), BySchedule, false},
		{"end of deferral", base, record{Required: true, Since: t0, DeferredUntil: t0.Add(4 * time.Hour)}, t0, t0.Add(4 * time.Hour), ByDeferral, false},
		{"not before now", base, record{Required: true, Since: t0}, t0.Add(5 * time.Hour), t0.Add(5 * time.Hour), BySchedule, false},
		{"active hours push to their end", with(func(r *Rules) { r.ActiveHours = office }), record{Required: true, Since: t0}, t0, at(0, 18, 0), BySchedule, false},
		{"active hours spanning midnight", with(func(r *Rules) { r.ActiveHours = night }), record{Required: true, Since: at(0, 21, 0)}, at(0, 21, 0), at(1, 6, 0), BySchedule, false},
		{"deadline inside active hours wins", with(func(r *Rules) { r.ActiveHours = office; r.Deadline = 3 * time.Hour }), record{Required: true, Since: t0}, t0, t0.Add(3 * time.Hour), ByDeadline, false},
		{"window", with(func(r *Rules) { r.AutoWindow = nightly }), record{Required: true, Since: t0}, t0, at(1, 2, 0), ByWindow, false},
		{"inside an open window", with(func(r *Rules) { r.AutoWindow = nightly }), record{Required: true, Since: at(1, 1, 0)}, at(1, 2, 30), at(1, 2, 30), ByWindow, false},
		{"window without a deadline", Rules{AutoWindow: nightly}, record{Required: true, Since: t0}, t0, at(1, 2, 0), ByWindow, false},
		{"window never opens: deadline", with(func(r *Rules) { r.AutoWindow = never }), record{Required: true, Since: t0}, t0, t0.Add(72 * time.Hour), ByDeadline, false},
		{"window after the deadline: deadline", with(func(r *Rules) { r.AutoWindow = nightly; r.Deadline = 6 * time.Hour }), record{Required: true, Since: t0}, t0, t0.Add(6 * time.Hour), ByDeadline, false},
		{"refused: deadline", base, record{Required: true, Since: t0, RefusedBy: "alice"}, t0, t0.Add(72 * time.Hour), ByDeadline, false},
		{"refused without deadline: never", Rules{AutoWindow: nightly}, record{Required: true, Since: t0, RefusedBy: "alice"}, t0, time.Time{}, "", true},
		{"past the deadline: now", base, record{Required: true, Since: t0}, t0.Add(100 * time.Hour), t0.Add(100 * time.Hour), ByDeadline, false},
		{"rebooting: nothing to plan", base, record{Required: true, Since: t0, Rebooting: true}, t0, time.Time{}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.rules.normalized()
			got, why, ok := r.plan(&tt.rec, tt.now)
			if ok == tt.none {
				t.Fatalf("ok = %v (at %v)", ok, got)
			}
			if tt.none {
				return
			}
			if !got.Equal(tt.want) || why != tt.wantWhy {
				t.Errorf("plan = %v (%s), want %v (%s)", got, why, tt.want, tt.wantWhy)
			}
		})
	}
}

func TestActiveHours(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatalf("load Europe/Berlin (install tzdata): %v", err)
	}
	ah, err := ParseActiveHours("08:00", "18:00", "Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		at       time.Time
		contains bool
		nextEnd  time.Time
	}{
		{"morning", time.Date(2026, 3, 2, 9, 0, 0, 0, berlin), true, time.Date(2026, 3, 2, 18, 0, 0, 0, berlin)},
		{"start is inside", time.Date(2026, 3, 2, 8, 0, 0, 0, berlin), true, time.Date(2026, 3, 2, 18, 0, 0, 0, berlin)},
		{"end is outside", time.Date(2026, 3, 2, 18, 0, 0, 0, berlin), false, time.Date(2026, 3, 3, 18, 0, 0, 0, berlin)},
		{"night", time.Date(2026, 3, 2, 23, 0, 0, 0, berlin), false, time.Date(2026, 3, 3, 18, 0, 0, 0, berlin)},
		{"DST day", time.Date(2026, 3, 29, 12, 0, 0, 0, berlin), true, time.Date(2026, 3, 29, 18, 0, 0, 0, berlin)},
		{"in UTC", time.Date(2026, 3, 2, 7, 30, 0, 0, time.UTC), true, time.Date(2026, 3, 2, 18, 0, 0, 0, berlin)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ah.Contains(tt.at); got != tt.contains {
				t.Errorf("Contains(%v) = %v", tt.at, got)
			}
			if got := ah.nextEnd(tt.at); !got.Equal(tt.nextEnd) {
				t.Errorf("nextEnd(%v) = %v, want %v", tt.at, got, tt.nextEnd)
			}
		})
	}
	if got := ah.String(); got != "08:00-18:00 Europe/Berlin" {
		t.Errorf("String = %q", got)
	}
	for _, bad := range [][3]string{{"8am", "18:00", ""}, {"08:00", "25:00", ""}, {"08:00", "18:00", "Mars/Base"}} {
		if _, err := ParseActiveHours(bad[0], bad[1], bad[2]); err == nil {
			t.Errorf("ParseActiveHours%q: no error", bad)
		}
	}
}

func TestChoiceNames(t *testing.T) {
	tests := []struct {
		d          time.Duration
		key, label string
	}{
		{time.Hour, "1h", "1 hour"},
		{4 * time.Hour, "4h", "4 hours"},
		{90 * time.Minute, "1h30m", "1 hour 30 minutes"},
		{30 * time.Minute, "30m", "30 minutes"},
		{24 * time.Hour, "24h", "1 day"},
		{48 * time.Hour, "48h", "2 days"},
		{45 * time.Second, "45s", "45 seconds"},
	}
	for _, tt := range tests {
		c := Choice{Duration: tt.d}
		if c.key() != tt.key || c.label() != tt.label {
			t.Errorf("%v: key %q label %q, want %q %q", tt.d, c.key(), c.label(), tt.key, tt.label)
		}
	}
	r := Rules{DeferChoices: append(ChoicesFromDurations([]time.Duration{time.Hour, 4 * time.Hour}), Choice{Key: "tomorrow", Label: "until tomorrow", Duration: 18 * time.Hour})}
	for in, want := range map[string]time.Duration{"1h": time.Hour, "240m": 4 * time.Hour, "4h0m0s": 4 * time.Hour, "Tomorrow": 18 * time.Hour, " 1h ": time.Hour} {
		if c, ok := r.choice(in); !ok || c.Duration != want {
			t.Errorf("choice(%q) = %v, %v; want %v", in, c.Duration, ok, want)
		}
	}
	for _, in := range []string{"2h", "", "forever", "-1h"} {
		if c, ok := r.choice(in); ok {
			t.Errorf("choice(%q) = %v, want none", in, c)
		}
	}
}

// BenchmarkPlan measures planning a restart through a week of active hours
// and a nightly window, the work done on every wake-up of Run.
func BenchmarkPlan(b *testing.B) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		b.Fatal(err)
	}
	nightly := func(t time.Time) (time.Time, time.Time, bool) {
		l := t.In(berlin)
		for d := -1; d < 3; d++ {
			s := time.Date(l.Year(), l.Month(), l.Day()+d, 3, 30, 0, 0, berlin)
			if e := s.Add(2 * time.Hour); t.Before(e) {
				return s, e, true
			}
		}
		return time.Time{}, time.Time{}, false
	}
	r := Rules{
		NotifyAhead: 30 * time.Minute, Grace: 8 * time.Hour, Deadline: 7 * 24 * time.Hour,
		ActiveHours: ActiveHours{Start: 8 * time.Hour, End: 18 * time.Hour, Location: berlin},
		AutoWindow:  nightly,
	}.normalized()
	rec := record{Required: true, Since: t0, DeferredUntil: t0.Add(26 * time.Hour)}
	for b.Loop() {
		if _, _, ok := r.plan(&rec, t0); !ok {
			b.Fatal("no plan")
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "reboot_plan@us")
}
