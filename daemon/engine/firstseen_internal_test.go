package engine

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/patchring/patchring/daemon/store"
	"github.com/patchring/patchring/policy"
)

// TestFirstSeenFromTheFleet: a deferral starts at the earlier of this
// node's own first sighting and the fleet's (the console's signed fleet
// status), so a node that was off when an update appeared does not start
// its deferral late; a later fleet time never moves it back.
func TestFirstSeenFromTheFleet(t *testing.T) {
	db, err := store.Open(filepath.Join(t.TempDir(), "state.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	fleet := map[policy.UpdateKey]time.Time{}
	e := New(Config{DB: db, FirstSeen: func(k policy.UpdateKey) (time.Time, bool) {
		at, ok := fleet[k]
		return at, ok
	}})
	now := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	u := policy.Update{Source: "apt", Package: "openssl", Version: "3.0.15-1~deb12u1"}
	if got, err := e.firstSeen(u, now); err != nil || !got.Equal(now) {
		t.Fatalf("no fleet time: first seen %v (%v), want now", got, err)
	}
	week := now.Add(-7 * 24 * time.Hour)
	fleet[u.Key()] = week
	if got, _ := e.firstSeen(u, now.Add(time.Hour)); !got.Equal(week) {
		t.Errorf("fleet saw it a week earlier: first seen %v, want %v", got, week)
	}
	fleet[u.Key()] = now.Add(time.Hour)
	if got, _ := e.firstSeen(u, now.Add(2*time.Hour)); !got.Equal(now) {
		t.Errorf("fleet saw it later: first seen %v, want the node's own %v", got, now)
	}
}
