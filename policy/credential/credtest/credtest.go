// Package credtest mints fleet credentials for tests: a fleet CA, the fleet
// document naming it, and credentials for node IDs (valid, expired, for
// another fleet, forged). Every test that runs credentialed agents uses it
// rather than signing credentials its own way; the demo uses Mint.
package credtest

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/patchring/patchring/internal/atomicfile"
	"github.com/patchring/patchring/policy/credential"
)

// CA is a fleet authority held in memory.
type CA struct {
	Key    ed25519.PrivateKey
	serial atomic.Uint64
}

// NewCA makes a fleet CA with a fresh key.
func NewCA(t testing.TB) *CA {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return FromKey(k)
}

// FromKey uses an existing CA key (one tufrepo.InitFleet created).
func FromKey(k ed25519.PrivateKey) *CA {
	ca := &CA{Key: k}
	ca.serial.Store(1000)
	return ca
}

// Document is a fleet document naming this CA, with revocations.
func (ca *CA) Document(rev credential.Revocations) *credential.Document {
	return &credential.Document{Version: credential.DocumentVersion, CA: []ed25519.PublicKey{ca.Key.Public().(ed25519.PublicKey)}, Revoked: rev}
}

// Trust is the checked fleet document naming this CA.
func (ca *CA) Trust(t testing.TB, rev credential.Revocations) *credential.Trust {
	t.Helper()
	tr, err := credential.NewTrust(ca.Document(rev))
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// Spec is what a credential says; zero times mean "valid from an hour ago
// for 30 days".
type Spec struct {
	Hostname  string
	Site      string
	Tags      []string
	NotBefore time.Time
	NotAfter  time.Time
}

// Issue signs a credential for nodeID and returns it with its wire form.
func (ca *CA) Issue(t testing.TB, nodeID string, s Spec) (*credential.Credential, []byte) {
	t.Helper()
	c, raw, err := ca.Mint(nodeID, s)
	if err != nil {
		t.Fatal(err)
	}
	return c, raw
}

// Mint is Issue for programs that are not tests (the demo).
func (ca *CA) Mint(nodeID string, s Spec) (*credential.Credential, []byte, error) {
	if s.NotBefore.IsZero() {
		s.NotBefore = time.Now().Add(-time.Hour)
	}
	if s.NotAfter.IsZero() {
		s.NotAfter = s.NotBefore.Add(30 * 24 * time.Hour)
	}
	if s.Hostname == "" {
		s.Hostname = "host"
	}
	c := &credential.Credential{NodeID: nodeID, Hostname: s.Hostname, Site: s.Site, Tags: s.Tags,
		Serial: ca.serial.Add(1), NotBefore: s.NotBefore, NotAfter: s.NotAfter}
	if err := c.Sign(ca.Key); err != nil {
		return nil, nil, fmt.Errorf("sign credential for %s: %w", nodeID, err)
	}
	raw, err := c.Marshal()
	if err != nil {
		return nil, nil, fmt.Errorf("sign credential for %s: %w", nodeID, err)
	}
	return c, raw, nil
}

// Forge returns a credential for nodeID that claims this CA's signer but
// carries another key's signature (an attacker without the CA key).
func (ca *CA) Forge(t testing.TB, nodeID string, s Spec) []byte {
	t.Helper()
	other := NewCA(t)
	c, _ := other.Issue(t, nodeID, s)
	c.Signer = credential.SignerIDOf(ca.Key.Public().(ed25519.PublicKey))
	raw, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// NewNode creates an agent's node key (node.key in stateDir, libp2p's
// encoding, 0600, as the agent would at its first start) so that a test
// knows the node ID before the agent runs, and returns the ID.
func NewNode(t testing.TB, stateDir string) string {
	t.Helper()
	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := crypto.MarshalPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stateDir, "node.key"), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return id.String()
}

// Install issues a credential for nodeID and writes it as the agent's
// credential file (stateDir/node.credential), atomically, as enrollment
// does. A running agent picks it up at its next policy refresh.
func (ca *CA) Install(t testing.TB, stateDir, nodeID string, s Spec) *credential.Credential {
	t.Helper()
	c, raw := ca.Issue(t, nodeID, s)
	WriteFile(t, stateDir, raw)
	return c
}

// WriteFile writes raw as the agent's credential file.
func WriteFile(t testing.TB, stateDir string, raw []byte) {
	t.Helper()
	if err := atomicfile.WriteFile(filepath.Join(stateDir, credential.FileName), raw, 0o600); err != nil {
		t.Fatal(err)
	}
}
