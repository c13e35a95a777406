package membership

import (
	"fmt"
	"testing"
	"time"

	"github.com/patchring/patchring/daemon/engine"
	"github.com/patchring/patchring/p2p/gossip"
	"github.com/patchring/patchring/policy"
)

// batchTx is one install transaction of n packages (a point release
// installed as one batch), with outcome o.
func batchTx(id uint64, n int, o engine.Outcome, prefix string) *engine.Tx {
	tx := &engine.Tx{ID: id, Kind: engine.KindInstall, Outcome: o}
	for i := range n {
		tx.Items = append(tx.Items, engine.Item{Source: "apt", Package: fmt.Sprintf("%s%d", prefix, i), From: "1", To: "2"})
	}
	return tx
}

// TestBatchResultsReachGates: a node that installed a 40-package batch
// announces all 40 outcomes, and the site's gates count every one of them
// for every member that reports it (the 8-result cap left 32 gates shut).
func TestBatchResultsReachGates(t *testing.T) {
	batch := batchTx(2, 40, engine.OutcomeInstalled, "lib")
	failed := batchTx(1, 1, engine.OutcomeRolledBack, "bad")
	rs := updateResults([]*engine.Tx{batch, failed})
	if len(rs) != 41 {
		t.Fatalf("%d results, want 41", len(rs))
	}
	var members []gossip.Member
	for i := range 3 {
		members = append(members, gossip.Member{NodeID: fmt.Sprint(i), Liveness: gossip.LivenessAlive,
			State: gossip.State{Ring: "lab", Results: rs}})
	}
	// A member visiting from another site (its credential names it) shares
	// payloads here but does not vote in this site's gates.
	members = append(members, gossip.Member{NodeID: "visitor", Liveness: gossip.LivenessAlive, Visiting: true,
		Credential: &gossip.Credential{Site: "other"}, State: gossip.State{Ring: "lab", Results: rs}})
	members = append(members, gossip.Member{NodeID: "dead", Liveness: gossip.LivenessDead, State: gossip.State{Ring: "lab", Results: rs}},
		gossip.Member{NodeID: "dup", Liveness: gossip.LivenessAlive, State: gossip.State{Ring: "pilot", Results: append(rs[:1:1], rs[0], rs[0])}})
	view := countResults(members)
	for i := range 40 {
		k := policy.UpdateKey{Source: "apt", Package: fmt.Sprintf("lib%d", i), Version: "2"}
		if got := view.Get("lab", k); got != (policy.RingStats{Succeeded: 3, Total: 3}) {
			t.Fatalf("lab stats for %v = %+v, want 3 of 3 succeeded", k, got)
		}
	}
	if got := view.Get("lab", policy.UpdateKey{Source: "apt", Package: "bad0", Version: "2"}); got != (policy.RingStats{Failed: 3, Total: 3}) {
		t.Errorf("lab stats for the rolled back package = %+v, want 3 failed", got)
	}
	if got := view.Get("pilot", policy.UpdateKey{Source: "apt", Package: "lib0", Version: "2"}); got != (policy.RingStats{Succeeded: 1, Total: 1}) {
		t.Errorf("a member repeating a result counted %+v, want one vote", got)
	}
	if got := view.Get("broad", policy.UpdateKey{Source: "apt", Package: "lib0", Version: "2"}); got != (policy.RingStats{}) {
		t.Errorf("a ring without members: %+v", got)
	}
	// More than fit: the newest MaxResults.
	many := updateResults([]*engine.Tx{batchTx(3, 50, engine.OutcomeInstalled, "new"), batch})
	if len(many) != gossip.MaxResults || many[0] != gossip.NewUpdateResult("apt", "new0", "2", true) {
		t.Fatalf("%d results starting %+v, want the newest %d", len(many), many[0], gossip.MaxResults)
	}
}

// TestUpdateResultsPerPackage: every package a batch installed is
// reported, what apt's solver added too; a removal is not an update; the
// later per-component transactions of a failed batch decide each
// package's result.
func TestUpdateResultsPerPackage(t *testing.T) {
	batch := &engine.Tx{ID: 1, Kind: engine.KindInstall, Outcome: engine.OutcomeRolledBack, Items: []engine.Item{
		{Source: "apt", Package: "footool", From: "1.0", To: "1.1", Requested: true, Action: engine.ActionUpgrade},
		{Source: "apt", Package: "libfoo", From: "1.0", To: "1.1", Action: engine.ActionUpgrade},
		{Source: "apt", Package: "badtool", From: "1.0", To: "1.1", Requested: true, Action: engine.ActionUpgrade},
		{Source: "apt", Package: "oldplugin", From: "1.0", Action: engine.ActionRemove},
	}}
	good := &engine.Tx{ID: 2, Kind: engine.KindInstall, Outcome: engine.OutcomeInstalled, Batch: 1, Items: batch.Items[:2]}
	bad := &engine.Tx{ID: 3, Kind: engine.KindInstall, Outcome: engine.OutcomeRolledBack, Batch: 1, Items: batch.Items[2:3]}
	res := updateResults([]*engine.Tx{bad, good, batch}) // newest first
	got := map[gossip.ResultID]bool{}
	for _, r := range res {
		got[r.ID] = r.Succeeded
	}
	want := map[gossip.ResultID]bool{
		gossip.ResultIDOf("apt", "footool", "1.1"): true,
		gossip.ResultIDOf("apt", "libfoo", "1.1"):  true,
		gossip.ResultIDOf("apt", "badtool", "1.1"): false,
	}
	if len(got) != len(want) {
		t.Fatalf("results %+v, want %v", res, want)
	}
	for k, v := range want {
		if s, ok := got[k]; !ok || s != v {
			t.Errorf("%x: got %v (present %v), want %v", k, s, ok, v)
		}
	}
}

