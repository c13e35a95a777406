package credential

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// TargetName is the TUF target that carries the fleet document.
const TargetName = "fleet.json"

// DocumentVersion is the fleet document's format version.
const DocumentVersion = 1

// ClockSkew is how far ahead of a verifier's clock a credential may start.
const ClockSkew = 5 * time.Minute

// Verification failures. Each error returned by [Trust.Verify] wraps one.
var (
	ErrUnknownSigner = errors.New("credential signed by a key the fleet does not trust")
	ErrBadSignature  = errors.New("credential signature does not verify")
	ErrExpired       = errors.New("credential expired")
	ErrNotYetValid   = errors.New("credential not yet valid")
	ErrRevoked       = errors.New("credential revoked")
	ErrWrongNode     = errors.New("credential belongs to another node")
	ErrIssuerScope   = errors.New("credential outside its issuer's sites")
)

// Document is the fleet document (fleet.json): the CA's public keys (more
// than one while rotating), the issuing keys it delegated, and what is
// revoked. It reaches nodes as a TUF target, so it is as fresh and as
// thresholded as the policy.
type Document struct {
	Version int `json:"version"`
	// CA holds the fleet CA's ed25519 public keys.
	CA []ed25519.PublicKey `json:"ca"`
	// Issuers are keys the CA delegated to sign credentials online.
	Issuers []IssuerCert `json:"issuers,omitempty"`
	Revoked Revocations  `json:"revoked"`
}

// IssuerCert is the CA's delegation to an issuing key (the one `patchring
// ca serve` holds). Sites, when set, limits the sites it may issue for.
type IssuerCert struct {
	Name      string            `json:"name"`
	Key       ed25519.PublicKey `json:"key"`
	Sites     []string          `json:"sites,omitempty"`
	NotBefore time.Time         `json:"not_before"`
	NotAfter  time.Time         `json:"not_after"`
	Signer    string            `json:"signer"` // SignerID of the CA key, hex
	Signature []byte            `json:"signature"`
}

// Revocations lists revoked nodes (all their credentials, and renewals),
// single credentials by serial, and retired issuers by name.
type Revocations struct {
	Nodes   []RevokedNode `json:"nodes,omitempty"`
	Serials []uint64      `json:"serials,omitempty"`
	Issuers []string      `json:"issuers,omitempty"`
}

// RevokedNode is one revoked node and why.
type RevokedNode struct {
	NodeID string    `json:"node_id"`
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at"`
}

const issuerPrefix = "patchring issuer v1\x00"

func (ic *IssuerCert) message() ([]byte, error) {
	c := *ic
	c.Signature = nil
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode issuer %q: %w", ic.Name, err)
	}
	return append([]byte(issuerPrefix), b...), nil
}

// SignIssuer makes an issuer certificate for pub, signed by the CA key.
func SignIssuer(ca ed25519.PrivateKey, name string, pub ed25519.PublicKey, sites []string, notBefore, notAfter time.Time) (IssuerCert, error) {
	ic := IssuerCert{
		Name: name, Key: pub, Sites: sites,
		NotBefore: notBefore.UTC().Truncate(time.Second), NotAfter: notAfter.UTC().Truncate(time.Second),
		Signer: SignerIDOf(ca.Public().(ed25519.PublicKey)).String(),
	}
	if err := ic.validate(); err != nil {
		return IssuerCert{}, err
	}
	msg, err := ic.message()
	if err != nil {
		return IssuerCert{}, err
	}
	ic.Signature = ed25519.Sign(ca, msg)
	return ic, nil
}

func (ic *IssuerCert) validate() error {
	if err := checkText("issuer name", ic.Name, MaxSite, false); err != nil {
		return err
	}
	if len(ic.Key) != ed25519.PublicKeySize {
		return fmt.Errorf("issuer %q: key has %d bytes", ic.Name, len(ic.Key))
	}
	for _, s := range ic.Sites {
		if err := checkText("issuer site", s, MaxSite, false); err != nil {
			return fmt.Errorf("issuer %q: %w", ic.Name, err)
		}
	}
	if !ic.NotAfter.After(ic.NotBefore) {
		return fmt.Errorf("issuer %q: validity is empty", ic.Name)
	}
	return nil
}

