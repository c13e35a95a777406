package reboottest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

func TestClock(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := NewClock(start)
	soon, later := c.After(time.Minute), c.After(time.Hour)
	if n := c.Waiters(); n != 2 {
		t.Fatalf("waiters = %d", n)
	}
	if err := c.WaitForWaiters(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
	c.Advance(30 * time.Minute)
	select {
	case got := <-soon:
		if !got.Equal(start.Add(30 * time.Minute)) {
			t.Errorf("fired with %v", got)
		}
	default:
		t.Fatal("the 1-minute waiter did not fire after 30 minutes")
	}
	select {
	case <-later:
		t.Fatal("the 1-hour waiter fired after 30 minutes")
	default:
	}
	c.Set(start) // never back
	if !c.Now().Equal(start.Add(30 * time.Minute)) {
		t.Errorf("clock went back to %v", c.Now())
	}
	if got := <-c.After(0); !got.Equal(c.Now()) {
		t.Errorf("After(0) = %v", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.WaitForWaiters(ctx, 5); err == nil {
		t.Error("WaitForWaiters returned without enough waiters")
	}
}

func TestLeasesLimitAndTTL(t *testing.T) {
	c := NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	l := NewLeases(c.Now)
	ctx := context.Background()
	a, b := l.For("a"), l.For("b")
	try := func(who string, lease interface {
		TryAcquire(context.Context, string, int, time.Duration) (bool, error)
	}, want bool) {
		t.Helper()
		got, err := lease.TryAcquire(ctx, "site:x", 1, 10*time.Minute)
		if err != nil || got != want {
			t.Fatalf("%s acquire = %v, %v; want %v", who, got, err, want)
		}
	}
	try("a", a, true)
	try("a again", a, true)
	try("b while a holds", b, false)
	c.Advance(10*time.Minute - time.Second)
	try("b just before a's TTL", b, false)
	c.Advance(time.Second)
	try("b after a's TTL", b, true)
	if h := l.Holders("site:x"); !slices.Equal(h, []string{"b"}) {
		t.Errorf("holders %q", h)
	}
	if err := b.Release(ctx, "site:x"); err != nil {
		t.Fatal(err)
	}
	try("a after b released", a, true)
	if m := l.MaxHolders("site:x"); m != 1 {
		t.Errorf("max holders %d", m)
	}
}

func TestRebooter(t *testing.T) {
	r := NewRebooter()
	r.FailWith(errors.New("no"))
	if err := r.Reboot(context.Background(), "m1"); err == nil {
		t.Error("FailWith ignored")
	}
	r.FailWith(nil)
	if err := r.Reboot(context.Background(), "m2"); err != nil {
		t.Error(err)
	}
	if got := r.Calls(); !slices.Equal(got, []string{"m1", "m2"}) {
		t.Errorf("calls %q", got)
	}
	if m, err := r.Wait(context.Background()); err != nil || m != "m1" {
		t.Errorf("Wait = %q, %v", m, err)
	}
}
