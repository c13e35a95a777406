package enroll

import (
	"bytes"
	"compress/flate"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func sampleToken(t testing.TB) *Token {
	t.Helper()
	id, secret, err := NewTokenSecret()
	if err != nil {
		t.Fatal(err)
	}
	return &Token{ID: id, Secret: secret, Origin: "https://updates.example.org/fleet", Service: "https://ca.example.org:8443",
		Pin: strings.Repeat("ab", 32), Root: testRoot(t)}
}

func TestTokenRoundTrip(t *testing.T) {
	tok := sampleToken(t)
	s, err := tok.String()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s, TokenPrefix) || strings.ContainsAny(s, " \n+/=") {
		t.Fatalf("token %q", s)
	}
	t.Logf("token of %d bytes for a root.json of %d", len(s), len(tok.Root))
	got, err := ParseToken("  " + s + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != tok.ID || !bytes.Equal(got.Secret, tok.Secret) || got.Origin != tok.Origin || got.Service != tok.Service || got.Pin != tok.Pin {
		t.Fatalf("round trip: %+v", got)
	}
	if got.FleetID() != FleetID(tok.Root) {
		t.Fatal("fleet ID changed in the round trip")
	}
	path := filepath.Join(t.TempDir(), "enroll.token")
	if err := os.WriteFile(path, []byte(s+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadTokenFile(path); err != nil {
		t.Fatal(err)
	}
}

func packToken(t testing.TB, json string) string {
	t.Helper()
	var buf bytes.Buffer
	w, _ := flate.NewWriter(&buf, flate.BestSpeed)
	w.Write([]byte(json))
	w.Close()
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(buf.Bytes())
}

func TestParseTokenRefuses(t *testing.T) {
	tok := sampleToken(t)
	mod := func(f func(*Token)) string {
		c := *tok
		f(&c)
		// Encode without validation, as a forger would.
		s, err := (&Token{ID: tok.ID, Secret: tok.Secret, Origin: tok.Origin, Service: tok.Service, Root: tok.Root}).String()
		if err != nil {
			t.Fatal(err)
		}
		_ = s
		b, _ := jsonMarshal(&c)
		return packToken(t, string(b))
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, tok.Root); err != nil {
		t.Fatal(err)
	}
	forgedRoot := bytes.Replace(compact.Bytes(), []byte(`"version":1`), []byte(`"version":7`), 1)
	if bytes.Equal(forgedRoot, compact.Bytes()) {
		t.Fatal("root.json has no version 1")
	}
	for _, tc := range []struct{ name, in, want string }{
		{"empty", "", "does not start with"},
		{"other prefix", "patchring-enroll-9:abc", "does not start with"},
		{"bad base64", TokenPrefix + "!!", "illegal base64"},
		{"not deflate", TokenPrefix + "AAAA", "unexpected EOF"},
		{"unknown field", packToken(t, `{"id":"x","extra":1}`), "unknown field"},
		{"short id", mod(func(c *Token) { c.ID = "abc" }), "id"},
		{"short secret", mod(func(c *Token) { c.Secret = []byte{1} }), "secret"},
		{"ftp origin", mod(func(c *Token) { c.Origin = "ftp://x/" }), "origin URL"},
		{"service with user", mod(func(c *Token) { c.Service = "https://u:p@x/" }), "service URL"},
		{"bad pin", mod(func(c *Token) { c.Pin = "zz" }), "pin"},
		{"no root", mod(func(c *Token) { c.Root = nil }), "no root.json"},
		{"root not signed by itself", mod(func(c *Token) { c.Root = forgedRoot }), "root.json"},
		{"too long", TokenPrefix + strings.Repeat("A", MaxTokenSize), "at most"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseToken(tc.in)
			if !errors.Is(err, ErrBadToken) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func FuzzParseToken(f *testing.F) {
	tok := sampleToken(f)
	s, err := tok.String()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(s)
	f.Add(TokenPrefix)
	f.Add(packToken(f, `{"id":"0123456789abcdef","secret":"","root":{}}`))
	f.Add(packToken(f, strings.Repeat(`[`, 10000)))
	f.Fuzz(func(t *testing.T, in string) {
		got, err := ParseToken(in)
		if err != nil {
			return
		}
		// What parses re-encodes and parses to the same token.
		again, err := got.String()
		if err != nil {
			t.Fatalf("parsed token does not encode: %v", err)
		}
		back, err := ParseToken(again)
		if err != nil || back.ID != got.ID || !bytes.Equal(back.Secret, got.Secret) || back.FleetID() != got.FleetID() {
			t.Fatalf("round trip: %v", err)
		}
	})
}
