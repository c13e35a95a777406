package reboot_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/patchring/patchring/daemon/apitypes"
	"github.com/patchring/patchring/daemon/reboot"
	"github.com/patchring/patchring/daemon/reboot/reboottest"
)

// Inside a synctest bubble the clock starts at 2000-01-01 00:00 UTC.

// officeHours covers the day until 20:00 UTC, so the only automatic
// restart before then is the one forced at the deadline.
var officeHours = reboot.ActiveHours{Start: 0, End: 20 * time.Hour, Location: time.UTC}

func TestRestartAtEffectiveDeadlineOnce(t *testing.T) {
	tests := []struct {
		name            string
		deadline, grace time.Duration
		want            time.Duration // after the restart became required
	}{
		{"deadline later than grace", 6 * time.Hour, 2 * time.Hour, 6 * time.Hour},
		{"grace later than deadline", 2 * time.Hour, 5 * time.Hour, 5 * time.Hour},
		{"grace only", 0, 3 * time.Hour, 3 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				start := time.Now()
				rules := reboot.Rules{NotifyAhead: time.Hour, Deadline: tt.deadline, Grace: tt.grace, ActiveHours: officeHours}
				n := newNode(t, "desk", rules, start.Add(-time.Hour), reboot.Config{})
				events, cancel := n.o.Subscribe()
				defer cancel()
				n.require(start)
				n.run()

				st := n.o.RebootStatus()
				if !st.EffectiveDeadline.Equal(start.Add(tt.want)) || !st.NextAutomatic.Equal(start.Add(tt.want)) {
					t.Fatalf("effective deadline %v, next automatic %v; want both %v", st.EffectiveDeadline, st.NextAutomatic, start.Add(tt.want))
				}
				if tt.deadline > 0 && !st.Deadline.Equal(start.Add(tt.deadline)) {
					t.Errorf("deadline = %v, want %v", st.Deadline, start.Add(tt.deadline))
				}

				time.Sleep(tt.want - time.Second)
				synctest.Wait()
				if calls := n.rb.Calls(); len(calls) != 0 {
					t.Fatalf("restarted before the deadline: %q", calls)
				}
				if st := n.o.RebootStatus(); st.State != apitypes.RebootStateDeadlineNear {
					t.Errorf("a second before the deadline the state is %q, want %q", st.State, apitypes.RebootStateDeadlineNear)
				}
				time.Sleep(time.Second)
				synctest.Wait()
				time.Sleep(48 * time.Hour) // nothing more may happen
				synctest.Wait()

				calls := n.rb.Calls()
				if len(calls) != 1 {
					t.Fatalf("rebooter called %d times, want once: %q", len(calls), calls)
				}
				if !strings.Contains(calls[0], "openssl and the kernel") {
					t.Errorf("restart message %q does not say why", calls[0])
				}
				want := []string{
					apitypes.EventRebootReminder + "@" + (tt.want - time.Hour).String(),
					apitypes.EventRebootCountdown + "@" + (tt.want - 15*time.Minute).String(),
					apitypes.EventRebootCountdown + "@" + (tt.want - time.Minute).String(),
					apitypes.EventRebooting + "@" + tt.want.String(),
				}
				if got := timeline(drain(events), start); !slices.Equal(got, want) {
					t.Errorf("events:\n got %q\nwant %q", got, want)
				}
				if st := n.o.RebootStatus(); st.State != apitypes.RebootStateRebooting {
					t.Errorf("state = %q, want rebooting", st.State)
				}
			})
		})
	}
}

func TestActiveHoursPostponeAutomaticRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		office := reboot.ActiveHours{Start: 8 * time.Hour, End: 18 * time.Hour, Location: time.UTC}
		n := newNode(t, "desk", reboot.Rules{NotifyAhead: time.Hour, Deadline: 72 * time.Hour, ActiveHours: office}, start.Add(-time.Hour), reboot.Config{})
		events, cancel := n.o.Subscribe()
		defer cancel()
		time.Sleep(9 * time.Hour) // 09:00, during active hours
		n.require(time.Now())
		n.run()
		if st := n.o.RebootStatus(); !st.NextAutomatic.Equal(start.Add(18*time.Hour)) || st.ActiveHours != "08:00-18:00 UTC" {
			t.Errorf("next automatic %v (active hours %q), want 18:00 (after the active hours)", st.NextAutomatic, st.ActiveHours)
		}
		time.Sleep(9*time.Hour - time.Second)
		synctest.Wait()
		if calls := n.rb.Calls(); len(calls) != 0 {
			t.Fatalf("restarted during active hours: %q", calls)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if calls := n.rb.Calls(); len(calls) != 1 {
			t.Fatalf("rebooter called %d times at the end of the active hours, want once", len(calls))
		}
		want := []string{"reboot-reminder@17h0m0s", "reboot-countdown@17h45m0s", "reboot-countdown@17h59m0s", "rebooting@18h0m0s"}
		if got := timeline(drain(events), start); !slices.Equal(got, want) {
			t.Errorf("events:\n got %q\nwant %q", got, want)
		}
	})
}

func TestDefer(t *testing.T) {
	choices := reboot.ChoicesFromDurations([]time.Duration{time.Hour, 4 * time.Hour})
	type step struct {
		at      time.Duration // after the restart became required
		choice  string
		wantErr string // substring; "" for success
		denied  bool   // the error is a *DeniedError (403)
		until   time.Duration
		used    int
	}
	tests := []struct {
		name  string
		rules reboot.Rules
		steps []step
	}{
		{
			name:  "choices and their maximum",
			rules: reboot.Rules{NotifyAhead: 30 * time.Minute, Deadline: 24 * time.Hour, DeferChoices: choices, MaxDeferrals: 2},
			steps: []step{
				{at: 0, choice: "99h", wantErr: `deferral "99h" is not one the policy offers (it offers: 1h, 4h)`, denied: true},
				{at: 0, choice: "1h", until: 90 * time.Minute, used: 1}, // the restart planned at 00:30 moves to 01:30
				{at: 10 * time.Minute, choice: "240m", until: 90*time.Minute + 4*time.Hour, used: 2},
				{at: 20 * time.Minute, choice: "1h", wantErr: "no deferrals left: the policy allows 2 and all were used", denied: true, used: 2},
			},
		},
		{
			name:  "no deferrals allowed",
			rules: reboot.Rules{Deadline: 24 * time.Hour, DeferChoices: choices},
			steps: []step{{at: 0, choice: "1h", wantErr: "the policy does not allow deferring", denied: true}},
		},
		{
			name:  "never past the deadline",
			rules: reboot.Rules{NotifyAhead: 30 * time.Minute, Deadline: 2 * time.Hour, DeferChoices: choices, MaxDeferrals: 5},
			steps: []step{
				{at: 0, choice: "4h", until: 2 * time.Hour, used: 1}, // cut at the deadline
				{at: 5 * time.Minute, choice: "1h", wantErr: "a deferral cannot postpone it", denied: true, used: 1},
				{at: 2 * time.Hour, choice: "1h", wantErr: "has passed; the restart can no longer be deferred", denied: true, used: 1},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				start := time.Now()
				n := newNode(t, "desk", tt.rules, start.Add(-time.Hour), reboot.Config{})
				if _, err := n.o.Defer(ctx, "alice (uid 1000)", "1h"); !errors.Is(err, reboot.ErrNoRestartPending) {
					t.Fatalf("defer without a pending restart: %v", err)
				}
				n.require(start)
				for i, s := range tt.steps {
					time.Sleep(time.Until(start.Add(s.at)))
					st, err := n.o.Defer(ctx, "alice (uid 1000)", s.choice)
					if s.wantErr != "" {
						if err == nil || !strings.Contains(err.Error(), s.wantErr) || reboot.IsDenied(err) != s.denied {
							t.Fatalf("step %d: defer %s: err = %v (denied %v), want %q", i, s.choice, err, reboot.IsDenied(err), s.wantErr)
						}
						st = n.o.RebootStatus()
					} else if err != nil {
						t.Fatalf("step %d: defer %s: %v", i, s.choice, err)
					} else if !st.DeferredUntil.Equal(start.Add(s.until)) || !st.NextAutomatic.Equal(st.DeferredUntil) {
						t.Errorf("step %d: deferred until %v, next automatic %v; want both %v", i, st.DeferredUntil, st.NextAutomatic, start.Add(s.until))
					}
					if st.DeferralsUsed != s.used || st.DeferralsLeft != max(0, tt.rules.MaxDeferrals-s.used) {
						t.Errorf("step %d: deferrals used %d left %d, want used %d", i, st.DeferralsUsed, st.DeferralsLeft, s.used)
					}
				}
			})
		})
	}
}

