package credential

import (
	"crypto/ed25519"
	"testing"
	"time"
)

func FuzzParse(f *testing.F) {
	ca := newKey(f)
	node, _ := newNode(f)
	raw, err := issue(f, ca, node, "berlin", 1).Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Add([]byte{1})
	f.Add([]byte{})
	tr := trust(f, &Document{Version: 1, CA: []ed25519.PublicKey{ca.Public().(ed25519.PublicKey)}})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err != nil {
			return
		}
		out, err := c.Marshal()
		if err != nil {
			t.Fatalf("parsed credential does not marshal: %v", err)
		}
		if string(out) != string(b) {
			t.Fatalf("not canonical: %x -> %x", b, out)
		}
		_ = tr.Verify(c, time.Now())
	})
}

func FuzzParseDocument(f *testing.F) {
	ca := newKey(f)
	ic, _ := SignIssuer(ca, "i", newKey(f).Public().(ed25519.PublicKey), []string{"s"}, t0, t0.Add(time.Hour))
	d := &Document{Version: 1, CA: []ed25519.PublicKey{ca.Public().(ed25519.PublicKey)}, Issuers: []IssuerCert{ic}}
	raw, err := d.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Add([]byte(`{"version":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParseDocument(b)
	})
}

func FuzzParseRequest(f *testing.F) {
	node, key := newNode(f)
	r, _ := NewRequest(node, "h", "n", t0, func(m []byte) ([]byte, error) { return ed25519.Sign(key, m), nil })
	raw, _ := r.Marshal()
	f.Add(raw)
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParseRequest(b)
	})
}
