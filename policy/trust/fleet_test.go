package trust_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/patchring/patchring/policy/credential"
	"github.com/patchring/patchring/policy/trust"
	"github.com/patchring/patchring/policy/tufrepo"
)

// The fleet document travels beside the policy: fetched and verified
// against its signed hashes, kept with the last good state across restarts,
// served to peers, and replaced when the admin publishes a revocation.
func TestFleetDocument(t *testing.T) {
	f := newFixture(t, tufrepo.Options{})
	c, res := f.refreshed()
	if res.State.Fleet != nil || res.State.FleetTarget != nil {
		t.Fatal("a repository without fleet.json gave a fleet document")
	}
	if _, err := f.reopen().InitFleet(); err != nil {
		t.Fatal(err)
	}
	res, err := c.Refresh(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want, err := f.reopen().FleetDocument()
	if err != nil {
		t.Fatal(err)
	}
	tr, err := credential.ParseDocument(res.State.Fleet)
	if err != nil {
		t.Fatalf("verified fleet.json does not parse: %v", err)
	}
	if got := tr.Document(); len(got.CA) != 1 || !bytes.Equal(got.CA[0], want.CA[0]) {
		t.Fatalf("fleet CA %x, want %x", got.CA, want.CA)
	}
	if served, ok := c.VerifiedFile("targets/" + trust.FleetTarget); !ok || !bytes.Equal(served, res.State.Fleet) {
		t.Errorf("fleet.json not served to peers (ok=%v)", ok)
	}
	if served, ok := c.VerifiedFile("targets/" + res.State.FleetTarget.Hashes["sha256"] + "." + trust.FleetTarget); !ok || !bytes.Equal(served, res.State.Fleet) {
		t.Errorf("fleet.json not served by its consistent-snapshot name (ok=%v)", ok)
	}

	// A revocation is a new fleet.json.
	if _, err := f.reopen().UpdateFleet(func(d *credential.Document) error {
		d.Revoked.Serials = append(d.Revoked.Serials, 42)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	res, err = c.Refresh(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	tr, err = credential.ParseDocument(res.State.Fleet)
	if err != nil {
		t.Fatal(err)
	}
	if got := tr.Document().Revoked.Serials; len(got) != 1 || got[0] != 42 {
		t.Fatalf("revoked serials %v after the update, want [42]", got)
	}

	// A restarted agent loads it from its stored state.
	c2, err := trust.New(trust.Config{TrustedRoot: f.rootV1, StateDir: c.StateDir(), Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	st, err := c2.LastGood()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(st.Fleet, res.State.Fleet) {
		t.Error("the stored state lost the fleet document")
	}

	// Peers that verified it pass it on: a client fed only by two peers
	// gets the same document.
	c3 := f.client(func(cfg *trust.Config) {
		cfg.Sources = []trust.Source{&verifiedSource{name: "peer1", c: c}, &verifiedSource{name: "peer2", c: c2}}
	})
	res3, err := c3.Refresh(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(res3.State.Fleet, res.State.Fleet) {
		t.Error("fleet.json from a peer differs")
	}
}
