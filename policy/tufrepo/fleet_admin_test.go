package tufrepo

import (
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchring/patchring/policy/credential"
)

func TestFleetIssuersAndCARotation(t *testing.T) {
	defer func(n int) { scryptN = n }(scryptN)
	scryptN = 1 << 10
	base := t.TempDir()
	dir, keys, out := filepath.Join(base, "repo"), filepath.Join(base, "keys"), filepath.Join(base, "serve")
	r, err := Init(dir, keys, Options{Passphrase: "pw"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := r.CreateIssuer(IssuerSpec{Name: "x", Valid: time.Hour, OutDir: out}); !errors.Is(err, ErrNoFleet) {
		t.Fatalf("issuer before ca init: %v", err)
	}
	if _, err := r.InitFleet(); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := r.CreateIssuer(IssuerSpec{Name: "in-repo", Valid: time.Hour, OutDir: filepath.Join(dir, "k")}); err == nil || !strings.Contains(err.Error(), "inside repository") {
		t.Fatalf("issuer key inside the repository: %v", err)
	}
	if _, _, _, err := r.CreateIssuer(IssuerSpec{Name: "bad name", Valid: time.Hour, OutDir: out}); err == nil {
		t.Fatal("issuer name with a space accepted")
	}
	if m, _ := filepath.Glob(filepath.Join(out, "*")); len(m) != 0 {
		t.Fatalf("refused issuers left files: %v", m)
	}
	ic, k, _, err := r.CreateIssuer(IssuerSpec{Name: "berlin-serve", Sites: []string{"berlin"}, Valid: 180 * 24 * time.Hour, OutDir: out, Passphrase: "svc"})
	if err != nil {
		t.Fatal(err)
	}
	kf, err := ReadKeyFile(k.Path, []byte("svc"), true)
	if err != nil || kf.Role != RoleFleetIssuer || !kf.Public.Equal(ic.Key) {
		t.Fatalf("issuer key file: %+v %v", kf, err)
	}
	if _, _, _, err := r.CreateIssuer(IssuerSpec{Name: "berlin-serve", Valid: time.Hour, OutDir: out}); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate issuer: %v", err)
	}
	if m, _ := filepath.Glob(filepath.Join(out, "*.json")); len(m) != 1 {
		t.Fatalf("a refused duplicate left a key file: %v", m)
	}

	// Rotate: a second CA key, the issuer re-signed by it, then the old key
	// removed; a credential from the issuer verifies throughout.
	node, _ := credential.NodeIDFromKey(make(ed25519.PublicKey, 32))
	cred := &credential.Credential{NodeID: node, Site: "berlin", Serial: 7, NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour)}
	if err := cred.Sign(kf.Private); err != nil {
		t.Fatal(err)
	}
	cur := r
	verify := func() error {
		doc, err := cur.FleetDocument()
		if err != nil {
			return err
		}
		tr, err := credential.NewTrust(&doc)
		if err != nil {
			return err
		}
		return tr.Verify(cred, time.Now())
	}
	old, _ := r.SigningCA()
	oldID := credential.SignerIDOf(old.Public().(ed25519.PublicKey)).String()
	if _, err := r.RemoveFleetCA(oldID); err == nil || !strings.Contains(err.Error(), "only one") {
		t.Fatalf("removing the only CA key: %v", err)
	}
	newID, _, err := r.RotateFleetCA()
	if err != nil {
		t.Fatal(err)
	}
	if now, _ := r.SigningCA(); credential.SignerIDOf(now.Public().(ed25519.PublicKey)) != newID {
		t.Fatal("after rotation the old CA key still signs")
	}
	if err := verify(); err != nil {
		t.Fatalf("issuer's credential after rotation: %v", err)
	}
	if _, err := r.RemoveFleetCA(oldID); err != nil {
		t.Fatal(err)
	}
	doc, _ := r.FleetDocument()
	if len(doc.CA) != 1 || credential.SignerIDOf(doc.CA[0]) != newID {
		t.Fatalf("CA keys after removal: %d", len(doc.CA))
	}
	if err := verify(); err != nil {
		t.Fatalf("issuer's credential after the old CA key left: %v", err)
	}
	if m, _ := filepath.Glob(filepath.Join(keys, retiredDir, RoleFleetCA+"-*.json")); len(m) != 1 {
		t.Fatalf("old CA key file not retired: %v", m)
	}
	// Reopened, the remaining key signs.
	r2, err := Open(dir, keys, "pw")
	if err != nil {
		t.Fatal(err)
	}
	if ca, err := r2.SigningCA(); err != nil || credential.SignerIDOf(ca.Public().(ed25519.PublicKey)) != newID {
		t.Fatalf("SigningCA after reopen: %v", err)
	}
	cur = r2

	if _, err := r2.RetireIssuer("nope"); !errors.Is(err, ErrNoSuchKey) {
		t.Fatalf("retire unknown issuer: %v", err)
	}
	if _, err := r2.RetireIssuer("berlin-serve"); err != nil {
		t.Fatal(err)
	}
	if err := verify(); !errors.Is(err, credential.ErrUnknownSigner) {
		t.Fatalf("credential of a retired issuer: %v", err)
	}
	if _, err := r2.RetireIssuer("berlin-serve"); err == nil || !strings.Contains(err.Error(), "already retired") {
		t.Fatalf("retire twice: %v", err)
	}
	if _, _, _, err := r2.CreateIssuer(IssuerSpec{Name: "berlin-serve", Valid: time.Hour, OutDir: out}); err == nil || !strings.Contains(err.Error(), "retired") {
		t.Fatalf("reusing a retired issuer's name: %v", err)
	}
	if _, err := os.Stat(k.Path); err != nil {
		t.Fatalf("issuer key file: %v", err)
	}
}
