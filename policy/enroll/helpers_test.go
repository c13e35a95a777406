package enroll

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/patchring/patchring/policy/credential"
	"github.com/patchring/patchring/policy/tufrepo"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// clock is a settable clock for the service and the requests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fleet is a FleetSource whose document tests change.
type fleet struct {
	mu  sync.Mutex
	doc credential.Document
}

func (f *fleet) Fleet(context.Context) (*credential.Trust, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return credential.NewTrust(&f.doc)
}

func (f *fleet) revoke(nodeID string) {
	f.mu.Lock()
	f.doc.Revoked.Nodes = append(f.doc.Revoked.Nodes, credential.RevokedNode{NodeID: nodeID, Reason: "stolen laptop", At: t0})
	f.mu.Unlock()
}

func newKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// testRoot makes a real, self-signed root.json.
func testRoot(t testing.TB) []byte {
	t.Helper()
	dir := t.TempDir()
	r, err := tufrepo.Init(filepath.Join(dir, "repo"), filepath.Join(dir, "keys"), tufrepo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	root, err := r.RootJSON()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

type node struct {
	id  string
	key ed25519.PrivateKey
}

func newNode(t testing.TB) node {
	t.Helper()
	k := newKey(t)
	id, err := credential.NodeIDFromKey(k.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	return node{id: id, key: k}
}

func (n node) request(t testing.TB, nonce string, now time.Time) *credential.Request {
	t.Helper()
	r, err := credential.NewRequest(n.id, "host-"+n.id[len(n.id)-6:], nonce, now, func(m []byte) ([]byte, error) {
		return ed25519.Sign(n.key, m), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// env is a running issuing service with one fleet.
type env struct {
	clock  *clock
	fleet  *fleet
	ca     ed25519.PrivateKey
	store  *Store
	data   string
	srv    *Server
	url    string
	root   []byte
	client *Client
}

func newEnv(t testing.TB, mod func(*ServerConfig)) *env {
	t.Helper()
	e := &env{clock: &clock{t: t0}, ca: newKey(t), data: t.TempDir(), root: testRoot(t)}
	issuer := newKey(t)
	ic, err := credential.SignIssuer(e.ca, "svc", issuer.Public().(ed25519.PublicKey), []string{"berlin", "hamburg"}, t0.Add(-time.Hour), t0.AddDate(1, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	e.fleet = &fleet{doc: credential.Document{Version: 1, CA: []ed25519.PublicKey{e.ca.Public().(ed25519.PublicKey)}, Issuers: []credential.IssuerCert{ic}}}
	if e.store, err = OpenStore(e.data); err != nil {
		t.Fatal(err)
	}
	cfg := ServerConfig{Store: e.store, DataDir: e.data, IssuerKey: issuer, Fleet: e.fleet, Now: e.clock.Now, Validity: 30 * 24 * time.Hour, RenewGrace: 24 * time.Hour}
	if mod != nil {
		mod(&cfg)
	}
	if e.srv, err = NewServer(cfg); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(e.srv)
	t.Cleanup(hs.Close)
	e.url = hs.URL
	e.client = &Client{Service: hs.URL}
	return e
}

// token adds a token to the store and returns it.
func (e *env) token(t testing.TB, site string, tags []string, uses int, ttl time.Duration) *Token {
	t.Helper()
	id, secret, err := NewTokenSecret()
	if err != nil {
		t.Fatal(err)
	}
	tok := &Token{ID: id, Secret: secret, Origin: "http://127.0.0.1:1/", Service: e.url, Root: e.root}
	if err := e.store.Add(TokenRecord{ID: id, SecretHash: HashSecret(secret), Fleet: tok.FleetID(), Site: site, Tags: tags,
		Uses: uses, UsesLeft: uses, Created: e.clock.Now(), Expires: e.clock.Now().Add(ttl)}); err != nil {
		t.Fatal(err)
	}
	return tok
}

func (e *env) enroll(t testing.TB, tok *Token, n node) (*credential.Credential, []byte, error) {
	t.Helper()
	return e.client.Enroll(context.Background(), tok, n.request(t, EnrollNonce(tok.ID, tok.Secret), e.clock.Now()))
}

func (e *env) ledger(t testing.TB) []credential.Issued {
	t.Helper()
	recs, err := credential.ReadLedger(filepath.Join(e.data, LedgerFile))
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
