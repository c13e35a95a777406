package rungroup

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

func TestFirstFailureStopsTheOthers(t *testing.T) {
	g, ctx := New(context.Background())
	boom := errors.New("boom")
	stopped := make(chan string, 2)
	for _, name := range []string{"a", "b"} {
		g.Go(name, func(ctx context.Context) error {
			<-ctx.Done()
			stopped <- name
			return errors.New("stopping") // dropped: the group was cancelled
		})
	}
	g.Go("failing", func(context.Context) error { return boom })
	<-g.Done()
	if ctx.Err() == nil {
		t.Fatal("group context not cancelled after a failure")
	}
	err := g.Stop()
	if !errors.Is(err, boom) || err.Error() != "failing: boom" {
		t.Fatalf("Stop() = %v, want failing: boom", err)
	}
	if len(stopped) != 2 {
		t.Fatalf("%d of 2 members stopped", len(stopped))
	}
}

func TestNilReturnIsNotAFailure(t *testing.T) {
	g, ctx := New(context.Background())
	done := make(chan struct{})
	g.Go("short", func(context.Context) error { close(done); return nil })
	g.Go("long", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
	<-done
	if ctx.Err() != nil {
		t.Fatal("a member returning nil ended the group")
	}
	if err := g.Stop(); err != nil {
		t.Fatalf("Stop() = %v, want nil after a plain cancel", err)
	}
}

func TestParentCancelIsClean(t *testing.T) {
	parent, cancel := context.WithCancel(context.Background())
	g, _ := New(parent)
	g.Go("m", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
	cancel()
	<-g.Done()
	if err := g.Stop(); err != nil {
		t.Fatalf("Stop() = %v after the parent was cancelled", err)
	}
}

func TestOnlyTheFirstFailureCounts(t *testing.T) {
	g, _ := New(context.Background())
	first := errors.New("first")
	release := make(chan struct{})
	g.Go("one", func(context.Context) error { return first })
	g.Go("two", func(ctx context.Context) error {
		<-ctx.Done()
		<-release
		return errors.New("second")
	})
	<-g.Done()
	close(release)
	if err := g.Stop(); !errors.Is(err, first) {
		t.Fatalf("Stop() = %v, want the first failure", err)
	}
}

func TestStopWithinGrace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, _ := New(context.Background())
		release := make(chan struct{})
		g.Go("stuck", func(context.Context) error { <-release; return nil })
		stopped, err := g.StopWithin(5 * time.Second)
		if err != nil || stopped {
			t.Fatalf("StopWithin = %v, %v; want false, nil for a member that ignores its context", stopped, err)
		}
		close(release)
		g.wg.Wait()

		g, _ = New(context.Background())
		g.Go("polite", func(ctx context.Context) error { <-ctx.Done(); return nil })
		start := time.Now()
		if stopped, err := g.StopWithin(time.Hour); err != nil || !stopped {
			t.Fatalf("StopWithin = %v, %v; want true, nil", stopped, err)
		}
		if time.Since(start) != 0 {
			t.Fatalf("StopWithin waited %v for a member that had returned", time.Since(start))
		}
	})
}
