package policy

import (
	"slices"
	"strings"
	"testing"
	"time"
)

const rebootPolicy = `schema: 1
expires: 2027-06-30T00:00:00Z
rings:
  - name: lab
    select: [{tags: [lab]}]
    reboot:
      max_deferrals: 0
      grace: 1h
      user_restart: none
      headless: {cron: "0 1 * * *", duration: 1h, tz: UTC, per: "tag:rack-*", max_concurrent: 1}
    health_check: {command: [/bin/lab-check]}
  - name: broad
    default: true
reboot:
  notify_ahead: 30m
  defer_choices: [1h, 4h, 1d]
  max_deferrals: 3
  allow_refuse: {rings: [lab], tags: [kiosk-exempt]}
  deadline: 2d
  grace: 8h
  active_hours: {start: "22:00", end: "06:00", tz: Europe/Berlin}
  headless: {cron: "30 3 * * *", duration: 2h, tz: Europe/Berlin, max_concurrent: 2}
health_check: {command: [/usr/bin/systemctl, is-system-running], timeout: 30s}
`

func TestRebootRules(t *testing.T) {
	t.Parallel()
	p := mustParse(t, rebootPolicy)
	h := time.Hour
	tests := []struct {
		name string
		f    NodeFacts
		want RebootRules // AutoReboot compared by presence and cron
		auto string
	}{
		{
			name: "desktop in broad",
			f:    NodeFacts{NodeID: "a", Site: "berlin"},
			want: RebootRules{Ring: "broad", UserRestart: UserRestartSession, NotifyAhead: 30 * time.Minute, DeferChoices: []time.Duration{h, 4 * h, 24 * h}, MaxDeferrals: 3, Deadline: 48 * h, Grace: 8 * h},
		},
		{
			name: "tag allows refusing",
			f:    NodeFacts{NodeID: "a", Tags: []string{"kiosk-exempt"}},
			want: RebootRules{Ring: "broad", UserRestart: UserRestartSession, NotifyAhead: 30 * time.Minute, DeferChoices: []time.Duration{h, 4 * h, 24 * h}, MaxDeferrals: 3, AllowRefuse: true, Deadline: 48 * h, Grace: 8 * h},
		},
		{
			name: "headless server in broad",
			f:    NodeFacts{NodeID: "a", Site: "berlin", Headless: true},
			want: RebootRules{Ring: "broad", UserRestart: UserRestartSession, NotifyAhead: 30 * time.Minute, DeferChoices: []time.Duration{h, 4 * h, 24 * h}, MaxDeferrals: 3, Deadline: 48 * h, Grace: 8 * h, MaxConcurrent: 2, Group: "site:berlin"},
			auto: "30 3 * * *",
		},
		{
			name: "lab overrides, ring allows refusing, grouped by rack tag",
			f:    NodeFacts{NodeID: "a", Site: "hq", Headless: true, Tags: []string{"lab", "rack-7", "rack-3"}},
			want: RebootRules{Ring: "lab", UserRestart: UserRestartNone, NotifyAhead: 30 * time.Minute, DeferChoices: []time.Duration{h, 4 * h, 24 * h}, MaxDeferrals: 0, AllowRefuse: true, Deadline: 48 * h, Grace: h, MaxConcurrent: 1, Group: "tag:rack-3"},
			auto: "0 1 * * *",
		},
		{
			name: "rack grouping falls back to the site",
			f:    NodeFacts{NodeID: "a", Site: "hq", Headless: true, Tags: []string{"lab"}},
			want: RebootRules{Ring: "lab", UserRestart: UserRestartNone, NotifyAhead: 30 * time.Minute, DeferChoices: []time.Duration{h, 4 * h, 24 * h}, AllowRefuse: true, Deadline: 48 * h, Grace: h, MaxConcurrent: 1, Group: "site:hq"},
			auto: "0 1 * * *",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := p.RebootRules(tc.f)
			if (got.AutoReboot != nil) != (tc.auto != "") || (got.AutoReboot != nil && got.AutoReboot.Cron != tc.auto) {
				t.Errorf("AutoReboot = %+v, want cron %q", got.AutoReboot, tc.auto)
			}
			if got.ActiveHours == nil || got.ActiveHours.Start != "22:00" {
				t.Errorf("ActiveHours = %+v", got.ActiveHours)
			}
			got.AutoReboot, got.ActiveHours = nil, nil
			if got.Ring != tc.want.Ring || got.NotifyAhead != tc.want.NotifyAhead || !slices.Equal(got.DeferChoices, tc.want.DeferChoices) ||
				got.MaxDeferrals != tc.want.MaxDeferrals || got.AllowRefuse != tc.want.AllowRefuse || got.Deadline != tc.want.Deadline ||
				got.Grace != tc.want.Grace || got.MaxConcurrent != tc.want.MaxConcurrent || got.Group != tc.want.Group || got.UserRestart != tc.want.UserRestart {
				t.Errorf("RebootRules =\n%+v\nwant\n%+v", got, tc.want)
			}
		})
	}
}