func TestDeferChoicesInStatus(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		rules := reboot.Rules{
			Deadline:     3 * time.Hour,
			MaxDeferrals: 3,
			DeferChoices: append(reboot.ChoicesFromDurations([]time.Duration{time.Hour, 4 * time.Hour}), reboot.Choice{Key: "tomorrow", Label: "until tomorrow", Duration: 18 * time.Hour}),
		}
		n := newNode(t, "desk", rules, start.Add(-time.Hour), reboot.Config{})
		n.require(start)
		// The restart is planned at 00:15 (the countdown's notice); the
		// deadline is at 03:00.
		want := []apitypes.DeferChoice{
			{Label: "1 hour", Duration: "1h", Seconds: 3600},
			{Label: "4 hours", Duration: "4h", Seconds: 2*3600 + 45*60}, // no further than the deadline
			{Label: "until tomorrow", Duration: "tomorrow", Seconds: 2*3600 + 45*60},
		}
		if got := n.o.RebootStatus().Choices; !slices.Equal(got, want) {
			t.Errorf("choices:\n got %+v\nwant %+v", got, want)
		}
		if st, err := n.o.Defer(ctx, "alice (uid 1000)", "tomorrow"); err != nil || !st.DeferredUntil.Equal(start.Add(3*time.Hour)) {
			t.Errorf("defer tomorrow: %v, until %v", err, st.DeferredUntil)
		}
	})
}

func TestRefuse(t *testing.T) {
	tests := []struct {
		name    string
		allow   bool
		at      time.Duration
		wantErr string
	}{
		{"allowed", true, 0, ""},
		{"forbidden by the policy", false, 0, "the policy does not let users decline this restart"},
		{"after the deadline", true, 7 * time.Hour, "the deadline (2000-01-01T06:00:00Z) has passed; the restart can no longer be declined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				start := time.Now()
				rules := reboot.Rules{NotifyAhead: time.Hour, Deadline: 6 * time.Hour, AllowRefuse: tt.allow, DeferChoices: reboot.ChoicesFromDurations([]time.Duration{time.Hour}), MaxDeferrals: 1}
				n := newNode(t, "desk", rules, start.Add(-time.Hour), reboot.Config{})
				n.require(start)
				if got := n.o.RebootStatus().CanRefuse; got != tt.allow {
					t.Errorf("CanRefuse = %v, want %v", got, tt.allow)
				}
				time.Sleep(tt.at)
				st, err := n.o.Refuse(ctx, "alice (uid 1000)")
				if tt.wantErr != "" {
					if !reboot.IsDenied(err) || err.Error() != tt.wantErr {
						t.Fatalf("refuse: err = %v, want denied %q", err, tt.wantErr)
					}
					if st := n.o.RebootStatus(); st.Refused || st.RefusedBy != "" {
						t.Errorf("a denied refusal changed the status: %+v", st)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if !st.Refused || st.RefusedBy != "alice (uid 1000)" || !st.RefusedAt.Equal(start) || !st.NextAutomatic.Equal(start.Add(6*time.Hour)) {
					t.Errorf("after refusing: refused %v by %q at %v, next automatic %v (want the deadline)", st.Refused, st.RefusedBy, st.RefusedAt, st.NextAutomatic)
				}
				if s := n.o.Status(); s.State != "refused" || !strings.Contains(s.Summary, "reboot refused by user alice (uid 1000)") {
					t.Errorf("subsystem status = %+v", s)
				}
				if _, err := n.o.Defer(ctx, "alice (uid 1000)", "1h"); !errors.Is(err, reboot.ErrRefused) {
					t.Errorf("defer after refusing: %v", err)
				}
				// No restart before the deadline, the forced one at it.
				n.run()
				time.Sleep(6*time.Hour - time.Second)
				synctest.Wait()
				if len(n.rb.Calls()) != 0 {
					t.Fatal("restarted before the deadline although the user refused")
				}
				time.Sleep(time.Second)
				synctest.Wait()
				if len(n.rb.Calls()) != 1 {
					t.Fatalf("rebooter called %d times at the deadline, want once", len(n.rb.Calls()))
				}
			})
		})
	}
}

func TestStateSurvivesDaemonRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		boot := start.Add(-time.Hour)
		rules := reboot.Rules{NotifyAhead: time.Hour, Deadline: 48 * time.Hour, AllowRefuse: true, DeferChoices: reboot.ChoicesFromDurations([]time.Duration{4 * time.Hour}), MaxDeferrals: 3}
		n := newNode(t, "desk", rules, boot, reboot.Config{})
		n.require(start)
		time.Sleep(time.Hour)
		if _, err := n.o.Defer(ctx, "alice (uid 1000)", "4h"); err != nil {
			t.Fatal(err)
		}
		before := n.o.RebootStatus()

		time.Sleep(time.Minute)
		n.restartDaemon(boot) // the daemon restarts, the machine does not
		after := n.o.RebootStatus()
		if !after.Required || !after.Since.Equal(start) || after.DeferralsUsed != 1 || !after.DeferredUntil.Equal(start.Add(5*time.Hour)) ||
			!slices.Equal(after.Packages, before.Packages) || after.Reason != before.Reason || !after.NextAutomatic.Equal(before.NextAutomatic) {
			t.Errorf("after the daemon's restart:\n got %+v\nwant %+v", after, before)
		}

		if _, err := n.o.Refuse(ctx, "alice (uid 1000)"); err != nil {
			t.Fatal(err)
		}
		n.restartDaemon(boot)
		if st := n.o.RebootStatus(); !st.Refused || st.RefusedBy != "alice (uid 1000)" || st.DeferralsUsed != 1 {
			t.Errorf("refusal lost over a restart: %+v", st)
		}
	})
}

func TestMachineRestartClearsStateAndKeepsHistory(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		boot := start.Add(-time.Hour)
		rules := reboot.Rules{NotifyAhead: time.Hour, Deadline: 4 * time.Hour, DeferChoices: reboot.ChoicesFromDurations([]time.Duration{time.Hour}), MaxDeferrals: 2}
		n := newNode(t, "desk", rules, boot, reboot.Config{})
		n.require(start)
		if _, err := n.o.Defer(ctx, "alice (uid 1000)", "1h"); err != nil { // 01:00 -> 02:00
			t.Fatal(err)
		}
		n.run()
		time.Sleep(2 * time.Hour)
		synctest.Wait()
		if len(n.rb.Calls()) != 1 {
			t.Fatalf("rebooter called %d times", len(n.rb.Calls()))
		}

		// The daemon is killed by the shutdown before it notices anything.
		time.Sleep(2 * time.Minute)
		n.restartDaemon(time.Now()) // the machine booted
		if st := n.o.RebootStatus(); st.Required || st.State != apitypes.RebootStateUpToDate {
			t.Errorf("after the machine's restart the status is %+v", st)
		}
		hist, err := n.o.History()
		if err != nil {
			t.Fatal(err)
		}
		if len(hist) != 1 {
			t.Fatalf("history has %d entries: %+v", len(hist), hist)
		}
		h := hist[0]
		if h.By != reboot.ByDeferral || !h.RestartAt.Equal(start.Add(2*time.Hour)) || !h.RebootedAt.Equal(start.Add(2*time.Hour+2*time.Minute)) ||
			!h.RequiredSince.Equal(start) || h.DeferralsUsed != 1 || len(h.Packages) != 2 {
			t.Errorf("history entry %+v", h)
		}
		if s := n.o.Status(); s.State != "ok" || !strings.Contains(s.Summary, "last restart 2000-01-01T02:02:00Z (end of deferral)") {
			t.Errorf("subsystem status %+v", s)
		}
		// Nothing is left to do: running on restarts nothing.
		n.run()
		time.Sleep(24 * time.Hour)
		synctest.Wait()
		if len(n.rb.Calls()) != 1 {
			t.Errorf("rebooter called again after the restart: %d calls", len(n.rb.Calls()))
		}
	})
}

