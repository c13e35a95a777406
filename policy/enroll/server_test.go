package enroll

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/patchring/patchring/policy/credential"
)

func TestEnrollIssuesTheTokensSiteAndTags(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.token(t, "berlin", []string{"lab", "kiosk"}, 2, time.Hour)
	a := newNode(t)
	c, raw, err := e.enroll(t, tok, a)
	if err != nil {
		t.Fatal(err)
	}
	if c.NodeID != a.id || c.Site != "berlin" || !slices.Equal(c.Tags, []string{"lab", "kiosk"}) {
		t.Fatalf("issued %s", c)
	}
	tr, _ := e.fleet.Fleet(context.Background())
	if _, err := tr.VerifyBytes(raw, a.id, e.clock.Now()); err != nil {
		t.Fatalf("issued credential does not verify: %v", err)
	}
	if got := c.NotAfter.Sub(e.clock.Now()); got != 30*24*time.Hour {
		t.Errorf("validity %s", got)
	}
	led := e.ledger(t)
	if len(led) != 1 || led[0].Serial != c.Serial || led[0].How != "token "+tok.ID || led[0].Site != "berlin" {
		t.Fatalf("ledger %+v", led)
	}

	// The same node again (its answer was lost): a new credential, no use spent.
	c2, _, err := e.enroll(t, tok, a)
	if err != nil {
		t.Fatal(err)
	}
	if c2.Serial == c.Serial {
		t.Error("re-enrollment returned the same serial")
	}
	b := newNode(t)
	if _, _, err := e.enroll(t, tok, b); err != nil {
		t.Fatalf("second node, second use: %v", err)
	}
	_, _, err = e.enroll(t, tok, newNode(t))
	if !errors.Is(err, ErrTokenUsedUp) {
		t.Fatalf("third node: err = %v, want used up", err)
	}
	if !strings.Contains(err.Error(), "used up (2 of 2 uses)") {
		t.Errorf("reason text: %v", err)
	}
	recs, err := e.store.Tokens()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].UsesLeft != 0 || !slices.Equal(recs[0].Nodes, []string{a.id, b.id}) {
		t.Fatalf("store %+v", recs)
	}
	if n := len(e.ledger(t)); n != 3 {
		t.Fatalf("ledger has %d records, want 3", n)
	}
}

