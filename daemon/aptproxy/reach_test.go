package aptproxy

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

func TestReachabilityBackoff(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	r := newReachability(func() time.Time { return now })
	ctx := context.Background()
	netErr := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("no route to host")}
	if err := r.check("vendor"); err != nil {
		t.Fatalf("unknown host: %v", err)
	}
	// Refused by the caller: not the host's fault.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	r.result(cctx, "vendor", context.Canceled)
	if err := r.check("vendor"); err != nil {
		t.Fatalf("after the caller hung up: %v", err)
	}
	// Each failure doubles the backoff up to its cap.
	want := reachMinBackoff
	for i := range 8 {
		r.result(ctx, "vendor", netErr)
		if err := r.check("vendor"); !errors.Is(err, errVendorDown) {
			t.Fatalf("failure %d: check = %v", i, err)
		}
		now = now.Add(want - time.Second)
		if err := r.check("vendor"); err == nil {
			t.Fatalf("failure %d: retried before its %s backoff", i, want)
		}
		now = now.Add(time.Second)
		if err := r.check("vendor"); err != nil {
			t.Fatalf("failure %d: not retried after its %s backoff: %v", i, want, err)
		}
		want = min(2*want, reachMaxBackoff)
	}
	if err := r.check("other"); err != nil {
		t.Fatalf("another host: %v", err)
	}
	// A timeout of the request counts; an answer forgets the host.
	tctx, tcancel := context.WithTimeout(ctx, -time.Second)
	defer tcancel()
	r.result(tctx, "slow", context.DeadlineExceeded)
	if err := r.check("slow"); !errors.Is(err, errVendorDown) {
		t.Fatalf("timed out host: %v", err)
	}
	r.result(ctx, "vendor", nil)
	r.result(ctx, "vendor", netErr)
	if now = now.Add(reachMinBackoff); r.check("vendor") != nil {
		t.Fatal("an answer did not reset the backoff")
	}
	// Not a network error (e.g. an HTTP status): not counted.
	r.result(ctx, "fine", errors.New("download: 503 Service Unavailable"))
	if err := r.check("fine"); err != nil {
		t.Fatalf("an HTTP error counted as unreachable: %v", err)
	}
}
