package enroll

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestPinnedTLS: a pinned client enrolls over TLS with the pinned
// certificate and refuses any other, without consulting system CAs.
func TestPinnedTLS(t *testing.T) {
	e := newEnv(t, nil)
	ts := httptest.NewTLSServer(e.srv)
	t.Cleanup(ts.Close)
	sum := sha256.Sum256(ts.Certificate().Raw)
	pin := hex.EncodeToString(sum[:])
	tok := e.token(t, "berlin", nil, 2, time.Hour)

	e.client = &Client{Service: ts.URL, Pin: pin}
	if _, _, err := e.enroll(t, tok, newNode(t)); err != nil {
		t.Fatalf("pinned: %v", err)
	}
	e.client = &Client{Service: ts.URL, Pin: strings.Repeat("0", 64)}
	if _, _, err := e.enroll(t, tok, newNode(t)); err == nil || !strings.Contains(err.Error(), "the token pins") {
		t.Fatalf("wrong pin: %v", err)
	}
	e.client = &Client{Service: ts.URL}
	if _, _, err := e.enroll(t, tok, newNode(t)); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("unpinned self-signed: %v", err)
	}
}

// FuzzServiceBody throws arbitrary bodies at both routes: no panic, and
// nothing but a refusal comes back.
func FuzzServiceBody(f *testing.F) {
	e := newEnv(f, func(c *ServerConfig) { c.Rate, c.Burst = 1e9, 1e9 })
	tok := e.token(f, "berlin", nil, 1, time.Hour)
	n := newNode(f)
	good, _ := jsonMarshal(EnrollRequest{Token: tok.ID, Secret: tok.Secret, Fleet: tok.FleetID(), Request: mustJSON(f, n.request(f, "x", e.clock.Now()))})
	f.Add(true, good)
	f.Add(false, []byte(`{"credential":"AQ==","request":{}}`))
	f.Add(true, []byte(`{"token":"`+tok.ID+`","secret":"AAAA","fleet":"","request":null}`))
	f.Add(false, []byte(`[]`))
	f.Fuzz(func(t *testing.T, enroll bool, body []byte) {
		path := PathRenew
		if enroll {
			path = PathEnroll
		}
		rec := httptest.NewRecorder()
		req := httptest.NewRequestWithContext(context.Background(), http.MethodPost, path, strings.NewReader(string(body)))
		req.RemoteAddr = "127.0.0.1:1"
		e.srv.ServeHTTP(rec, req)
		if rec.Code == http.StatusOK {
			t.Fatalf("accepted %q", body)
		}
	})
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := jsonMarshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
