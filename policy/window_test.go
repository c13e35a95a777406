package policy

import (
	"testing"
	"time"
)

func mustTime(t testing.TB, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatalf("parse time %q: %v", s, err)
	}
	return v
}

func mustSchedule(t testing.TB, expr, tz string, dur time.Duration) *schedule {
	t.Helper()
	s, err := compileSchedule(expr, tz, dur)
	if err != nil {
		t.Fatalf("compile %q %s: %v", expr, tz, err)
	}
	return s
}

func TestNextStartDST(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		cron, tz   string
		from, want string // RFC 3339; want "" means none
	}{
		{"utc daily", "0 2 * * *", "UTC", "2026-06-01T03:00:00Z", "2026-06-02T02:00:00Z"},
		{"at the start itself", "0 2 * * *", "UTC", "2026-06-01T02:00:00Z", "2026-06-01T02:00:00Z"},
		{"berlin summer", "0 2 * * *", "Europe/Berlin", "2026-06-01T12:00:00Z", "2026-06-02T00:00:00Z"},
		{"berlin winter", "0 2 * * *", "Europe/Berlin", "2026-01-10T12:00:00Z", "2026-01-11T01:00:00Z"},
		// America/New_York springs forward 2026-03-08 02:00 EST -> 03:00 EDT.
		{"new york before spring forward", "30 2 * * *", "America/New_York", "2026-03-07T00:00:00Z", "2026-03-07T07:30:00Z"},
		{"new york skipped 02:30 moves to 03:30 EDT", "30 2 * * *", "America/New_York", "2026-03-08T05:00:00Z", "2026-03-08T07:30:00Z"},
		{"new york after spring forward", "30 2 * * *", "America/New_York", "2026-03-08T08:00:00Z", "2026-03-09T06:30:00Z"},
		{"new york gap and real times interleave", "*/30 2-3 * * *", "America/New_York", "2026-03-08T07:10:00Z", "2026-03-08T07:30:00Z"},
		{"new york 03:00 EDT right after the gap", "*/30 2-3 * * *", "America/New_York", "2026-03-08T06:59:00Z", "2026-03-08T07:00:00Z"},
		// America/New_York falls back 2026-11-01 02:00 EDT -> 01:00 EST.
		{"new york repeated 01:30 opens at the first", "30 1 * * *", "America/New_York", "2026-11-01T04:00:00Z", "2026-11-01T05:30:00Z"},
		{"new york repeated 01:30 opens once", "30 1 * * *", "America/New_York", "2026-11-01T05:30:01Z", "2026-11-02T06:30:00Z"},
		// Europe/Berlin springs forward 2026-03-29 02:00 CET -> 03:00 CEST,
		// falls back 2026-10-25 03:00 CEST -> 02:00 CET.
		{"berlin skipped 02:30 moves to 03:30 CEST", "30 2 * * *", "Europe/Berlin", "2026-03-28T23:00:00Z", "2026-03-29T01:30:00Z"},
		{"berlin repeated 02:30 opens at the first", "30 2 * * *", "Europe/Berlin", "2026-10-24T23:00:00Z", "2026-10-25T00:30:00Z"},
		{"berlin repeated 02:30 opens once", "30 2 * * *", "Europe/Berlin", "2026-10-25T00:30:01Z", "2026-10-26T01:30:00Z"},
		{"weekly descriptor", "@weekly", "UTC", "2026-06-03T00:00:00Z", "2026-06-07T00:00:00Z"},
		{"leap day", "0 0 29 2 *", "UTC", "2026-03-01T00:00:00Z", "2028-02-29T00:00:00Z"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := mustSchedule(t, tc.cron, tc.tz, time.Hour)
			got, ok := s.nextStart(mustTime(t, tc.from))
			if tc.want == "" {
				if ok {
					t.Fatalf("nextStart = %v, want none", got)
				}
				return
			}
			if want := mustTime(t, tc.want); !ok || !got.Equal(want) {
				t.Fatalf("nextStart(%s) = %v (ok %v), want %v", tc.from, got.UTC(), ok, want)
			}
		})
	}
}