func TestRestartOutsidePatchringCompletesRequirement(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		n := newNode(t, "desk", reboot.Rules{Deadline: 24 * time.Hour}, start.Add(-time.Hour), reboot.Config{})
		n.require(start)
		time.Sleep(time.Hour)
		n.restartDaemon(time.Now()) // an admin ran `reboot`
		if n.o.RebootStatus().Required {
			t.Error("still required after the machine restarted")
		}
		hist, err := n.o.History()
		if err != nil || len(hist) != 1 || hist[0].By != reboot.ByOutside || !hist[0].RestartAt.IsZero() {
			t.Errorf("history %+v, %v", hist, err)
		}
	})
}

func TestRestartThatDidNotHappenIsRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		boot := start.Add(-time.Hour)
		n := newNode(t, "desk", reboot.Rules{Deadline: 2 * time.Hour, ActiveHours: officeHours}, boot, reboot.Config{RetryAfter: 10 * time.Minute})
		n.require(start)
		n.run()
		time.Sleep(2 * time.Hour)
		synctest.Wait()
		if len(n.rb.Calls()) != 1 {
			t.Fatalf("rebooter called %d times", len(n.rb.Calls()))
		}
		time.Sleep(5 * time.Minute)
		n.restartDaemon(boot) // the shutdown was cancelled: same boot
		st := n.o.RebootStatus()
		if !st.Required || st.State == apitypes.RebootStateRebooting || !strings.Contains(st.LastError, "did not happen") {
			t.Fatalf("status after a restart that did not happen: %+v", st)
		}
		if s := n.o.Status(); s.State != "error" {
			t.Errorf("subsystem state %q, want error", s.State)
		}
		n.run()
		time.Sleep(15*time.Minute - time.Second) // the countdown's notice
		synctest.Wait()
		if len(n.rb.Calls()) != 1 {
			t.Fatal("retried without notice")
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if len(n.rb.Calls()) != 2 {
			t.Fatalf("rebooter called %d times, want a second attempt", len(n.rb.Calls()))
		}
	})
}

func TestFailedRestartIsRetriedLater(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		n := newNode(t, "desk", reboot.Rules{Deadline: time.Hour, ActiveHours: officeHours}, start.Add(-time.Hour), reboot.Config{RetryAfter: 10 * time.Minute})
		n.rb.FailWith(errors.New("Failed to talk to init daemon"))
		events, cancel := n.o.Subscribe()
		defer cancel()
		n.require(start)
		n.run()
		time.Sleep(time.Hour)
		synctest.Wait()
		st := n.o.RebootStatus()
		if len(n.rb.Calls()) != 1 || st.State == apitypes.RebootStateRebooting || !strings.Contains(st.LastError, "Failed to talk to init daemon") {
			t.Fatalf("after a failed attempt: %d calls, status %+v", len(n.rb.Calls()), st)
		}
		evs := drain(events)
		if last := evs[len(evs)-1]; last.Reboot.LastError == "" {
			t.Errorf("the failure was not announced: last event %+v", last)
		}
		// The retry waits RetryAfter and is announced again with the
		// countdown's notice (15 minutes): it comes at 01:15.
		if !st.NextAutomatic.Equal(start.Add(75 * time.Minute)) {
			t.Errorf("next attempt planned at %v, want 01:15", st.NextAutomatic)
		}
		if got := timeline(evs, start); got[len(got)-1] != "reboot-countdown@1h0m0s" {
			t.Errorf("the retry was not announced: %q", got)
		}
		n.rb.FailWith(nil)
		time.Sleep(15*time.Minute - time.Second)
		synctest.Wait()
		if len(n.rb.Calls()) != 1 {
			t.Fatal("retried too early")
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if got := n.o.RebootStatus(); len(n.rb.Calls()) != 2 || got.State != apitypes.RebootStateRebooting || got.LastError != "" {
			t.Fatalf("after the retry: %d calls, status %+v", len(n.rb.Calls()), got)
		}
	})
}

