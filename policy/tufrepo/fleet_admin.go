package tufrepo

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/patchring/patchring/policy/credential"
)

// IssuerSpec describes a new issuing key: its name in fleet.json, the sites
// it may issue for (all when empty), how long the CA's delegation lasts,
// and where its key file goes (a private directory outside the repository,
// for the issuing service) encrypted with Passphrase when set.
type IssuerSpec struct {
	Name       string
	Sites      []string
	Valid      time.Duration
	OutDir     string
	Passphrase string
}

// CreateIssuer makes a fresh fleet-issuer key, writes its key file to
// spec.OutDir, and publishes an issuer certificate for it signed by the
// newest CA key. A name already in fleet.json (live or retired: retirement
// is by name) is refused. If publishing fails the key file is removed.
func (r *Repo) CreateIssuer(spec IssuerSpec) (credential.IssuerCert, *Key, Versions, error) {
	fail := func(err error) (credential.IssuerCert, *Key, Versions, error) {
		return credential.IssuerCert{}, nil, Versions{}, fmt.Errorf("create issuer %q: %w", spec.Name, err)
	}
	if spec.Valid <= 0 {
		return fail(errors.New("validity must be positive"))
	}
	if spec.OutDir == "" {
		return fail(errors.New("no directory for the issuing key"))
	}
	doc, err := r.FleetDocument()
	if err != nil {
		return fail(err)
	}
	if err := nameFree(&doc, spec.Name); err != nil {
		return fail(err)
	}
	ca, err := r.signingCA(&doc)
	if err != nil {
		return fail(err)
	}
	now := r.now()
	// Check the name and sites before a key file exists.
	if _, err := credential.SignIssuer(ca, spec.Name, ca.Public().(ed25519.PublicKey), spec.Sites, now, now.Add(spec.Valid)); err != nil {
		return fail(err)
	}
	if err := checkKeysOutsideRepo(r.dir, spec.OutDir); err != nil {
		return fail(err)
	}
	if err := ensureKeysDir(spec.OutDir); err != nil {
		return fail(err)
	}
	k, err := generateKey(RoleFleetIssuer, now)
	if err != nil {
		return fail(err)
	}
	if err := writeKeyFile(spec.OutDir, k, []byte(spec.Passphrase)); err != nil {
		return fail(err)
	}
	ic, err := credential.SignIssuer(ca, spec.Name, k.Public, spec.Sites, now, now.Add(spec.Valid))
	if err != nil {
		os.Remove(k.Path)
		return fail(err)
	}
	v, err := r.UpdateFleet(func(d *credential.Document) error {
		if err := nameFree(d, spec.Name); err != nil {
			return err
		}
		d.Issuers = append(d.Issuers, ic)
		return nil
	})
	if err != nil {
		os.Remove(k.Path)
		return fail(err)
	}
	return ic, k, v, nil
}

func nameFree(d *credential.Document, name string) error {
	for _, ic := range d.Issuers {
		if ic.Name == name {
			if slices.Contains(d.Revoked.Issuers, name) {
				return fmt.Errorf("%w: an issuer named %q was retired; retirement is by name, so pick a new one", ErrExists, name)
			}
			return fmt.Errorf("%w: fleet.json has an issuer named %q", ErrExists, name)
		}
	}
	return nil
}

// signingCA returns the newest CA private key in the keys directory,
// checked to be one of the document's CA keys (a key that is not published
// would sign credentials no agent accepts).
func (r *Repo) signingCA(doc *credential.Document) (ed25519.PrivateKey, error) {
	ca, err := r.FleetKey(RoleFleetCA)
	if err != nil {
		return nil, err
	}
	pub := ca.Public().(ed25519.PublicKey)
	if !slices.ContainsFunc(doc.CA, func(k ed25519.PublicKey) bool { return pub.Equal(k) }) {
		return nil, fmt.Errorf("the CA key %s in %s is not in the published %s", credential.SignerIDOf(pub), r.keysDir, credential.TargetName)
	}
	return ca, nil
}

// SigningCA returns the CA private key that signs credentials and issuer
// certificates: the newest fleet-ca key in the keys directory, which must
// be published in fleet.json.
func (r *Repo) SigningCA() (ed25519.PrivateKey, error) {
	doc, err := r.FleetDocument()
	if err != nil {
		return nil, fmt.Errorf("fleet CA: %w", err)
	}
	ca, err := r.signingCA(&doc)
	if err != nil {
		return nil, fmt.Errorf("fleet CA: %w", err)
	}
	return ca, nil
}