// Marshal encodes the document as indented JSON, the target's bytes.
func (d *Document) Marshal() ([]byte, error) {
	if _, err := NewTrust(d); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode fleet document: %w", err)
	}
	return append(b, '\n'), nil
}

// ParseDocument decodes and checks fleet.json.
func ParseDocument(b []byte) (*Trust, error) {
	var d Document
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("fleet document %s: %w", TargetName, err)
	}
	return NewTrust(&d)
}

// Trust is a checked fleet document, ready to verify credentials.
type Trust struct {
	doc     Document
	signers map[SignerID]signer
	nodes   map[string]RevokedNode
	serials map[uint64]bool

	// good remembers the signatures already verified under this
	// document: the pool checks every member's credential again every few
	// seconds (expiry, revocation), and an ed25519 verification costs
	// more than all the rest. The terms are checked every time.
	mu   sync.Mutex
	good map[[sha256.Size]byte]struct{}
}

// maxGoodSignatures bounds Trust.good (it starts over when full).
const maxGoodSignatures = 8192

type signer struct {
	key    ed25519.PublicKey
	issuer *IssuerCert // nil for a CA key
}

// NewTrust checks d: a version this code reads, at least one CA key, and
// every issuer certificate signed by one of the CA keys. A document with a
// bad issuer certificate is refused whole: it came signed by the admin, so
// it is a mistake to fix, not a key to skip.
func NewTrust(d *Document) (*Trust, error) {
	if d.Version != DocumentVersion {
		return nil, fmt.Errorf("fleet document: version %d, this agent reads %d", d.Version, DocumentVersion)
	}
	if len(d.CA) == 0 {
		return nil, errors.New("fleet document: no CA key")
	}
	t := &Trust{doc: *d, signers: map[SignerID]signer{}, nodes: map[string]RevokedNode{}, serials: map[uint64]bool{}}
	for i, k := range d.CA {
		if len(k) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("fleet document: CA key %d has %d bytes", i, len(k))
		}
		t.signers[SignerIDOf(k)] = signer{key: k}
	}
	for i := range d.Issuers {
		ic := &d.Issuers[i]
		if err := ic.validate(); err != nil {
			return nil, fmt.Errorf("fleet document: %w", err)
		}
		if slices.Contains(d.Revoked.Issuers, ic.Name) {
			continue
		}
		ca, ok := t.caKey(ic.Signer)
		if !ok {
			return nil, fmt.Errorf("fleet document: issuer %q signed by %s, not a CA key of this document", ic.Name, ic.Signer)
		}
		msg, err := ic.message()
		if err != nil {
			return nil, err
		}
		if !ed25519.Verify(ca, msg, ic.Signature) {
			return nil, fmt.Errorf("fleet document: issuer %q: CA signature does not verify", ic.Name)
		}
		t.signers[SignerIDOf(ic.Key)] = signer{key: ic.Key, issuer: ic}
	}
	for _, n := range d.Revoked.Nodes {
		if _, err := nodeIDBytes(n.NodeID); err != nil {
			return nil, fmt.Errorf("fleet document: revoked node: %w", err)
		}
		t.nodes[n.NodeID] = n
	}
	for _, s := range d.Revoked.Serials {
		t.serials[s] = true
	}
	return t, nil
}

func (t *Trust) caKey(hexID string) (ed25519.PublicKey, bool) {
	for _, k := range t.doc.CA {
		if SignerIDOf(k).String() == hexID {
			return k, true
		}
	}
	return nil, false
}

// Document returns a copy of the checked document.
func (t *Trust) Document() Document { return t.doc }

// Revoked reports whether a node is revoked, and the entry.
func (t *Trust) Revoked(nodeID string) (RevokedNode, bool) {
	n, ok := t.nodes[nodeID]
	return n, ok
}