func TestOccurrenceDST(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name             string
		cron, tz         string
		dur              time.Duration
		at               string
		open             bool
		wantStart, wantE string
	}{
		{"inside utc window", "0 2 * * *", "UTC", 4 * time.Hour, "2026-06-01T05:59:00Z", true, "2026-06-01T02:00:00Z", "2026-06-01T06:00:00Z"},
		{"end is exclusive", "0 2 * * *", "UTC", 4 * time.Hour, "2026-06-01T06:00:00Z", false, "2026-06-02T02:00:00Z", "2026-06-02T06:00:00Z"},
		// Duration is elapsed time: a 4h window from midnight on the spring
		// forward night closes at 05:00 EDT.
		{"new york window across spring forward", "0 0 * * *", "America/New_York", 4 * time.Hour, "2026-03-08T08:30:00Z", true, "2026-03-08T05:00:00Z", "2026-03-08T09:00:00Z"},
		{"new york fall back second 01:15 is in the first window", "30 1 * * *", "America/New_York", time.Hour, "2026-11-01T06:15:00Z", true, "2026-11-01T05:30:00Z", "2026-11-01T06:30:00Z"},
		{"new york fall back second 01:45 is not a window", "30 1 * * *", "America/New_York", time.Hour, "2026-11-01T06:45:00Z", false, "2026-11-02T06:30:00Z", "2026-11-02T07:30:00Z"},
		{"berlin long block window", "0 0 20 12 *", "Europe/Berlin", 14 * 24 * time.Hour, "2026-12-31T12:00:00Z", true, "2026-12-19T23:00:00Z", "2027-01-02T23:00:00Z"},
		{"every minute window overlapping itself", "* * * * *", "UTC", 10 * time.Minute, "2026-06-01T12:00:30Z", true, "2026-06-01T12:00:00Z", "2026-06-01T12:10:00Z"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := mustSchedule(t, tc.cron, tc.tz, tc.dur)
			at := mustTime(t, tc.at)
			_, open := s.openAt(at)
			if open != tc.open {
				t.Errorf("openAt(%s) = %v, want %v", tc.at, open, tc.open)
			}
			start, end, ok := s.occurrence(at)
			if !ok || !start.Equal(mustTime(t, tc.wantStart)) || !end.Equal(mustTime(t, tc.wantE)) {
				t.Errorf("occurrence(%s) = [%v, %v) ok %v, want [%s, %s)", tc.at, start.UTC(), end.UTC(), ok, tc.wantStart, tc.wantE)
			}
		})
	}
}

// TestLastStartMatchesLinearScan checks the halving search against walking
// every start one by one.
func TestLastStartMatchesLinearScan(t *testing.T) {
	t.Parallel()
	crons := []string{"*/7 * * * *", "0 2 * * *", "15,45 1-3 * * 0", "0 0 1 * *"}
	zones := []string{"UTC", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe"}
	base := mustTime(t, "2026-03-07T00:00:00Z")
	for _, c := range crons {
		for _, z := range zones {
			s := mustSchedule(t, c, z, 0)
			for i := range 16 {
				at := base.Add(time.Duration(i) * 17 * time.Hour)
				after := at.Add(-3 * 24 * time.Hour)
				want, wantOK := time.Time{}, false
				for x, ok := s.nextStart(after.Add(time.Nanosecond)); ok && !x.After(at); x, ok = s.nextStart(x.Add(time.Nanosecond)) {
					want, wantOK = x, true
				}
				got, ok := s.lastStart(after, at)
				if ok != wantOK || !got.Equal(want) {
					t.Fatalf("%s %s lastStart(%v) = %v %v, want %v %v", c, z, at, got, ok, want, wantOK)
				}
			}
		}
	}
}

func TestParseCronRejects(t *testing.T) {
	t.Parallel()
	for _, expr := range []string{"", "@every 1h", "TZ=UTC 0 2 * * *", "CRON_TZ=UTC", "0 2 * *", "0 0 31 2,4 *", "61 * * * *", "TZ=", "@reboot"} {
		if _, err := parseCron(expr); err == nil {
			t.Errorf("parseCron(%q) succeeded, want an error", expr)
		}
	}
	for _, expr := range []string{"0 2 * * *", "@daily", "0 0 31 * *", "0 0 30 2 1", "*/15 8-18 * * mon-fri"} {
		if _, err := parseCron(expr); err != nil {
			t.Errorf("parseCron(%q): %v", expr, err)
		}
	}
}
