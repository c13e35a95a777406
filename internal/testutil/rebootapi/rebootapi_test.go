package rebootapi

import (
	"context"
	"testing"
	"time"

	"github.com/patchring/patchring/daemon/client"
)

// TestServesTheOrchestratorThroughTheClient: what the harness sets is what
// a client sees over the socket, and its clock drives the restart.
func TestServesTheOrchestratorThroughTheClient(t *testing.T) {
	start := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	s := Start(t, Options{Start: start, Rules: Rules{Deadline: 2 * time.Hour, DeferChoices: []time.Duration{time.Hour}, MaxDeferrals: 1}})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c := &client.Client{Socket: s.Socket}
	if st, err := c.RebootStatus(ctx); err != nil || st.Required {
		t.Fatalf("before: %+v, %v; want no restart pending", st, err)
	}
	if err := s.SetRequired(ctx, "Kernel update", []string{"linux-image-amd64 6.1.140-1"}); err != nil {
		t.Fatal(err)
	}
	st, err := c.RebootStatus(ctx)
	if err != nil || !st.Required || st.Reason != "Kernel update" || st.DeferralsLeft != 1 {
		t.Fatalf("after SetRequired: %+v, %v", st, err)
	}
	if !s.Now().Equal(start) {
		t.Errorf("clock at %v, want %v", s.Now(), start)
	}
	s.SetClock(start.Add(3 * time.Hour)) // past the deadline
	if _, err := s.WaitReboot(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(s.Reboots()); n != 1 {
		t.Errorf("%d restarts recorded, want 1", n)
	}
}
