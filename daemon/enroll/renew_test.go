package enroll

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/patchring/patchring/internal/testutil"
	"github.com/patchring/patchring/policy/credential"
	penroll "github.com/patchring/patchring/policy/enroll"
)

// memFleet is a fleet document in memory that the test changes.
type memFleet struct {
	mu  sync.Mutex
	doc credential.Document
}

func (f *memFleet) Fleet(context.Context) (*credential.Trust, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return credential.NewTrust(&f.doc)
}

// TestRenewal: the renewer renews at about two thirds of the lifetime,
// writes node.credential, and after the node is revoked logs the refusal
// and shows it in the status, keeping the old credential.
func TestRenewal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, ca, _ := ed25519.GenerateKey(rand.Reader)
		ipub, issuer, _ := ed25519.GenerateKey(rand.Reader)
		ic, err := credential.SignIssuer(ca, "svc", ipub, nil, time.Now().Add(-time.Hour), time.Now().AddDate(1, 0, 0))
		if err != nil {
			t.Fatal(err)
		}
		fleet := &memFleet{doc: credential.Document{Version: 1, CA: []ed25519.PublicKey{ca.Public().(ed25519.PublicKey)}, Issuers: []credential.IssuerCert{ic}}}
		data := t.TempDir()
		store, err := penroll.OpenStore(data)
		if err != nil {
			t.Fatal(err)
		}
		srv, err := penroll.NewServer(penroll.ServerConfig{Store: store, DataDir: data, IssuerKey: issuer, Fleet: fleet, Validity: 3 * time.Hour, RenewGrace: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		client := &penroll.Client{Service: "http://issuing.invalid", Transport: handlerTransport{srv}}
		node := newTestNode(t)
		id, secret, _ := penroll.NewTokenSecret()
		tok := &penroll.Token{ID: id, Secret: secret}
		if err := store.Add(penroll.TokenRecord{ID: id, SecretHash: penroll.HashSecret(secret), Fleet: penroll.FleetID(nil), Site: "berlin",
			Tags: []string{"pilot"}, Uses: 1, UsesLeft: 1, Expires: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		req, _ := credential.NewRequest(node.ID, node.Hostname, penroll.EnrollNonce(id, secret), time.Now(), node.Sign)
		first, raw, err := client.Enroll(context.Background(), tok, req)
		if err != nil {
			t.Fatal(err)
		}
		state := t.TempDir()
		os.WriteFile(filepath.Join(state, credential.FileName), raw, 0o600)
		if err := writeState(state, State{Service: "http://issuing.invalid", Enrolled: time.Now()}); err != nil {
			t.Fatal(err)
		}
		logs := &testutil.SyncBuffer{}
		r, err := NewRenewer(RenewerConfig{StateDir: state, Node: node, Client: client, Log: slog.New(slog.NewTextHandler(logs, nil)), Jitter: func() float64 { return 0.5 }})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		synctest.Wait()
		if st := r.Status(); st.State != "ok" || st.Details["serial"] != fmtSerial(first.Serial) {
			t.Fatalf("status before renewal: %+v", st)
		}
		// Not yet at 1h59m (the credential started a minute before issue).
		time.Sleep(2*time.Hour - 2*time.Minute)
		synctest.Wait()
		if c, _, _ := ReadCredential(state); c.Serial != first.Serial {
			t.Fatal("renewed before two thirds of the lifetime")
		}
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		second, _, err := ReadCredential(state)
		if err != nil || second.Serial == first.Serial || second.Site != "berlin" || !second.NotAfter.After(first.NotAfter) {
			t.Fatalf("not renewed at two thirds: %v %v", second, err)
		}
		if st, _ := ReadState(state); st.LastRenewal.IsZero() {
			t.Error("state does not record the renewal")
		}

		fleet.mu.Lock()
		fleet.doc.Revoked.Nodes = []credential.RevokedNode{{NodeID: node.ID, Reason: "left the company", At: time.Now()}}
		fleet.mu.Unlock()
		time.Sleep(2 * time.Hour)
		synctest.Wait()
		st := r.Status()
		if st.State != "error" || st.Details["refused"] != "revoked" || !strings.Contains(st.Summary, "left the company") {
			t.Fatalf("status after a refused renewal: %+v", st)
		}
		if !strings.Contains(logs.String(), "credential renewal refused") {
			t.Errorf("refusal not logged:\n%s", logs)
		}
		if c, _, _ := ReadCredential(state); c.Serial != second.Serial {
			t.Error("a refused renewal changed node.credential")
		}
		if rec, _ := ReadState(state); rec.LastReason != "revoked" {
			t.Errorf("state %+v", rec)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains([]byte(logs.String()), []byte("credential renewed")) {
			t.Error("renewal not logged")
		}
	})
}

func fmtSerial(s uint64) string { return strconv.FormatUint(s, 10) }

func TestBackoff(t *testing.T) {
	for _, tc := range []struct {
		n     int
		final bool
		want  time.Duration
	}{{1, false, time.Minute}, {2, false, 2 * time.Minute}, {7, false, maxBackoff}, {40, false, maxBackoff}, {1, true, refusedBackoff}} {
		if got := backoff(tc.n, tc.final); got != tc.want {
			t.Errorf("backoff(%d, %v) = %s, want %s", tc.n, tc.final, got, tc.want)
		}
	}
}