// Verify checks c's signature against the fleet's CA and live issuers,
// its validity at now (a start up to ClockSkew ahead is accepted), and the
// revocation lists. Errors wrap the Err* values above.
func (t *Trust) Verify(c *Credential, now time.Time) error {
	s, ok := t.signers[c.Signer]
	if !ok {
		return fmt.Errorf("node %s: %w (signer %s)", c.NodeID, ErrUnknownSigner, c.Signer)
	}
	body, err := c.body()
	if err != nil {
		return fmt.Errorf("node %s: %w", c.NodeID, err)
	}
	if !t.verifySignature(c.Signer, s.key, signedMessage(body), c.Signature) {
		return fmt.Errorf("node %s: %w", c.NodeID, ErrBadSignature)
	}
	return t.checkTerms(s, terms{c.NodeID, c.Site, c.Serial, c.NotBefore, c.NotAfter}, now)
}

// verifySignature is ed25519.Verify, remembered when it holds.
func (t *Trust) verifySignature(id SignerID, key ed25519.PublicKey, msg, sig []byte) bool {
	h := sha256.New()
	for _, b := range [][]byte{id[:], msg, sig} {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	var k [sha256.Size]byte
	h.Sum(k[:0])
	t.mu.Lock()
	_, ok := t.good[k]
	t.mu.Unlock()
	if ok {
		return true
	}
	if !ed25519.Verify(key, msg, sig) {
		return false
	}
	t.mu.Lock()
	if t.good == nil || len(t.good) >= maxGoodSignatures {
		t.good = map[[sha256.Size]byte]struct{}{}
	}
	t.good[k] = struct{}{}
	t.mu.Unlock()
	return true
}

// terms are what a credential (or its ledger record) says besides its
// signature.
type terms struct {
	nodeID              string
	site                string
	serial              uint64
	notBefore, notAfter time.Time
}

// checkTerms checks a credential signed by s at now: its validity (a
// start up to ClockSkew ahead is accepted), its issuer's validity and
// sites, and the revocation lists.
func (t *Trust) checkTerms(s signer, c terms, now time.Time) error {
	if now.Add(ClockSkew).Before(c.notBefore) {
		return fmt.Errorf("node %s: %w until %s", c.nodeID, ErrNotYetValid, c.notBefore.UTC().Format(time.RFC3339))
	}
	if !now.Before(c.notAfter) {
		return fmt.Errorf("node %s: %w at %s", c.nodeID, ErrExpired, c.notAfter.UTC().Format(time.RFC3339))
	}
	if ic := s.issuer; ic != nil {
		if now.Before(ic.NotBefore) || !now.Before(ic.NotAfter) {
			return fmt.Errorf("node %s: %w: issuer %q is valid %s..%s", c.nodeID, ErrUnknownSigner, ic.Name,
				ic.NotBefore.Format(time.RFC3339), ic.NotAfter.Format(time.RFC3339))
		}
		if len(ic.Sites) > 0 && !slices.Contains(ic.Sites, c.site) {
			return fmt.Errorf("node %s: %w: issuer %q may not issue for site %q", c.nodeID, ErrIssuerScope, ic.Name, c.site)
		}
	}
	if n, ok := t.nodes[c.nodeID]; ok {
		return fmt.Errorf("node %s: %w since %s (%s)", c.nodeID, ErrRevoked, n.At.UTC().Format(time.RFC3339), n.Reason)
	}
	if t.serials[c.serial] {
		return fmt.Errorf("node %s: %w (serial %d)", c.nodeID, ErrRevoked, c.serial)
	}
	return nil
}

// VerifyFor is Verify plus the check that c belongs to nodeID (the ID the
// peer proved it holds the key of, in gossip or in a libp2p handshake).
func (t *Trust) VerifyFor(c *Credential, nodeID string, now time.Time) error {
	if c.NodeID != nodeID {
		return fmt.Errorf("node %s presented a credential for %s: %w", nodeID, c.NodeID, ErrWrongNode)
	}
	return t.Verify(c, now)
}

// VerifyBytes parses raw and verifies it for nodeID.
func (t *Trust) VerifyBytes(raw []byte, nodeID string, now time.Time) (*Credential, error) {
	c, err := Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", nodeID, err)
	}
	if err := t.VerifyFor(c, nodeID, now); err != nil {
		return nil, err
	}
	return c, nil
}