func TestRestartNow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		n := newNode(t, "desk", reboot.Rules{Deadline: 72 * time.Hour}, start.Add(-time.Hour), reboot.Config{})
		if err := n.o.RestartNow(ctx, "alice (uid 1000)"); !errors.Is(err, reboot.ErrNoRestartPending) {
			t.Errorf("restart without a pending restart: %v", err)
		}
		n.require(start)
		if err := n.o.RestartNow(ctx, "alice (uid 1000)"); !errors.Is(err, reboot.ErrNotRunning) {
			t.Errorf("restart without Run: %v", err)
		}
		events, cancel := n.o.Subscribe()
		defer cancel()
		n.run()
		synctest.Wait()
		if err := n.o.RestartNow(ctx, "alice (uid 1000)"); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if err := n.o.RestartNow(ctx, "alice (uid 1000)"); !errors.Is(err, reboot.ErrRestarting) {
			t.Errorf("second restart: %v", err)
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		if len(n.rb.Calls()) != 1 {
			t.Fatalf("rebooter called %d times, want once", len(n.rb.Calls()))
		}
		if got := timeline(drain(events), start); len(got) == 0 || got[len(got)-1] != "rebooting@0s" || slices.Index(got, "rebooting@0s") != len(got)-1 {
			t.Errorf("events %q, want one rebooting event at once", got)
		}
		n.restartDaemon(time.Now())
		if hist, _ := n.o.History(); len(hist) != 1 || hist[0].By != "user alice (uid 1000)" {
			t.Errorf("history %+v", hist)
		}
	})
}

// A daemon that learns late of a restart (it was off at the deadline, or the
// policy moved the deadline into the past) still gives the full notice.
func TestLateRestartIsAnnounced(t *testing.T) {
	tests := []struct {
		name string
		late func(n *node)
	}{
		{"off at the deadline", func(n *node) {
			n.close()
			time.Sleep(5 * time.Hour)
			n.open()
			n.run()
		}},
		{"policy shortens the deadline", func(n *node) {
			n.run()
			time.Sleep(5 * time.Hour)
			r := n.getRules()
			r.Deadline = 2 * time.Hour
			n.setRules(r)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				start := time.Now()
				n := newNode(t, "desk", reboot.Rules{NotifyAhead: 30 * time.Minute, Deadline: 72 * time.Hour, ActiveHours: officeHours}, start.Add(-time.Hour), reboot.Config{})
				n.require(start)
				events, cancel := n.o.Subscribe()
				defer cancel()
				tt.late(n)
				if tt.name == "off at the deadline" {
					// The old subscription belonged to the stopped daemon.
					cancel()
					events, cancel = n.o.Subscribe()
					defer cancel()
					r := n.getRules()
					r.Deadline = 2 * time.Hour
					n.setRules(r)
				}
				synctest.Wait()
				late := time.Now()
				if len(n.rb.Calls()) != 0 {
					t.Fatal("restarted without notice")
				}
				time.Sleep(30*time.Minute - time.Second)
				synctest.Wait()
				if len(n.rb.Calls()) != 0 {
					t.Fatal("restarted before the notice ran out")
				}
				time.Sleep(time.Second)
				synctest.Wait()
				if len(n.rb.Calls()) != 1 {
					t.Fatalf("rebooter called %d times, want once", len(n.rb.Calls()))
				}
				want := []string{"reboot-reminder@0s", "reboot-countdown@15m0s", "reboot-countdown@29m0s", "rebooting@30m0s"}
				if got := timeline(drain(events), late); !slices.Equal(got, want) {
					t.Errorf("events:\n got %q\nwant %q", got, want)
				}
			})
		})
	}
}

