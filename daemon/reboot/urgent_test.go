package reboot_test

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/patchring/patchring/daemon/reboot"
)

// TestUrgentRebootDeadline: a restart is required with the policy's week
// of deadline; an hour later an update an urgent rule approved (its
// reboot_deadline 12h) needs it too. The deadline becomes the urgent one
// (install + 12h, the grace period does not extend it), the status says
// which rule set it, deferrals are refused (the restart is due there), a later urgent update with a longer deadline changes
// nothing, the record survives a daemon restart, and the machine restarts
// at the urgent deadline, once.
func TestUrgentRebootDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		start := time.Now()
		rules := reboot.Rules{NotifyAhead: time.Hour, Deadline: 7 * 24 * time.Hour, Grace: 48 * time.Hour, ActiveHours: officeHours,
			DeferChoices: reboot.ChoicesFromDurations([]time.Duration{4 * time.Hour, 24 * time.Hour}), MaxDeferrals: 5}
		n := newNode(t, "desk", rules, start.Add(-time.Hour), reboot.Config{})
		n.require(start)
		if st := n.o.RebootStatus(); !st.EffectiveDeadline.Equal(start.Add(7*24*time.Hour)) || !st.UrgentDeadline.IsZero() || st.Urgent != "" {
			t.Fatalf("before the urgent update: deadline %v, urgent %v %q", st.EffectiveDeadline, st.UrgentDeadline, st.Urgent)
		}

		time.Sleep(time.Hour)
		why := "urgent[0] (kev-or-critical): libfoo 1.2 fixes a known exploited vulnerability (KEV)"
		if err := n.o.SetRequiredUrgent(ctx, time.Now(), "libfoo 1.2 needs a restart", []string{"libfoo 1.2"},
			reboot.Urgent{Deadline: 12 * time.Hour, Why: why}); err != nil {
			t.Fatal(err)
		}
		n.run()
		urgentBy := start.Add(13 * time.Hour)
		st := n.o.RebootStatus()
		if !st.EffectiveDeadline.Equal(urgentBy) || !st.UrgentDeadline.Equal(urgentBy) || st.Urgent != why {
			t.Fatalf("after the urgent update: deadline %v, urgent %v %q; want %v", st.EffectiveDeadline, st.UrgentDeadline, st.Urgent, urgentBy)
		}
		if !st.Since.Equal(start) || !st.NextAutomatic.Equal(urgentBy) || len(st.Packages) != 3 {
			t.Errorf("since %v, next automatic %v, packages %q", st.Since, st.NextAutomatic, st.Packages)
		}
		for _, c := range st.Choices {
			if left := int64(12 * time.Hour / time.Second); c.Seconds > left {
				t.Errorf("choice %s offers %ds, past the urgent deadline (%ds left)", c.Duration, c.Seconds, left)
			}
		}

		// A later urgent update with a longer deadline does not move it.
		time.Sleep(time.Hour)
		if err := n.o.SetRequiredUrgent(ctx, time.Now(), "", []string{"libbar 2.0"}, reboot.Urgent{Deadline: 48 * time.Hour, Why: "urgent[1]"}); err != nil {
			t.Fatal(err)
		}
		if st := n.o.RebootStatus(); !st.EffectiveDeadline.Equal(urgentBy) || st.Urgent != why {
			t.Fatalf("a longer urgent deadline moved it: %v %q", st.EffectiveDeadline, st.Urgent)
		}

		// The restart is planned at the urgent deadline (active hours
		// until then): no deferral can postpone it.
		for _, c := range []string{"24h", "4h"} {
			if _, err := n.o.Defer(ctx, "alice (uid 1000)", c); !reboot.IsDenied(err) || !strings.Contains(err.Error(), "a deferral cannot postpone it") {
				t.Errorf("a %s deferral past the urgent deadline: %v, want denied", c, err)
			}
		}

		// The urgent deadline is kept across a daemon restart.
		n.restartDaemon(start.Add(-time.Hour))
		n.run()
		if st := n.o.RebootStatus(); !st.EffectiveDeadline.Equal(urgentBy) || st.Urgent != why {
			t.Fatalf("after a daemon restart: deadline %v, urgent %q", st.EffectiveDeadline, st.Urgent)
		}

		time.Sleep(time.Until(urgentBy) - time.Second)
		synctest.Wait()
		if calls := n.rb.Calls(); len(calls) != 0 {
			t.Fatalf("restarted before the urgent deadline: %q", calls)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if calls := n.rb.Calls(); len(calls) != 1 {
			t.Fatalf("rebooter called %d times at the urgent deadline, want once: %q", len(calls), calls)
		}
	})
}

// TestUrgentDeadlineCutsDeferrals: with the restart planned an hour after
// it became required, an urgent update (reboot_deadline 12h) leaves the
// user deferrals only up to its deadline: a 4h deferral is granted, a 24h
// one is cut at the urgent deadline, and the next is refused.
func TestUrgentDeadlineCutsDeferrals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		start := time.Now()
		rules := reboot.Rules{NotifyAhead: time.Hour, Deadline: 7 * 24 * time.Hour,
			DeferChoices: reboot.ChoicesFromDurations([]time.Duration{4 * time.Hour, 24 * time.Hour}), MaxDeferrals: 5}
		n := newNode(t, "desk", rules, start.Add(-time.Hour), reboot.Config{})
		if err := n.o.SetRequiredUrgent(ctx, start, "libfoo 1.2 needs a restart", []string{"libfoo 1.2"},
			reboot.Urgent{Deadline: 12 * time.Hour, Why: "urgent[0]"}); err != nil {
			t.Fatal(err)
		}
		urgentBy := start.Add(12 * time.Hour)
		st, err := n.o.Defer(ctx, "alice (uid 1000)", "4h")
		if err != nil || !st.DeferredUntil.Equal(start.Add(5*time.Hour)) {
			t.Fatalf("4h deferral: until %v, %v; want 05:00", st.DeferredUntil, err)
		}
		for _, c := range st.Choices {
			if max := int64(7 * time.Hour / time.Second); c.Seconds > max {
				t.Errorf("choice %s offers %ds, past the urgent deadline", c.Duration, c.Seconds)
			}
		}
		st, err = n.o.Defer(ctx, "alice (uid 1000)", "24h")
		if err != nil || !st.DeferredUntil.Equal(urgentBy) || !st.NextAutomatic.Equal(urgentBy) {
			t.Fatalf("24h deferral: until %v, next %v, %v; want cut at the urgent deadline %v", st.DeferredUntil, st.NextAutomatic, err, urgentBy)
		}
		if _, err := n.o.Defer(ctx, "alice (uid 1000)", "4h"); !reboot.IsDenied(err) {
			t.Errorf("a deferral once the restart is due at the urgent deadline: %v, want denied", err)
		}
	})
}
