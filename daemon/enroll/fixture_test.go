package enroll

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/patchring/patchring/policy/credential"
	penroll "github.com/patchring/patchring/policy/enroll"
	"github.com/patchring/patchring/policy/tufrepo"
)

// fleetFixture is a fleet on 127.0.0.1: a TUF repository with fleet.json
// served as the origin, and an issuing service with a delegated key.
type fleetFixture struct {
	repoDir string
	repo    *tufrepo.Repo
	root    []byte
	origin  string
	store   *penroll.Store
	service string
	srv     *penroll.Server
}

// repoFleet reads fleet.json from the repository for every request.
type repoFleet struct{ dir string }

func (f repoFleet) Fleet(context.Context) (*credential.Trust, error) {
	return tufrepo.FleetTrust(f.dir)
}

func newFleet(t testing.TB, validity time.Duration) *fleetFixture {
	t.Helper()
	base := t.TempDir()
	f := &fleetFixture{repoDir: filepath.Join(base, "repo")}
	var err error
	if f.repo, err = tufrepo.Init(f.repoDir, filepath.Join(base, "keys"), tufrepo.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.repo.InitFleet(); err != nil {
		t.Fatal(err)
	}
	ca, err := f.repo.FleetKey(tufrepo.RoleFleetCA)
	if err != nil {
		t.Fatal(err)
	}
	pub, issuer, _ := ed25519.GenerateKey(rand.Reader)
	ic, err := credential.SignIssuer(ca, "test-service", pub, nil, time.Now().Add(-time.Hour), time.Now().AddDate(1, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.repo.UpdateFleet(func(d *credential.Document) error { d.Issuers = append(d.Issuers, ic); return nil }); err != nil {
		t.Fatal(err)
	}
	if f.root, err = f.repo.RootJSON(); err != nil {
		t.Fatal(err)
	}
	origin := httptest.NewServer(tufrepo.Handler(f.repoDir))
	t.Cleanup(origin.Close)
	f.origin = origin.URL
	data := filepath.Join(base, "service")
	if f.store, err = penroll.OpenStore(data); err != nil {
		t.Fatal(err)
	}
	if f.srv, err = penroll.NewServer(penroll.ServerConfig{Store: f.store, DataDir: data, IssuerKey: issuer, Fleet: repoFleet{f.repoDir}, Validity: validity}); err != nil {
		t.Fatal(err)
	}
	svc := httptest.NewServer(f.srv)
	t.Cleanup(svc.Close)
	f.service = svc.URL
	return f
}

func (f *fleetFixture) token(t testing.TB, site string, tags []string, uses int) *penroll.Token {
	t.Helper()
	id, secret, err := penroll.NewTokenSecret()
	if err != nil {
		t.Fatal(err)
	}
	tok := &penroll.Token{ID: id, Secret: secret, Origin: f.origin, Service: f.service, Root: f.root}
	if err := f.store.Add(penroll.TokenRecord{ID: id, SecretHash: penroll.HashSecret(secret), Fleet: tok.FleetID(), Site: site, Tags: tags,
		Uses: uses, UsesLeft: uses, Created: time.Now(), Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	return tok
}

func (f *fleetFixture) revoke(t testing.TB, nodeID string) {
	t.Helper()
	if _, err := f.repo.UpdateFleet(func(d *credential.Document) error {
		d.Revoked.Nodes = append(d.Revoked.Nodes, credential.RevokedNode{NodeID: nodeID, Reason: "decommissioned", At: time.Now()})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func newTestNode(t testing.TB) Node {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	id, err := credential.NodeIDFromKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return Node{ID: id, Hostname: "host-" + id[len(id)-5:], Sign: func(m []byte) ([]byte, error) { return ed25519.Sign(priv, m), nil }}
}

// handlerTransport carries requests to a handler in process.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, req)
	return rec.Result(), nil
}
