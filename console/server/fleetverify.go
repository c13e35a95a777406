package server

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/patchring/patchring/policy/credential"
)

// FleetSource gives the current fleet document (fleet.json): read from the
// repository directory, or fetched from the origin through TUF
// (policy/enroll.OriginFleet).
type FleetSource interface {
	Fleet(ctx context.Context) (*credential.Trust, error)
}

// ErrNoCredential means a record came without the node's fleet credential.
var ErrNoCredential = errors.New("no fleet credential")

// ErrUnavailable is wrapped by a verifier that cannot decide now (the
// fleet document cannot be read): the ingest request fails with 503 and
// the reporter keeps its records for later, rather than losing them.
var ErrUnavailable = errors.New("node verification unavailable")

// FleetVerifier accepts a node only with a credential the fleet document
// trusts, for this node ID, valid now and not revoked; the node's site,
// hostname and tags then come from the credential, not from its record.
type FleetVerifier struct {
	Fleet FleetSource
	Now   func() time.Time // nil: time.Now
}

// VerifyNode checks cred for nodeID against the current fleet document.
func (v FleetVerifier) VerifyNode(ctx context.Context, nodeID string, pub ed25519.PublicKey, cred []byte) (NodeInfo, error) {
	if len(cred) == 0 {
		return NodeInfo{}, fmt.Errorf("verify node %s: %w", nodeID, ErrNoCredential)
	}
	t, err := v.Fleet.Fleet(ctx)
	if err != nil {
		return NodeInfo{}, fmt.Errorf("verify node %s: %w: fleet document: %w", nodeID, ErrUnavailable, err)
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	c, err := t.VerifyBytes(cred, nodeID, now())
	if err != nil {
		return NodeInfo{}, fmt.Errorf("verify node %s: %w", nodeID, err)
	}
	// The record's key is the one its node ID names (report.Open checked
	// the signature); the credential names the same ID. Check the key too,
	// so a verifier reused elsewhere cannot be handed a mismatched pair.
	key, err := credential.NodeKey(nodeID)
	if err != nil || !bytes.Equal(key, pub) {
		return NodeInfo{}, fmt.Errorf("verify node %s: key does not match the node ID", nodeID)
	}
	return NodeInfo{Site: c.Site, Hostname: c.Hostname, Tags: c.Tags}, nil
}
