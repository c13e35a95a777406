package daemon

import (
	"testing"

	"github.com/patchring/patchring/daemon/engine"
)

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
	got := map[string]bool{}
	for _, r := range res {
		got[r.Package+"="+r.Version] = r.Succeeded
	}
	want := map[string]bool{"footool=1.1": true, "libfoo=1.1": true, "badtool=1.1": false}
	if len(got) != len(want) {
		t.Fatalf("results %+v, want %v", res, want)
	}
	for k, v := range want {
		if s, ok := got[k]; !ok || s != v {
			t.Errorf("%s: got %v (present %v), want %v", k, s, ok, v)
		}
	}
}
