package bundle

import (
	"errors"
	"testing"
	"time"

	"github.com/patchring/patchring/p2p/content"
	"github.com/patchring/patchring/policy/trust"
)

// A Release file is pinned only while it is a release target of the
// verified state and that state has not expired, and only until then.
func TestPinnedReleases(t *testing.T) {
	rel := content.Sum([]byte("InRelease"))
	idx := content.Sum([]byte("Packages"))
	now := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	exp := now.Add(24 * time.Hour)
	entry := func(h content.Hash, kind, problem string) trust.AptEntry {
		return trust.AptEntry{TargetInfo: trust.TargetInfo{Hashes: map[string]string{"sha256": h.String()}}, Kind: kind, Problem: problem}
	}
	state := trust.State{Expires: trust.Expiries{Root: exp.Add(time.Hour), Timestamp: exp, Snapshot: exp, Targets: exp},
		Apt: []trust.AptEntry{entry(rel, "release", ""), entry(idx, "index", "")}}
	for _, c := range []struct {
		name   string
		state  func() (trust.State, error)
		h      content.Hash
		at     time.Time
		pinned bool
	}{
		{"pinned release", func() (trust.State, error) { return state, nil }, rel, now, true},
		{"index is not a release", func() (trust.State, error) { return state, nil }, idx, now, false},
		{"not a target", func() (trust.State, error) { return state, nil }, content.Sum([]byte("other")), now, false},
		{"metadata expired", func() (trust.State, error) { return state, nil }, rel, exp.Add(time.Second), false},
		{"no verified state", func() (trust.State, error) { return trust.State{}, errors.New("none") }, rel, now, false},
		{"entry with a problem", func() (trust.State, error) {
			s := state
			s.Apt = []trust.AptEntry{entry(rel, "release", "bad custom")}
			return s, nil
		}, rel, now, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			until, ok := PinnedReleases(c.state, func() time.Time { return c.at })(c.h)
			if ok != c.pinned || ok && !until.Equal(exp) {
				t.Fatalf("pinned = %v until %v, want %v until %v", ok, until, c.pinned, exp)
			}
		})
	}
}