// RetireIssuer adds name to the retired issuers in fleet.json: credentials
// it signed stop verifying once agents refresh. Unknown or already retired
// names are refused.
func (r *Repo) RetireIssuer(name string) (Versions, error) {
	v, err := r.UpdateFleet(func(d *credential.Document) error {
		if !slices.ContainsFunc(d.Issuers, func(ic credential.IssuerCert) bool { return ic.Name == name }) {
			return fmt.Errorf("%w: no issuer named %q in %s", ErrNoSuchKey, name, credential.TargetName)
		}
		if slices.Contains(d.Revoked.Issuers, name) {
			return fmt.Errorf("issuer %q is already retired", name)
		}
		d.Revoked.Issuers = append(d.Revoked.Issuers, name)
		return nil
	})
	if err != nil {
		return Versions{}, fmt.Errorf("retire issuer: %w", err)
	}
	return v, nil
}

// RotateFleetCA creates a new CA key in the keys directory (encrypted like
// the others) and publishes it in fleet.json beside the current ones, with
// every live issuer certificate re-signed by it, so the old key can later be
// removed with RemoveFleetCA. From now on the new key signs. If publishing
// fails the new key file is removed.
func (r *Repo) RotateFleetCA() (credential.SignerID, Versions, error) {
	fail := func(err error) (credential.SignerID, Versions, error) {
		return credential.SignerID{}, Versions{}, fmt.Errorf("rotate fleet CA: %w", err)
	}
	if _, err := r.FleetDocument(); err != nil {
		return fail(err)
	}
	if err := r.Unlock(); err != nil {
		return fail(err)
	}
	if err := ensureKeysDir(r.keysDir); err != nil {
		return fail(err)
	}
	k, err := generateKey(RoleFleetCA, r.now())
	if err != nil {
		return fail(err)
	}
	// FleetKey picks the newest key; creation times are kept to the second.
	for _, old := range r.keys {
		if old.Role == RoleFleetCA && !k.Created.After(old.Created) {
			k.Created = old.Created.Add(time.Second)
		}
	}
	if err := writeKeyFile(r.keysDir, k, r.passphrase); err != nil {
		return fail(err)
	}
	r.keys[k.ID] = k
	v, err := r.UpdateFleet(func(d *credential.Document) error {
		d.CA = append(d.CA, k.Public)
		for i, ic := range d.Issuers {
			if slices.Contains(d.Revoked.Issuers, ic.Name) {
				continue
			}
			re, err := credential.SignIssuer(k.Private, ic.Name, ic.Key, ic.Sites, ic.NotBefore, ic.NotAfter)
			if err != nil {
				return err
			}
			d.Issuers[i] = re
		}
		return nil
	})
	if err != nil {
		delete(r.keys, k.ID)
		os.Remove(k.Path)
		return fail(err)
	}
	return credential.SignerIDOf(k.Public), v, nil
}

// RemoveFleetCA removes the CA key with the given signer ID (hex, as
// credentials and `patchring ca show` name it) from fleet.json: credentials
// it signed stop verifying. The last CA key, and a key that still signs a
// live issuer certificate, are refused. Its key file, when present, moves to
// the keys directory's retired/.
func (r *Repo) RemoveFleetCA(signer string) (Versions, error) {
	id, err := credential.ParseSignerID(signer)
	if err != nil {
		return Versions{}, fmt.Errorf("remove fleet CA key: %w", err)
	}
	var removed ed25519.PublicKey
	v, err := r.UpdateFleet(func(d *credential.Document) error {
		i := slices.IndexFunc(d.CA, func(k ed25519.PublicKey) bool { return credential.SignerIDOf(k) == id })
		if i < 0 {
			return fmt.Errorf("%w: no CA key %s in %s", ErrNoSuchKey, signer, credential.TargetName)
		}
		if len(d.CA) == 1 {
			return fmt.Errorf("CA key %s is the only one; rotate first (patchring ca rotate)", signer)
		}
		for _, ic := range d.Issuers {
			if ic.Signer == id.String() && !slices.Contains(d.Revoked.Issuers, ic.Name) {
				return fmt.Errorf("CA key %s still signs issuer %q; rotate first (patchring ca rotate re-signs the issuers)", signer, ic.Name)
			}
		}
		removed = d.CA[i]
		d.CA = slices.Delete(d.CA, i, i+1)
		return nil
	})
	if err != nil {
		return Versions{}, fmt.Errorf("remove fleet CA key: %w", err)
	}
	for _, k := range r.keys {
		if k.Role == RoleFleetCA && k.Public.Equal(removed) {
			if err := retireKey(r.keysDir, k); err != nil {
				return v, fmt.Errorf("remove fleet CA key: published, but %w", err)
			}
			delete(r.keys, k.ID)
		}
	}
	return v, nil
}