func TestSubscribeNeverBlocks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newNode(t, "desk", reboot.Rules{Deadline: 72 * time.Hour}, time.Now().Add(-time.Hour), reboot.Config{})
		events, cancel := n.o.Subscribe() // never read until the end
		for i := range 100 {
			if err := n.o.SetRequired(ctx, time.Now(), "updates", []string{fmt.Sprintf("pkg%d 1.0", i)}); err != nil {
				t.Fatal(err)
			}
		}
		cancel()
		cancel() // idempotent
		evs := drain(events)
		if len(evs) == 0 || len(evs) > 32 {
			t.Fatalf("%d events buffered", len(evs))
		}
		if last := evs[len(evs)-1]; len(last.Reboot.Packages) != 100 {
			t.Errorf("the newest event was dropped: it lists %d packages", len(last.Reboot.Packages))
		}
		if _, ok := <-events; ok {
			t.Error("channel not closed after cancel")
		}
	})
}

// Three headless hosts of one site need a restart, one may restart at a
// time: they take turns through the lease; a host that does not come back
// holds its slot until the lease's time to live runs out.
func TestHeadlessHostsRestartOneAtATime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		leases := reboottest.NewLeases(nil)
		const group, ttl = "site:berlin", 30 * time.Minute
		alwaysOpen := func(t time.Time) (time.Time, time.Time, bool) { return t, t.Add(time.Hour), true }
		rules := reboot.Rules{Deadline: 72 * time.Hour, AutoWindow: alwaysOpen, SiteConcurrency: 1, LeaseTTL: ttl}
		var (
			nodes    []*node
			mu       sync.Mutex
			rebootAt = map[*node]time.Time{}
		)
		for _, name := range []string{"srv1", "srv2", "srv3"} {
			n := newNode(t, name, rules, start.Add(-time.Hour), reboot.Config{Headless: true, Site: "berlin", Lease: leases.For(name), LeasePoll: time.Minute})
			n.rb.OnReboot = func(string) {
				if h := leases.Holders(group); !slices.Contains(h, n.name) || len(h) != 1 {
					t.Errorf("%s restarts while the holders are %q", n.name, h)
				}
				mu.Lock()
				rebootAt[n] = time.Now()
				mu.Unlock()
			}
			n.require(start)
			n.run()
			nodes = append(nodes, n)
		}
		rebooted := func() (out []*node) {
			for _, n := range nodes {
				if len(n.rb.Calls()) > 0 {
					out = append(out, n)
				}
			}
			return out
		}

		time.Sleep(15 * time.Minute) // the countdown's notice
		synctest.Wait()
		first := rebooted()
		if len(first) != 1 {
			t.Fatalf("%d hosts restarted at once, want 1", len(first))
		}
		a := first[0]
		for _, n := range nodes {
			if n != a && !strings.Contains(n.o.RebootStatus().Waiting, "waiting for a free restart slot of site:berlin") {
				t.Errorf("%s: waiting = %q", n.name, n.o.RebootStatus().Waiting)
			}
		}

		// a comes back a few minutes later and releases its slot; one of the
		// others takes it at its next attempt.
		time.Sleep(5*time.Minute + 17*time.Second)
		a.restartDaemon(time.Now())
		a.run()
		synctest.Wait()
		if h := leases.Holders(group); slices.Contains(h, a.name) {
			t.Fatalf("%s still holds its slot after coming back", a.name)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		second := rebooted()
		if len(second) != 2 {
			t.Fatalf("%d hosts restarted after %s came back, want 2", len(second), a.name)
		}
		var b, c *node
		for _, n := range nodes {
			switch {
			case n == a:
			case len(n.rb.Calls()) > 0:
				b = n
			default:
				c = n
			}
		}

		// b never comes back: c waits until b's lease runs out.
		b.close()
		mu.Lock()
		bAt := rebootAt[b]
		mu.Unlock()
		time.Sleep(time.Until(bAt.Add(ttl + 2*time.Minute)))
		synctest.Wait()
		if len(c.rb.Calls()) != 1 {
			t.Fatalf("%s did not restart after %s's lease expired", c.name, b.name)
		}
		mu.Lock()
		cAt := rebootAt[c]
		mu.Unlock()
		if cAt.Before(bAt.Add(ttl)) {
			t.Errorf("%s restarted %v after %s, before the lease's TTL", c.name, cAt.Sub(bAt), b.name)
		}
		if m := leases.MaxHolders(group); m != 1 {
			t.Errorf("at most %d hosts held the slot at once, want 1", m)
		}
		if hist, _ := a.o.History(); len(hist) != 1 || hist[0].By != reboot.ByWindow {
			t.Errorf("%s history %+v", a.name, hist)
		}
	})
}

