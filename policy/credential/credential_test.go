package credential

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

var t0 = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

func newKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newNode(t testing.TB) (string, ed25519.PrivateKey) {
	t.Helper()
	k := newKey(t)
	id, err := NodeIDFromKey(k.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	return id, k
}

func issue(t testing.TB, signer ed25519.PrivateKey, node, site string, serial uint64) *Credential {
	t.Helper()
	c := &Credential{NodeID: node, Hostname: "web-1", Site: site, Tags: []string{"pilot", "linux"},
		Serial: serial, NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(30 * 24 * time.Hour)}
	if err := c.Sign(signer); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNodeIDMatchesLibp2p(t *testing.T) {
	priv, pk, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	want, err := peer.IDFromPublicKey(pk)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := pk.Raw()
	if err != nil {
		t.Fatal(err)
	}
	got, err := NodeIDFromKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	if got != want.String() {
		t.Fatalf("NodeIDFromKey = %s, libp2p says %s", got, want)
	}
	back, err := NodeKey(want.String())
	if err != nil || !back.Equal(ed25519.PublicKey(raw)) {
		t.Fatalf("NodeKey = %x, %v; want %x", back, err, raw)
	}
	// A signature by the libp2p key verifies with the extracted key, which
	// is what enrollment requests rely on.
	sig, err := priv.Sign([]byte("m"))
	if err != nil {
		t.Fatal(err)
	}
	if !ed25519.Verify(back, []byte("m"), sig) {
		t.Fatal("libp2p ed25519 signature does not verify with NodeKey")
	}
	for _, bad := range []string{"", "x", "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N", strings.Repeat("1", 80)} {
		if _, err := NodeKey(bad); !errors.Is(err, ErrNodeID) {
			t.Errorf("NodeKey(%q) = %v, want ErrNodeID", bad, err)
		}
	}
}

func TestRoundTripAndSize(t *testing.T) {
	ca := newKey(t)
	node, _ := newNode(t)
	c := &Credential{NodeID: node, Hostname: strings.Repeat("h", MaxHostname), Site: strings.Repeat("s", MaxSite),
		Serial: 1<<64 - 1, NotBefore: t0, NotAfter: t0.Add(1 << 30 * time.Second)}
	for i := range MaxTags {
		c.Tags = append(c.Tags, strings.Repeat(string(rune('a'+i)), MaxTag))
	}
	if err := c.Validate(); err == nil {
		t.Fatal("credential over MaxSize validates")
	}
	for c.Validate() != nil {
		c.Tags[len(c.Tags)-1] = c.Tags[len(c.Tags)-1][1:]
		if c.Tags[len(c.Tags)-1] == "" {
			c.Tags = c.Tags[:len(c.Tags)-1]
		}
	}
	if err := c.Sign(ca); err != nil {
		t.Fatal(err)
	}
	raw, err := c.Marshal()
	if err != nil {
		t.Fatalf("largest credential: %v", err)
	}
	t.Logf("largest credential: %d bytes", len(raw))
	got, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if got.String() != c.String() {
		t.Fatalf("round trip:\n got %s\nwant %s", got, c)
	}
	tr := trust(t, &Document{Version: 1, CA: []ed25519.PublicKey{ca.Public().(ed25519.PublicKey)}})
	if err := tr.VerifyFor(got, node, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	// Every single-byte change is refused, by Parse or by Verify.
	for i := range raw {
		mut := []byte(string(raw))
		mut[i] ^= 0x40
		c2, err := Parse(mut)
		if err == nil {
			err = tr.Verify(c2, t0.Add(time.Hour))
		}
		if err == nil {
			t.Fatalf("byte %d changed: credential still verifies", i)
		}
	}
}

func trust(t testing.TB, d *Document) *Trust {
	t.Helper()
	raw, err := d.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	tr, err := ParseDocument(raw)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestVerify(t *testing.T) {
	ca, other := newKey(t), newKey(t)
	iss := newKey(t)
	node, _ := newNode(t)
	node2, _ := newNode(t)
	ic, err := SignIssuer(ca, "ca-serve-1", iss.Public().(ed25519.PublicKey), []string{"berlin"}, t0.Add(-time.Hour), t0.Add(90*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	doc := &Document{Version: 1, CA: []ed25519.PublicKey{ca.Public().(ed25519.PublicKey)}, Issuers: []IssuerCert{ic},
		Revoked: Revocations{Nodes: []RevokedNode{{NodeID: node2, Reason: "stolen laptop", At: t0}}, Serials: []uint64{99}}}
	tr := trust(t, doc)
	now := t0
	cases := []struct {
		name string
		c    *Credential
		node string
		at   time.Time
		want error
	}{
		{"ca signed", issue(t, ca, node, "berlin", 1), node, now, nil},
		{"issuer signed", issue(t, iss, node, "berlin", 2), node, now, nil},
		{"issuer outside its sites", issue(t, iss, node, "paris", 3), node, now, ErrIssuerScope},
		{"other fleet", issue(t, other, node, "berlin", 4), node, now, ErrUnknownSigner},
		{"expired", issue(t, ca, node, "berlin", 5), node, now.Add(31 * 24 * time.Hour), ErrExpired},
		{"not yet valid", issue(t, ca, node, "berlin", 6), node, now.Add(-2 * time.Hour), ErrNotYetValid},
		{"issuer expired", issue(t, iss, node, "berlin", 7), node, now.Add(91 * 24 * time.Hour), ErrExpired},
		{"revoked node", issue(t, ca, node2, "berlin", 8), node2, now, ErrRevoked},
		{"revoked serial", issue(t, ca, node, "berlin", 99), node, now, ErrRevoked},
		{"wrong node", issue(t, ca, node, "berlin", 9), node2, now, ErrWrongNode},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tr.VerifyFor(tc.c, tc.node, tc.at)
			if tc.want == nil && err != nil {
				t.Fatalf("Verify = %v", err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				if tc.name == "issuer expired" && errors.Is(err, ErrUnknownSigner) {
					return // the issuer lapsed too; either reason refuses
				}
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
	// Forged: a valid credential with a changed site.
	c := issue(t, ca, node, "berlin", 10)
	c.Site = "paris"
	if err := tr.Verify(c, now); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("changed site: %v, want ErrBadSignature", err)
	}
	// Verified again (the pool does, every few seconds), a credential's
	// signature is remembered but its terms are not: it still expires, a
	// changed field still breaks it, and a forged signature over a body
	// already seen is still refused.
	good := issue(t, ca, node, "berlin", 12)
	for range 2 {
		if err := tr.Verify(good, now); err != nil {
			t.Fatalf("verified again: %v", err)
		}
	}
	if err := tr.Verify(good, now.Add(31*24*time.Hour)); !errors.Is(err, ErrExpired) {
		t.Fatalf("a remembered credential past its expiry: %v, want ErrExpired", err)
	}
	changed := *good
	changed.Site = "paris"
	if err := tr.Verify(&changed, now); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("a remembered credential with a changed site: %v, want ErrBadSignature", err)
	}
	forged := *good
	forged.Signature = slices.Clone(good.Signature)
	forged.Signature[0] ^= 1
	if err := tr.Verify(&forged, now); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("a remembered body with a forged signature: %v, want ErrBadSignature", err)
	}
	// A retired issuer no longer signs.
	doc.Revoked.Issuers = []string{"ca-serve-1"}
	tr2 := trust(t, doc)
	if err := tr2.Verify(issue(t, iss, node, "berlin", 11), now); !errors.Is(err, ErrUnknownSigner) {
		t.Fatalf("retired issuer: %v", err)
	}
}

func TestDocumentRefusesBadIssuer(t *testing.T) {
	ca, other := newKey(t), newKey(t)
	ic, err := SignIssuer(other, "rogue", newKey(t).Public().(ed25519.PublicKey), nil, t0, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	d := &Document{Version: 1, CA: []ed25519.PublicKey{ca.Public().(ed25519.PublicKey)}, Issuers: []IssuerCert{ic}}
	if _, err := NewTrust(d); err == nil || !strings.Contains(err.Error(), "rogue") {
		t.Fatalf("issuer signed by a foreign key: %v", err)
	}
	ic2, _ := SignIssuer(ca, "ok", newKey(t).Public().(ed25519.PublicKey), nil, t0, t0.Add(time.Hour))
	ic2.Sites = []string{"anywhere"} // changed after signing
	d.Issuers = []IssuerCert{ic2}
	if _, err := NewTrust(d); err == nil || !strings.Contains(err.Error(), "does not verify") {
		t.Fatalf("tampered issuer: %v", err)
	}
	if _, err := ParseDocument([]byte(`{"version":1,"ca":[],"revoked":{}}`)); err == nil {
		t.Fatal("document without CA accepted")
	}
	if _, err := ParseDocument([]byte(`{"version":2,"ca":[]}`)); err == nil || !strings.Contains(err.Error(), "version 2") {
		t.Fatalf("future version: %v", err)
	}
}

func TestRequest(t *testing.T) {
	node, key := newNode(t)
	r, err := NewRequest(node, "laptop-7", "", t0, func(m []byte) ([]byte, error) { return ed25519.Sign(key, m), nil })
	if err != nil {
		t.Fatal(err)
	}
	raw, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseRequest(raw)
	if err != nil {
		t.Fatal(err)
	}
	if got.NodeID != node || got.Hostname != "laptop-7" {
		t.Fatalf("got %+v", got)
	}
	// A request for another node's ID, signed by this key, is refused.
	other, _ := newNode(t)
	r2, _ := NewRequest(other, "laptop-7", "", t0, func(m []byte) ([]byte, error) { return ed25519.Sign(key, m), nil })
	raw2, _ := r2.Marshal()
	if _, err := ParseRequest(raw2); err == nil || !strings.Contains(err.Error(), "does not verify") {
		t.Fatalf("request signed by another key: %v", err)
	}
}

// BenchmarkVerifyAgain is the pool's periodic re-check of a member's
// credential under the same fleet document.
func BenchmarkVerifyAgain(b *testing.B) {
	ca := newKey(b)
	node, _ := newNode(b)
	tr := trust(b, &Document{Version: 1, CA: []ed25519.PublicKey{ca.Public().(ed25519.PublicKey)}})
	raw, err := issue(b, ca, node, "berlin", 1).Marshal()
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := tr.VerifyBytes(raw, node, t0); err != nil {
			b.Fatal(err)
		}
	}
}