func TestEffectiveDeadlineIsTheLater(t *testing.T) {
	t.Parallel()
	r := RebootRules{Deadline: 48 * time.Hour, Grace: 8 * time.Hour}
	due := mustTime(t, "2026-06-01T00:00:00Z")
	// Pending early: the deadline from due wins.
	if got := r.EffectiveDeadline(due, due.Add(time.Hour)); !got.Equal(due.Add(48 * time.Hour)) {
		t.Errorf("early pending: %v", got)
	}
	// Pending late (node was off): the grace period wins.
	if got := r.EffectiveDeadline(due, due.Add(45*time.Hour)); !got.Equal(due.Add(53 * time.Hour)) {
		t.Errorf("late pending: %v", got)
	}
}

func TestCanDefer(t *testing.T) {
	t.Parallel()
	r := RebootRules{DeferChoices: []time.Duration{time.Hour, 4 * time.Hour}, MaxDeferrals: 2}
	for _, tc := range []struct {
		d    time.Duration
		used int
		want bool
	}{{time.Hour, 0, true}, {4 * time.Hour, 1, true}, {time.Hour, 2, false}, {2 * time.Hour, 0, false}} {
		if got := r.CanDefer(tc.d, tc.used); got != tc.want {
			t.Errorf("CanDefer(%v, %d) = %v, want %v", tc.d, tc.used, got, tc.want)
		}
	}
}

func TestActiveHours(t *testing.T) {
	t.Parallel()
	p := mustParse(t, rebootPolicy)
	r := p.RebootRules(NodeFacts{NodeID: "a"})
	for _, tc := range []struct {
		at   string
		want bool
	}{
		{"2026-06-01T19:59:00Z", false}, // 21:59 CEST
		{"2026-06-01T20:00:00Z", true},  // 22:00 CEST: spans midnight
		{"2026-06-02T03:59:00Z", true},  // 05:59 CEST
		{"2026-06-02T04:00:00Z", false}, // 06:00 CEST: end is exclusive
		{"2026-01-02T04:30:00Z", true},  // 05:30 CET
	} {
		if got := r.InActiveHours(mustTime(t, tc.at)); got != tc.want {
			t.Errorf("InActiveHours(%s) = %v, want %v", tc.at, got, tc.want)
		}
	}
	if (RebootRules{}).InActiveHours(mustTime(t, "2026-06-01T12:00:00Z")) {
		t.Error("no active hours must mean never in them")
	}
}

func TestHeadlessOccurrence(t *testing.T) {
	t.Parallel()
	p := mustParse(t, rebootPolicy)
	r := p.RebootRules(NodeFacts{NodeID: "a", Headless: true})
	start, end, ok := r.AutoReboot.Occurrence(mustTime(t, "2026-06-01T12:00:00Z"))
	if !ok || !start.Equal(mustTime(t, "2026-06-02T01:30:00Z")) || !end.Equal(mustTime(t, "2026-06-02T03:30:00Z")) {
		t.Fatalf("Occurrence = %v %v %v", start, end, ok)
	}
}

func TestHealthCheckFor(t *testing.T) {
	t.Parallel()
	p := mustParse(t, rebootPolicy)
	if h := p.HealthCheckFor("lab"); h == nil || h.Command[0] != "/bin/lab-check" || h.Timeout.Std() != time.Minute {
		t.Errorf("lab health check = %+v, want its own with the default 1m timeout", h)
	}
	if h := p.HealthCheckFor("broad"); h == nil || h.Command[0] != "/usr/bin/systemctl" || h.Timeout.Std() != 30*time.Second {
		t.Errorf("broad health check = %+v, want the global one", h)
	}
	if h := mustParse(t, base).HealthCheckFor("broad"); h != nil {
		t.Errorf("no health check configured, got %+v", h)
	}
}

// reboot.user_restart survives the signed (canonical JSON) form, and a
// policy without it lets the session user restart.
func TestUserRestartSignedForm(t *testing.T) {
	t.Parallel()
	b, err := MarshalCanonical(mustParse(t, rebootPolicy))
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParseJSON(b, "policy.json")
	if err != nil {
		t.Fatal(err)
	}
	if got := p.RebootRules(NodeFacts{NodeID: "a", Tags: []string{"lab"}}).UserRestart; got != UserRestartNone {
		t.Errorf("lab: user_restart %q after the signed form, want none", got)
	}
	if got := p.RebootRules(NodeFacts{NodeID: "b"}).UserRestart; got != UserRestartSession {
		t.Errorf("broad: user_restart %q, want the default session", got)
	}
	if _, err := ParseJSON([]byte(strings.Replace(string(b), `"reboot":{"notify_ahead"`, `"reboot":{"user_restart":"anyone","notify_ahead"`, 1)), "policy.json"); err == nil || !strings.Contains(err.Error(), "reboot.user_restart: 'anyone' is not a choice") {
		t.Errorf("a signed policy with a bad user_restart: %v", err)
	}
}