// A user's "restart now" on a headless host whose site has no free restart
// slot waits for one instead of bypassing the lease.
func TestHeadlessRestartNowTakesTheLease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		leases := reboottest.NewLeases(nil)
		const group = "site:berlin"
		rules := reboot.Rules{Deadline: 72 * time.Hour, SiteConcurrency: 1, LeaseTTL: time.Hour}
		other := leases.For("srv0")
		if ok, err := other.TryAcquire(ctx, group, 1, time.Hour); !ok || err != nil {
			t.Fatalf("srv0 takes the slot: %v %v", ok, err)
		}
		n := newNode(t, "srv1", rules, start.Add(-time.Hour), reboot.Config{Headless: true, Site: "berlin", Lease: leases.For("srv1"), LeasePoll: time.Minute})
		n.require(start)
		n.run()
		synctest.Wait()
		if err := n.o.RestartNow(ctx, "root (uid 0)"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		if calls := n.rb.Calls(); len(calls) != 0 {
			t.Fatalf("restarted without a free slot: %q", calls)
		}
		if w := n.o.RebootStatus().Waiting; !strings.Contains(w, "waiting for a free restart slot of site:berlin") || !strings.Contains(w, "root (uid 0)") {
			t.Errorf("waiting = %q", w)
		}
		if err := other.Release(ctx, group); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Minute + time.Second)
		synctest.Wait()
		if calls := n.rb.Calls(); len(calls) != 1 {
			t.Fatalf("%d restarts after the slot was freed, want 1", len(calls))
		}
		if h := leases.Holders(group); !slices.Equal(h, []string{"srv1"}) {
			t.Errorf("holders %q, want srv1", h)
		}
	})
}

// fakeSessions says which uids are at the machine.
type fakeSessions struct {
	mu    sync.Mutex
	local map[int]bool
	err   error
}

func (f *fakeSessions) set(uid int, local bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.local == nil {
		f.local = map[int]bool{}
	}
	f.local[uid] = local
}

func (f *fakeSessions) LocalSession(ctx context.Context, uid int) (bool, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return false, "", f.err
	}
	return f.local[uid], "seat0", nil
}

func TestAuthorizeRestart(t *testing.T) {
	sessions := &fakeSessions{}
	sessions.set(1000, true)
	tests := []struct {
		name      string
		sessions  reboot.Sessions
		adminOnly bool
		uid       int
		admin     bool
		want      string // "" allowed, else part of the reason
	}{
		{"root", sessions, false, 0, true, ""},
		{"admin group", sessions, true, 1001, true, ""},
		{"user at the machine", sessions, false, 1000, false, ""},
		{"user without a session", sessions, false, 65534, false, "uid 65534 may not restart this machine: it has no active local session"},
		{"policy says admins only", sessions, true, 1000, false, "reboot.user_restart: none"},
		{"no session source", nil, false, 1000, false, "knows of no local sessions"},
		{"session source fails", &fakeSessions{err: errors.New("boom")}, false, 1000, false, "cannot tell whether it is logged in at the machine (boom)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newNode(t, "desk", reboot.Rules{AdminRestartOnly: tt.adminOnly}, time.Now(), reboot.Config{Sessions: tt.sessions})
			err := n.o.AuthorizeRestart(ctx, tt.uid, tt.admin)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.want != "" && (!reboot.IsDenied(err) || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("err = %v, want denied with %q", err, tt.want)
			}
		})
	}
}
