package policysvc

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/patchring/patchring/daemon/apitypes"
	"github.com/patchring/patchring/policy/credential"
)

// The fleet's identity: the verified fleet document (fleet.json, a TUF
// target beside policy.json) and this node's credential file, re-read on
// every refresh so that a renewed or newly installed credential takes
// effect within one refresh interval without a restart.

// errNoCredential means the credential file is missing.
var errNoCredential = errors.New("no credential installed")

// maxCredentialFile bounds the credential file read.
const maxCredentialFile = 4096

// adoptFleet takes the fleet document of a verified state. A document that
// verified through TUF but does not parse is an admin's mistake: the last
// good one stays in force and the error is reported.
func (s *Service) adoptFleet(raw []byte) error {
	s.idMu.Lock()
	defer s.idMu.Unlock()
	if raw == nil {
		s.fleet, s.fleetRaw, s.fleetErr = nil, nil, nil
		return nil
	}
	if bytes.Equal(raw, s.fleetRaw) && s.fleet != nil {
		return nil
	}
	tr, err := credential.ParseDocument(raw)
	if err != nil {
		s.fleetErr = fmt.Errorf("verified %s does not parse (kept the last good one): %w", credential.TargetName, err)
		return s.fleetErr
	}
	s.fleet, s.fleetRaw, s.fleetErr = tr, raw, nil
	return nil
}

// loadCredential re-reads this node's credential file.
func (s *Service) loadCredential() {
	if s.cfg.CredentialFile == "" {
		return
	}
	raw, err := readCredential(s.cfg.CredentialFile)
	var c *credential.Credential
	if err == nil {
		c, err = credential.Parse(raw)
		if err != nil {
			err = fmt.Errorf("credential %s: %w", s.cfg.CredentialFile, err)
		}
	}
	s.idMu.Lock()
	changed := !bytes.Equal(raw, s.credRaw)
	s.credRaw, s.cred, s.credErr = raw, c, err
	s.idMu.Unlock()
	if changed && c != nil {
		s.cfg.Log.Info("identity: credential loaded", "credential", c.String())
	}
}

func readCredential(path string) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w (%s)", errNoCredential, path)
	}
	if err != nil {
		return nil, fmt.Errorf("credential: %w", err)
	}
	defer f.Close()
	buf := make([]byte, maxCredentialFile+1)
	n, err := f.Read(buf)
	if err != nil && n == 0 {
		return nil, fmt.Errorf("credential %s: %w", path, err)
	}
	if n > maxCredentialFile {
		return nil, fmt.Errorf("credential %s: larger than %d bytes", path, maxCredentialFile)
	}
	return buf[:n], nil
}

// Fleet returns the verified fleet document in force, or nil when the
// repository publishes none (admission by the gossip key alone).
func (s *Service) Fleet() *credential.Trust {
	s.idMu.Lock()
	defer s.idMu.Unlock()
	return s.fleet
}

// Credential returns this node's credential (wire form) as installed,
// whether or not it verifies (peers decide), or nil.
func (s *Service) Credential() []byte {
	s.idMu.Lock()
	defer s.idMu.Unlock()
	return slices.Clone(s.credRaw)
}

// SiteTags returns the site and tags ring selection uses. With a fleet
// document in force they are the credential's, and none at all without a
// valid credential (ok is true either way); without one, ok is false and
// the local configuration's apply.
func (s *Service) SiteTags() (site string, tags []string, ok bool) {
	s.idMu.Lock()
	defer s.idMu.Unlock()
	if s.fleet == nil {
		return "", nil, false
	}
	if s.cred == nil || s.fleet.VerifyFor(s.cred, s.cfg.NodeID, s.cfg.Now()) != nil {
		return "", nil, true
	}
	return s.cred.Site, slices.Clone(s.cred.Tags), true
}

// Identity describes this node's credential against the fleet document.
func (s *Service) Identity() apitypes.Identity {
	return s.identityAt(s.cfg.Now())
}

// identityAt may be called with s.mu held (the order is s.mu, then idMu).
func (s *Service) identityAt(now time.Time) apitypes.Identity {
	s.idMu.Lock()
	defer s.idMu.Unlock()
	id := apitypes.Identity{Enforced: s.fleet != nil}
	if c := s.cred; c != nil {
		id.Site, id.Tags, id.Hostname, id.Serial, id.Expires = c.Site, slices.Clone(c.Tags), c.Hostname, c.Serial, c.NotAfter
	}
	var err error
	switch {
	case s.credErr != nil:
		err = s.credErr
	case s.fleet != nil:
		err = s.fleet.VerifyFor(s.cred, s.cfg.NodeID, now)
	case s.cred != nil && s.cred.NodeID != s.cfg.NodeID:
		err = credential.ErrWrongNode
	}
	if err == nil {
		return id
	}
	id.Detail = err.Error()
	switch {
	case errors.Is(err, errNoCredential):
		id.Problem = "missing"
	case errors.Is(err, credential.ErrExpired):
		id.Problem = "expired"
	case errors.Is(err, credential.ErrRevoked):
		id.Problem = "revoked"
	case errors.Is(err, credential.ErrNotYetValid):
		id.Problem = "not yet valid"
	default:
		id.Problem = "invalid"
	}
	return id
}

// identitySummary is one line for `patchring status`.
func identitySummary(id apitypes.Identity) string {
	var b strings.Builder
	switch {
	case id.Problem != "" && id.Enforced:
		fmt.Fprintf(&b, "credential %s: %s", id.Problem, id.Detail)
	case id.Problem != "":
		fmt.Fprintf(&b, "no fleet.json published (gossip key admits); credential %s", id.Problem)
	case !id.Enforced && id.Serial == 0:
		b.WriteString("no fleet.json published (gossip key admits)")
	case !id.Enforced:
		fmt.Fprintf(&b, "no fleet.json published (gossip key admits); credential site %s, serial %d", id.Site, id.Serial)
	default:
		fmt.Fprintf(&b, "site %s, tags [%s], serial %d, expires %s", id.Site, strings.Join(id.Tags, ","), id.Serial, id.Expires.UTC().Format(time.RFC3339))
	}
	return b.String()
}
