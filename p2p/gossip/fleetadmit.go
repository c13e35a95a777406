package gossip

import (
	"errors"
	"fmt"
	"time"

	"github.com/patchring/patchring/policy/credential"
)

// ErrNoCredential means a member carries no credential while the fleet
// requires one.
var ErrNoCredential = errors.New("no credential")

// FleetAdmitter admits members by the fleet document: Fleet returns the
// verified one in force (nil while the repository publishes none, which
// turns admission off), Now the time credentials are checked at.
type FleetAdmitter struct {
	Fleet func() *credential.Trust
	Now   func() time.Time
}

var _ Admitter = FleetAdmitter{}

// Enforcing reports whether a fleet document is in force (admission on).
func (a FleetAdmitter) Enforcing() bool { return a.Fleet() != nil }

// Admit implements Admitter.
func (a FleetAdmitter) Admit(nodeID string, raw []byte) (*Credential, error) {
	tr := a.Fleet()
	if tr == nil {
		return nil, nil
	}
	if len(raw) == 0 {
		return nil, fmt.Errorf("admit %s: %w", nodeID, ErrNoCredential)
	}
	now := time.Now()
	if a.Now != nil {
		now = a.Now()
	}
	c, err := tr.VerifyBytes(raw, nodeID, now)
	if err != nil {
		return nil, fmt.Errorf("admit %s: %w", nodeID, err)
	}
	return &Credential{Hostname: c.Hostname, Site: c.Site, Tags: c.Tags, Serial: c.Serial, NotAfter: c.NotAfter}, nil
}