func TestEnrollRefusals(t *testing.T) {
	e := newEnv(t, nil)
	good := e.token(t, "berlin", nil, 5, time.Hour)
	expiring := e.token(t, "berlin", nil, 5, time.Minute)
	outside := e.token(t, "paris", nil, 5, time.Hour) // the issuer may not issue for paris
	e.clock.Add(2 * time.Minute)

	wrongSecret := *good
	wrongSecret.Secret = bytes.Repeat([]byte{7}, secretLen)
	unknown := *good
	unknown.ID = "0123456789abcdef"
	foreign := *good
	foreign.Root = testRoot(t)

	for _, tc := range []struct {
		name string
		tok  *Token
		want error
		text string
	}{
		{"expired", expiring, ErrTokenExpired, "expired at"},
		{"wrong secret", &wrongSecret, ErrTokenSecret, "secret does not match"},
		{"unknown", &unknown, ErrTokenUnknown, "unknown to this service"},
		{"another fleet", &foreign, ErrTokenForeign, "another fleet"},
		{"site outside the issuer's scope", outside, ErrCannotIssue, "may not issue for site"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := e.enroll(t, tc.tok, newNode(t))
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("err = %v, want %v with %q", err, tc.want, tc.text)
			}
		})
	}
	t.Run("request bound to another token", func(t *testing.T) {
		n := newNode(t)
		req := n.request(t, EnrollNonce(expiring.ID, expiring.Secret), e.clock.Now())
		_, _, err := e.client.Enroll(context.Background(), good, req)
		if !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), "bound to another token") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("stale request", func(t *testing.T) {
		n := newNode(t)
		req := n.request(t, EnrollNonce(good.ID, good.Secret), e.clock.Now().Add(-time.Hour))
		_, _, err := e.client.Enroll(context.Background(), good, req)
		if !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), "check the node's clock") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("revoked node", func(t *testing.T) {
		n := newNode(t)
		e.fleet.revoke(n.id)
		_, _, err := e.enroll(t, good, n)
		if !errors.Is(err, ErrRevoked) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("oversized body", func(t *testing.T) {
		resp, err := http.Post(e.url+PathEnroll, "application/json", bytes.NewReader(make([]byte, MaxBody+1)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("status %s", resp.Status)
		}
	})
	if n := len(e.ledger(t)); n != 0 {
		t.Fatalf("refused requests left %d ledger records", n)
	}
	recs, _ := e.store.Tokens()
	for _, r := range recs {
		if r.UsesLeft != r.Uses {
			t.Errorf("token %s spent a use on a refusal: %d of %d left", r.ID, r.UsesLeft, r.Uses)
		}
	}
}

func TestRenew(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.token(t, "hamburg", []string{"pilot"}, 3, time.Hour)
	a := newNode(t)
	cur, raw, err := e.enroll(t, tok, a)
	if err != nil {
		t.Fatal(err)
	}
	renew := func(raw []byte, serial uint64, n node) (*credential.Credential, []byte, error) {
		return e.client.Renew(context.Background(), raw, n.request(t, RenewNonce(serial), e.clock.Now()))
	}
	e.clock.Add(20 * 24 * time.Hour)
	next, nraw, err := renew(raw, cur.Serial, a)
	if err != nil {
		t.Fatal(err)
	}
	if next.Serial == cur.Serial || next.Site != "hamburg" || !slices.Equal(next.Tags, []string{"pilot"}) || !next.NotAfter.After(cur.NotAfter) {
		t.Fatalf("renewed %s from %s", next, cur)
	}
	if led := e.ledger(t); led[len(led)-1].How != "renewal" {
		t.Errorf("ledger: %+v", led[len(led)-1])
	}

	t.Run("another node's credential", func(t *testing.T) {
		_, _, err := renew(nraw, next.Serial, newNode(t))
		if !errors.Is(err, ErrBadRequest) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("nonce of another credential", func(t *testing.T) {
		_, _, err := renew(nraw, cur.Serial, a)
		if !errors.Is(err, ErrBadRequest) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("forged", func(t *testing.T) {
		f := *next
		f.Tags = []string{"broad"}
		if err := f.Sign(newKey(t)); err != nil {
			t.Fatal(err)
		}
		fraw, _ := f.Marshal()
		_, _, err := renew(fraw, f.Serial, a)
		if !errors.Is(err, ErrCredentialInvalid) {
			t.Fatalf("err = %v", err)
		}
	})
	// Within the grace after expiry: still renewed.
	e.clock.Add(30*24*time.Hour + time.Hour)
	late, lraw, err := renew(nraw, next.Serial, a)
	if err != nil {
		t.Fatalf("renewal within the grace: %v", err)
	}
	// Beyond it: refused.
	e.clock.Add(31*24*time.Hour + 25*time.Hour)
	if _, _, err := renew(lraw, late.Serial, a); !errors.Is(err, ErrCredentialExpired) {
		t.Fatalf("renewal beyond the grace: %v", err)
	}

	b := newNode(t)
	e.clock.Add(-30 * 24 * time.Hour) // the token is long expired; enroll b through a new one
	tok2 := e.token(t, "berlin", nil, 1, time.Hour)
	bc, braw, err := e.enroll(t, tok2, b)
	if err != nil {
		t.Fatal(err)
	}
	e.fleet.revoke(b.id)
	_, _, err = renew(braw, bc.Serial, b)
	if !errors.Is(err, ErrRevoked) || !strings.Contains(err.Error(), "stolen laptop") {
		t.Fatalf("renewal of a revoked node: %v", err)
	}
}

func TestRateLimit(t *testing.T) {
	e := newEnv(t, func(c *ServerConfig) { c.Rate, c.Burst = 0.001, 3 })
	tok := e.token(t, "berlin", nil, 10, time.Hour)
	for i := range 3 {
		if _, _, err := e.enroll(t, tok, newNode(t)); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if _, _, err := e.enroll(t, tok, newNode(t)); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("fourth request: %v", err)
	}
	if ErrRateLimited.Reason.Final() || !ErrTokenUsedUp.Reason.Final() {
		t.Error("Final")
	}
}

func TestUnavailableFleet(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.token(t, "berlin", nil, 1, time.Hour)
	e.fleet.mu.Lock()
	e.fleet.doc.Version = 99
	e.fleet.mu.Unlock()
	if _, _, err := e.enroll(t, tok, newNode(t)); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v", err)
	}
}