// The members a node ranks for a WAN fetch: live members of its site and
// ring with its package format, and those whose state has not arrived yet
// (memberlist says alive before gossip brings the ring). Leaving those out
// let the node ranked second fetch a second WAN copy while the first did.
func TestSameRing(t *testing.T) {
	alive := gossip.LivenessAlive
	members := []gossip.Member{
		{NodeID: "self", Local: true, Site: "branch", Liveness: alive},
		{NodeID: "peer", Site: "branch", Liveness: alive, StateVersion: 3, State: gossip.State{Ring: "all", Format: "deb"}},
		{NodeID: "no-state-yet", Liveness: alive},
		{NodeID: "no-state-credential", Liveness: alive, Credential: &gossip.Credential{Site: "branch"}},
		{NodeID: "no-state-visitor", Liveness: alive, Credential: &gossip.Credential{Site: "hq"}},
		{NodeID: "no-policy-yet", Site: "branch", Liveness: alive, StateVersion: 1},
		{NodeID: "other-ring", Site: "branch", Liveness: alive, StateVersion: 2, State: gossip.State{Ring: "pilot", Format: "deb"}},
		{NodeID: "rpm", Site: "branch", Liveness: alive, StateVersion: 2, State: gossip.State{Ring: "all", Format: "rpm"}},
		{NodeID: "old-agent", Site: "branch", Liveness: alive, StateVersion: 2, State: gossip.State{Ring: "all"}},
		{NodeID: "elsewhere", Site: "hq", Liveness: alive, StateVersion: 2, State: gossip.State{Ring: "all", Format: "deb"}},
		{NodeID: "dead", Site: "branch", Liveness: gossip.LivenessDead, State: gossip.State{Ring: "all", Format: "deb"}},
	}
	var got []string
	for _, m := range sameRing(members, "branch", "all", "deb") {
		got = append(got, m.ID)
	}
	want := []string{"self", "peer", "no-state-yet", "no-state-credential", "old-agent"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("ranked %v, want %v", got, want)
	}
}

// countingEngine is an engine whose history is read through a counter.
type countingEngine struct {
	txs     []*engine.Tx
	version uint64
	reads   int
}

func (e *countingEngine) Decisions() ([]policy.Decision, time.Time) { return nil, time.Time{} }
func (e *countingEngine) History(int) ([]*engine.Tx, error) {
	e.reads++
	return e.txs, nil
}
func (e *countingEngine) HistoryVersion() uint64 { return e.version }

// TestStateReadsHistoryWhenItChanged: the state built every couple of
// seconds reads the engine's whole history only after it changed, and
// says what it holds.
func TestStateReadsHistoryWhenItChanged(t *testing.T) {
	ended := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	ok := batchTx(2, 3, engine.OutcomeInstalled, "lib")
	ok.Ended = ended
	eng := &countingEngine{txs: []*engine.Tx{ok, batchTx(1, 1, engine.OutcomeRolledBack, "bad")}}
	f := &Membership{cfg: Config{Engine: func() Engine { return eng }}}
	check := func(reads, installed, failed, results int) {
		t.Helper()
		st := f.state()
		if eng.reads != reads || st.Updates.Installed != installed || st.Updates.Failed != failed || len(st.Results) != results || !st.LastUpdate.Equal(ended) {
			t.Fatalf("after %d reads: updates %+v, %d results, last %v; want %d reads, %d installed, %d failed, %d results, last %v",
				eng.reads, st.Updates, len(st.Results), st.LastUpdate, reads, installed, failed, results, ended)
		}
	}
	check(1, 1, 1, 4)
	check(1, 1, 1, 4) // unchanged: not read again
	eng.txs = append([]*engine.Tx{batchTx(3, 2, engine.OutcomeFailed, "new")}, eng.txs...)
	eng.version++
	check(2, 1, 2, 6)
}
