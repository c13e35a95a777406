package tufrepo

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/patchring/patchring/policy/credential"
)

// Key roles outside TUF: the fleet CA, which signs node credentials and
// issuer certificates, and an issuing key the CA delegated to an online
// issuing service. Their key files live beside the TUF keys, in the same
// format and with the same passphrase.
const (
	RoleFleetCA     = "fleet-ca"
	RoleFleetIssuer = "fleet-issuer"
)

var fleetRoles = []string{RoleFleetCA, RoleFleetIssuer}

// ErrNoFleet means the repository does not publish a fleet document yet.
var ErrNoFleet = errors.New("repository has no fleet document (run patchring ca init)")

// InitFleet creates the fleet CA key in the keys directory (unless one is
// there) and publishes fleet.json naming it, with no issuers and nothing
// revoked. An existing fleet document is an error wrapping ErrExists.
func (r *Repo) InitFleet() (credential.Document, error) {
	if _, err := r.FleetDocument(); err == nil {
		return credential.Document{}, fmt.Errorf("init fleet: %w: %s is published", ErrExists, credential.TargetName)
	}
	if err := r.Unlock(); err != nil {
		return credential.Document{}, fmt.Errorf("init fleet: %w", err)
	}
	ca, err := r.newOrExistingFleetKey(RoleFleetCA)
	if err != nil {
		return credential.Document{}, fmt.Errorf("init fleet: %w", err)
	}
	doc := credential.Document{Version: credential.DocumentVersion, CA: []ed25519.PublicKey{ca.Public}}
	if err := r.publishFleet(&doc); err != nil {
		return credential.Document{}, fmt.Errorf("init fleet: %w", err)
	}
	return doc, nil
}

func (r *Repo) newOrExistingFleetKey(role string) (*Key, error) {
	for _, k := range r.keys {
		if k.Role == role {
			return k, nil
		}
	}
	if err := ensureKeysDir(r.keysDir); err != nil {
		return nil, err
	}
	k, err := generateKey(role, r.now())
	if err != nil {
		return nil, err
	}
	if err := writeKeyFile(r.keysDir, k, r.passphrase); err != nil {
		return nil, err
	}
	r.keys[k.ID] = k
	return k, nil
}

// FleetKey returns the private key of the fleet CA (role RoleFleetCA) or
// of an issuing key (RoleFleetIssuer), decrypted with the passphrase given
// to Open. With several keys of the role, the newest is used.
func (r *Repo) FleetKey(role string) (ed25519.PrivateKey, error) {
	var newest *Key
	for _, k := range r.keys {
		if k.Role == role && (newest == nil || k.Created.After(newest.Created)) {
			newest = k
		}
	}
	if newest == nil {
		return nil, fmt.Errorf("fleet key: %w: no %s key in %s", ErrNoSuchKey, role, r.keysDir)
	}
	k, err := ReadKeyFile(newest.Path, r.passphrase, true)
	if err != nil {
		return nil, fmt.Errorf("fleet key: %w", err)
	}
	return k.Private, nil
}

// FleetDocument returns the staged fleet document (the published one unless
// a change is staged). Errors wrap ErrNoFleet when there is none.
func (r *Repo) FleetDocument() (credential.Document, error) {
	tf, ok := r.targets.Signed.Targets[credential.TargetName]
	if !ok {
		return credential.Document{}, ErrNoFleet
	}
	raw, err := os.ReadFile(r.payloadPath(credential.TargetName, hex.EncodeToString(tf.Hashes["sha256"])))
	if err != nil {
		return credential.Document{}, fmt.Errorf("read fleet document: %w", err)
	}
	if err := tf.VerifyLengthHashes(raw); err != nil {
		return credential.Document{}, fmt.Errorf("read fleet document: %w", err)
	}
	t, err := credential.ParseDocument(raw)
	if err != nil {
		return credential.Document{}, err
	}
	return t.Document(), nil
}

// UpdateFleet applies change to the fleet document and publishes it (new
// targets, snapshot and timestamp), as revocations and issuer changes do.
func (r *Repo) UpdateFleet(change func(*credential.Document) error) (Versions, error) {
	doc, err := r.FleetDocument()
	if err != nil {
		return Versions{}, fmt.Errorf("update fleet: %w", err)
	}
	if err := r.Unlock(); err != nil {
		return Versions{}, fmt.Errorf("update fleet: %w", err)
	}
	if err := change(&doc); err != nil {
		return Versions{}, fmt.Errorf("update fleet: %w", err)
	}
	if err := r.publishFleet(&doc); err != nil {
		return Versions{}, fmt.Errorf("update fleet: %w", err)
	}
	return r.Versions(), nil
}

func (r *Repo) publishFleet(doc *credential.Document) error {
	raw, err := doc.Marshal()
	if err != nil {
		return err
	}
	if err := r.AddTarget(credential.TargetName, raw, nil); err != nil {
		return err
	}
	_, err = r.Publish()
	return err
}

// now is exposed to fleet helpers that stamp revocations.
func (r *Repo) Now() time.Time { return r.now() }

// FleetTrust opens the repository in dir read-only and returns its fleet
// document, checked: what the issuing service and the CA's commands verify
// credentials against.
func FleetTrust(dir string) (*credential.Trust, error) {
	r, err := Open(dir, "", "")
	if err != nil {
		return nil, err
	}
	doc, err := r.FleetDocument()
	if err != nil {
		return nil, err
	}
	return credential.NewTrust(&doc)
}
