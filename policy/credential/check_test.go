package credential

import (
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestCheckIssuedAgreesWithVerify: for every outcome Verify can give a
// signed credential, CheckIssued gives the same one for its ledger record.
func TestCheckIssuedAgreesWithVerify(t *testing.T) {
	ca, other, iss, retired := newKey(t), newKey(t), newKey(t), newKey(t)
	node, _ := newNode(t)
	node2, _ := newNode(t)
	ic, err := SignIssuer(ca, "ca-serve-1", iss.Public().(ed25519.PublicKey), []string{"berlin"}, t0.Add(-time.Hour), t0.Add(90*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	ic2, err := SignIssuer(ca, "old-serve", retired.Public().(ed25519.PublicKey), nil, t0.Add(-time.Hour), t0.Add(90*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	tr := trust(t, &Document{Version: 1, CA: []ed25519.PublicKey{ca.Public().(ed25519.PublicKey)}, Issuers: []IssuerCert{ic, ic2},
		Revoked: Revocations{Nodes: []RevokedNode{{NodeID: node2, Reason: "stolen laptop", At: t0}}, Serials: []uint64{99}, Issuers: []string{"old-serve"}}})
	cases := []struct {
		name string
		c    *Credential
		at   time.Time
		want error
		why  string
	}{
		{"ca signed", issue(t, ca, node, "berlin", 1), t0, nil, ""},
		{"issuer signed", issue(t, iss, node, "berlin", 2), t0, nil, ""},
		{"issuer outside its sites", issue(t, iss, node, "paris", 3), t0, ErrIssuerScope, "paris"},
		{"other fleet", issue(t, other, node, "berlin", 4), t0, ErrUnknownSigner, "not in this fleet document"},
		{"retired issuer", issue(t, retired, node, "berlin", 5), t0, ErrUnknownSigner, `retired issuer "old-serve"`},
		{"expired", issue(t, ca, node, "berlin", 6), t0.Add(31 * 24 * time.Hour), ErrExpired, ""},
		{"not yet valid", issue(t, ca, node, "berlin", 7), t0.Add(-2 * time.Hour), ErrNotYetValid, ""},
		{"revoked node", issue(t, ca, node2, "berlin", 9), t0, ErrRevoked, "stolen laptop"},
		{"revoked serial", issue(t, ca, node, "berlin", 99), t0, ErrRevoked, "serial 99"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			verr := tr.Verify(tc.c, tc.at)
			cerr := tr.CheckIssued(IssuedFrom(tc.c, t0, "offline"), tc.at)
			if tc.want == nil {
				if verr != nil || cerr != nil {
					t.Fatalf("Verify = %v, CheckIssued = %v; want both nil", verr, cerr)
				}
				return
			}
			if !errors.Is(verr, tc.want) || !errors.Is(cerr, tc.want) {
				t.Fatalf("Verify = %v, CheckIssued = %v; want %v", verr, cerr, tc.want)
			}
			if !strings.Contains(cerr.Error(), tc.why) {
				t.Errorf("CheckIssued = %v, does not say %q", cerr, tc.why)
			}
		})
	}
	if _, err := ParseSignerID("zz"); err == nil {
		t.Error("ParseSignerID accepts zz")
	}
	if err := tr.CheckIssued(Issued{NodeID: node, Signer: "nothex"}, t0); !errors.Is(err, ErrMalformed) {
		t.Errorf("record with a bad signer: %v", err)
	}
	if got := tr.SignerName(SignerIDOf(ca.Public().(ed25519.PublicKey))); !strings.HasPrefix(got, "CA key ") {
		t.Errorf("SignerName(ca) = %q", got)
	}
}
