package tufrepo

import (
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"github.com/patchring/patchring/policy/credential"
)

func TestFleetDocument(t *testing.T) {
	dir, keys := t.TempDir(), t.TempDir()+"/keys"
	r, err := Init(dir, keys, Options{Passphrase: "pw"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.FleetDocument(); !errors.Is(err, ErrNoFleet) {
		t.Fatalf("FleetDocument before init: %v", err)
	}
	doc, err := r.InitFleet()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.InitFleet(); !errors.Is(err, ErrExists) {
		t.Fatalf("second InitFleet: %v", err)
	}
	// Reopen: the CA key is encrypted with the repository's passphrase.
	r2, err := Open(dir, keys, "wrong")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r2.FleetKey(RoleFleetCA); !errors.Is(err, ErrBadPassphrase) {
		t.Fatalf("FleetKey with a wrong passphrase: %v", err)
	}
	r3, err := Open(dir, keys, "pw")
	if err != nil {
		t.Fatal(err)
	}
	ca, err := r3.FleetKey(RoleFleetCA)
	if err != nil {
		t.Fatal(err)
	}
	if !ca.Public().(ed25519.PublicKey).Equal(doc.CA[0]) {
		t.Fatal("CA key does not match the published document")
	}
	before := r3.Versions().Targets
	node, _ := credential.NodeIDFromKey(make(ed25519.PublicKey, 32))
	v, err := r3.UpdateFleet(func(d *credential.Document) error {
		d.Revoked.Nodes = append(d.Revoked.Nodes, credential.RevokedNode{NodeID: node, Reason: "test", At: time.Now()})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if v.Targets != before+1 {
		t.Fatalf("targets version %d after update, want %d", v.Targets, before+1)
	}
	got, err := r3.FleetDocument()
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Revoked.Nodes) != 1 || got.Revoked.Nodes[0].NodeID != node {
		t.Fatalf("revocation not published: %+v", got.Revoked)
	}
	// A change that makes the document invalid publishes nothing.
	if _, err := r3.UpdateFleet(func(d *credential.Document) error { d.CA = nil; return nil }); err == nil {
		t.Fatal("document without CA published")
	}
	if r3.Versions().Targets != v.Targets {
		t.Fatal("failed update changed the published version")
	}
}
