package minrate_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/patchring/patchring/internal/minrate"
)

var errSlow = errors.New("too slow")

// TestCutsSilentTransfer: nothing arrives, the guard cancels after one
// window with a cause wrapping the slow error.
func TestCutsSilentTransfer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		g := minrate.Watch(context.Background(), 1000, time.Second, errSlow)
		defer g.Stop()
		<-g.Context().Done()
		if took := time.Since(start); took != time.Second {
			t.Errorf("cut after %v, want 1s (one window)", took)
		}
		cause := context.Cause(g.Context())
		if !errors.Is(cause, errSlow) {
			t.Fatalf("cause = %v, want errSlow", cause)
		}
		if !errors.Is(g.Slow(), errSlow) {
			t.Errorf("Slow() = %v, want errSlow", g.Slow())
		}
	})
}

// TestCutsTrickle: a source that sends below the rate is cut in the first
// window where it falls short, not before; one above it never is.
func TestCutsTrickle(t *testing.T) {
	for _, tc := range []struct {
		name    string
		perTick int           // bytes per 100 ms
		cutAt   time.Duration // 0: never within the test
	}{
		{"below", 99, time.Second}, // 990 B/s against 1000 B/s
		{"exactly", 100, 0},
		{"above", 500, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				start := time.Now()
				g := minrate.Watch(context.Background(), 1000, time.Second, errSlow)
				defer g.Stop()
				// The source sends just before each tick of the window, so
				// every window's count is exact.
				time.Sleep(50 * time.Millisecond)
				tick := time.NewTicker(100 * time.Millisecond)
				defer tick.Stop()
				for time.Since(start) < 10*time.Second {
					g.Add(tc.perTick)
					select {
					case <-g.Context().Done():
						if tc.cutAt == 0 {
							t.Fatalf("cut after %v: %v", time.Since(start), context.Cause(g.Context()))
						}
						if took := time.Since(start).Truncate(time.Second); took != tc.cutAt {
							t.Fatalf("cut after %v, want %v", took, tc.cutAt)
						}
						return
					case <-tick.C:
					}
				}
				if tc.cutAt != 0 {
					t.Fatalf("not cut within 10s, want after %v", tc.cutAt)
				}
				if g.Slow() != nil {
					t.Errorf("Slow() = %v, want nil", g.Slow())
				}
			})
		})
	}
}

// TestDoneKeepsContext: Done ends the watch (a finished transfer is not
// cut however long the reader takes) and keeps the context; Stop cancels
// it without a slow cause.
func TestDoneKeepsContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := minrate.Watch(context.Background(), 1000, time.Second, errSlow)
		g.Add(10)
		g.Done()
		time.Sleep(5 * time.Second)
		if err := g.Context().Err(); err != nil {
			t.Fatalf("context ended after Done: %v", context.Cause(g.Context()))
		}
		g.Stop()
		g.Stop() // idempotent
		if g.Context().Err() == nil {
			t.Fatal("Stop did not cancel the context")
		}
		if g.Slow() != nil || errors.Is(context.Cause(g.Context()), errSlow) {
			t.Errorf("Stop reads as slow: %v", context.Cause(g.Context()))
		}
		if g.Bytes() != 10 {
			t.Errorf("Bytes() = %d, want 10", g.Bytes())
		}
	})
}

// TestDisabled: a rate of zero watches nothing.
func TestDisabled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := minrate.Watch(context.Background(), 0, time.Second, errSlow)
		time.Sleep(time.Hour)
		if g.Context().Err() != nil {
			t.Fatal("a disabled guard cut the transfer")
		}
		g.Stop()
	})
}

// TestParentCancel: the guard's context follows its parent, and the
// watchdog exits with it (synctest fails the test on a goroutine left
// behind).
func TestParentCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		g := minrate.Watch(ctx, 1000, time.Second, errSlow)
		cancel()
		<-g.Context().Done()
		synctest.Wait()
		if g.Slow() != nil {
			t.Errorf("Slow() = %v after the parent's cancel", g.Slow())
		}
		g.Stop()
	})
}
