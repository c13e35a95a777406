package credential

import (
	"encoding/hex"
	"fmt"
	"slices"
	"time"
)

// ParseSignerID decodes a SignerID from its hex form (as ledgers and issuer
// certificates write it).
func ParseSignerID(s string) (SignerID, error) {
	var id SignerID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != signerIDLen {
		return id, fmt.Errorf("signer id %q: want %d hex bytes", s, signerIDLen)
	}
	copy(id[:], b)
	return id, nil
}

// SignerName says which key of the document id names: "CA key <id>",
// "issuer NAME", "retired issuer NAME", or "" when the document does not
// know it (another fleet's key, or a CA key removed by a rotation).
func (t *Trust) SignerName(id SignerID) string {
	for _, k := range t.doc.CA {
		if SignerIDOf(k) == id {
			return "CA key " + id.String()
		}
	}
	for _, ic := range t.doc.Issuers {
		if SignerIDOf(ic.Key) == id {
			if slices.Contains(t.doc.Revoked.Issuers, ic.Name) {
				return fmt.Sprintf("retired issuer %q", ic.Name)
			}
			return fmt.Sprintf("issuer %q", ic.Name)
		}
	}
	return ""
}

// CheckIssued applies Verify's checks other than the signature (a ledger
// keeps no signature) to a ledger record: its signer is trusted, it is
// valid at now, it is within its issuer's sites and validity, and neither
// its node nor its serial is revoked. Errors wrap the same Err* values as
// Verify, in the same order, so the admin's tools report a credential as
// the agents would.
func (t *Trust) CheckIssued(rec Issued, now time.Time) error {
	sid, err := ParseSignerID(rec.Signer)
	if err != nil {
		return fmt.Errorf("node %s: %w: %v", rec.NodeID, ErrMalformed, err)
	}
	s, ok := t.signers[sid]
	if !ok {
		why := t.SignerName(sid)
		if why == "" {
			why = "signer " + sid.String() + " is not in this fleet document"
		}
		return fmt.Errorf("node %s: %w (%s)", rec.NodeID, ErrUnknownSigner, why)
	}
	return t.checkTerms(s, terms{rec.NodeID, rec.Site, rec.Serial, rec.NotBefore, rec.NotAfter}, now)
}
