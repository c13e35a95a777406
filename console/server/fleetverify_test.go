package server

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patchring/patchring/console/report"
	"github.com/patchring/patchring/console/store"
	"github.com/patchring/patchring/internal/testutil"
	"github.com/patchring/patchring/policy/credential"
	"github.com/patchring/patchring/policy/credential/credtest"
)

// mutableFleet is a FleetSource whose document the test changes, as the
// admin does by publishing a new fleet.json.
type mutableFleet struct {
	mu sync.Mutex
	t  *credential.Trust
}

func (f *mutableFleet) Fleet(context.Context) (*credential.Trust, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t, nil
}

func (f *mutableFleet) set(t *credential.Trust) {
	f.mu.Lock()
	f.t = t
	f.mu.Unlock()
}

func TestFleetVerifier(t *testing.T) {
	st, err := store.OpenSQLite(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ca, foreign := credtest.NewCA(t), credtest.NewCA(t)
	fleet := &mutableFleet{t: ca.Trust(t, credential.Revocations{})}
	now := time.Now() // credentials are minted around the real clock
	srv := New(Config{Store: st, Verifier: FleetVerifier{Fleet: fleet, Now: func() time.Time { return now }}, Logger: testutil.Logger(t)})

	a, b, c, d, e := newTestNode(11), newTestNode(12), newTestNode(13), newTestNode(14), newTestNode(15)
	_, credA := ca.Issue(t, a.id, credtest.Spec{Hostname: "ws-a", Site: "berlin", Tags: []string{"lab"}})
	_, credB := ca.Issue(t, b.id, credtest.Spec{Hostname: "ws-b", Site: "berlin"})
	_, credE := foreign.Issue(t, e.id, credtest.Spec{Hostname: "ws-e", Site: "berlin"})
	forgedD := ca.Forge(t, d.id, credtest.Spec{Hostname: "ws-d", Site: "berlin"})
	with := func(env report.Envelope, cred []byte) report.Envelope { env.Credential = cred; return env }

	// a claims another site in its record: the credential's site wins.
	claimParis := func(r *report.Record) { r.Site = "paris"; r.Hostname = "liar" }
	res := mustIngest(t, srv,
		with(a.sign(t, 1, claimParis), credA),
		with(b.sign(t, 1, nil), nil),     // no credential
		with(c.sign(t, 1, nil), credB),   // someone else's credential
		with(d.sign(t, 1, nil), forgedD), // forged CA signature
		with(e.sign(t, 1, nil), credE),   // another fleet's credential
	)
	want := []struct{ status, reason string }{
		{"stored", ""},
		{"refused", "no fleet credential"},
		{"refused", "another node"},
		{"refused", "does not verify"},
		{"refused", "does not trust"},
	}
	for i, w := range want {
		if res[i].Status != w.status || !strings.Contains(res[i].Error, w.reason) {
			t.Errorf("record %d: %+v, want %s %q", i, res[i], w.status, w.reason)
		}
	}
	n, err := st.Node(t.Context(), a.id)
	if err != nil {
		t.Fatal(err)
	}
	if n.Site != "berlin" || n.Hostname != "ws-a" {
		t.Errorf("node a: site %q hostname %q, want the credential's berlin, ws-a", n.Site, n.Hostname)
	}

	// b revoked by a new fleet document: its next record is refused,
	// a's still stored.
	fleet.set(ca.Trust(t, credential.Revocations{Nodes: []credential.RevokedNode{{NodeID: b.id, Reason: "stolen", At: now}}}))
	res = mustIngest(t, srv, with(b.sign(t, 2, nil), credB), with(a.sign(t, 2, nil), credA))
	if res[0].Status != "refused" || !strings.Contains(res[0].Error, "revoked") || res[1].Status != "stored" {
		t.Errorf("after revocation: %+v", res)
	}
	// A fleet document that cannot be read fails the request (the
	// reporter keeps the records) rather than refusing them.
	fleet.set(nil)
	srv2 := New(Config{Store: st, Verifier: FleetVerifier{Fleet: brokenFleet{}}, Logger: testutil.Logger(t)})
	if _, err := srv2.Ingest(t.Context(), IngestRequest{Records: []report.Envelope{with(a.sign(t, 3, nil), credA)}}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("fleet document unavailable: %v, want ErrUnavailable", err)
	}
	fleet.set(ca.Trust(t, credential.Revocations{}))
	// An expired credential is refused.
	now = now.Add(60 * 24 * time.Hour)
	res = mustIngest(t, srv, with(a.sign(t, 3, nil), credA))
	if res[0].Status != "refused" || !strings.Contains(res[0].Error, "expired") {
		t.Errorf("expired: %+v", res)
	}
}

type brokenFleet struct{}

func (brokenFleet) Fleet(context.Context) (*credential.Trust, error) {
	return nil, errors.New("origin unreachable")
}

func mustIngest(t *testing.T, srv *Server, envs ...report.Envelope) []IngestResult {
	t.Helper()
	resp, err := srv.Ingest(t.Context(), IngestRequest{Records: envs})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Results
}
