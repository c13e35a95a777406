package tufrepo

import (
	"crypto"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/patchring/patchring/internal/atomicfile"
	"github.com/patchring/patchring/policy/fleetstatus"
)

// RoleFleetStatus is the delegated role that signs the fleet status
// document: its key lives with the fleet console, and the delegation allows
// it the one path fleetstatus.Target, nothing else.
const RoleFleetStatus = fleetstatus.Role

// FleetStatusTarget is the one target the fleet-status role may sign.
const FleetStatusTarget = fleetstatus.Target

// Errors of the fleet status delegation.
var (
	ErrNoFleetStatusDelegation = errors.New("the targets metadata delegates no fleet-status role (run patchring repo delegate-fleet-status)")
	ErrFleetStatusRefused      = errors.New("fleet status metadata refused")
)

// NewFleetStatusKey creates the fleet console's signing key as a key file
// in dir (created 0700 if missing), encrypted when passphrase is not empty.
func NewFleetStatusKey(dir, passphrase string, now time.Time) (*Key, error) {
	if err := ensureKeysDir(dir); err != nil {
		return nil, fmt.Errorf("new fleet status key: %w", err)
	}
	k, err := generateKey(RoleFleetStatus, now)
	if err != nil {
		return nil, fmt.Errorf("new fleet status key: %w", err)
	}
	if err := writeKeyFile(dir, k, []byte(passphrase)); err != nil {
		return nil, fmt.Errorf("new fleet status key: %w", err)
	}
	return k, nil
}

// DelegateFleetStatus delegates the role fleet-status to pub (replacing
// the key of an earlier delegation: a rotation) and publishes the targets
// metadata: it needs the targets key. The delegation is terminating, has
// threshold 1 and the one path fleetstatus.Target, so the console's key can
// sign that document and nothing else.
func (r *Repo) DelegateFleetStatus(pub ed25519.PublicKey) (Versions, error) {
	if len(pub) != ed25519.PublicKeySize {
		return Versions{}, fmt.Errorf("delegate fleet status: public key of %d bytes, want %d", len(pub), ed25519.PublicKeySize)
	}
	if err := r.Unlock(); err != nil {
		return Versions{}, fmt.Errorf("delegate fleet status: %w", err)
	}
	tk, err := metadata.KeyFromPublicKey(pub)
	if err != nil {
		return Versions{}, fmt.Errorf("delegate fleet status: %w", err)
	}
	id, err := tk.ID()
	if err != nil {
		return Versions{}, fmt.Errorf("delegate fleet status: %w", err)
	}
	d := r.targets.Signed.Delegations
	if d == nil {
		d = &metadata.Delegations{Keys: map[string]*metadata.Key{}}
		r.targets.Signed.Delegations = d
	}
	if d.Keys == nil {
		d.Keys = map[string]*metadata.Key{}
	}
	var old []string
	d.Roles = slices.DeleteFunc(d.Roles, func(role metadata.DelegatedRole) bool {
		if role.Name == RoleFleetStatus {
			old = append(old, role.KeyIDs...)
			return true
		}
		return false
	})
	for _, kid := range old {
		if !keyUsedByOtherRole(d, kid) {
			delete(d.Keys, kid)
		}
	}
	d.Keys[id] = tk
	d.Roles = append(d.Roles, metadata.DelegatedRole{
		Name: RoleFleetStatus, KeyIDs: []string{id}, Threshold: 1, Terminating: true,
		Paths: []string{fleetstatus.Target},
	})
	r.dirty = true
	v, err := r.Publish()
	if err != nil {
		return Versions{}, fmt.Errorf("delegate fleet status: %w", err)
	}
	return v, nil
}

func keyUsedByOtherRole(d *metadata.Delegations, kid string) bool {
	for _, role := range d.Roles {
		if slices.Contains(role.KeyIDs, kid) {
			return true
		}
	}
	return false
}

// fleetStatusDelegation returns the delegation of the fleet-status role in
// the published targets metadata.
func (r *Repo) fleetStatusDelegation() (*metadata.DelegatedRole, error) {
	d := r.targets.Signed.Delegations
	if d == nil {
		return nil, ErrNoFleetStatusDelegation
	}
	for i := range d.Roles {
		if d.Roles[i].Name == RoleFleetStatus {
			return &d.Roles[i], nil
		}
	}
	return nil, ErrNoFleetStatusDelegation
}

// SignFleetStatus is the console's side: it returns the fleet-status role's
// metadata, version and expiry as given, listing doc as the target
// fleetstatus.Target, signed with key.
func SignFleetStatus(doc []byte, key ed25519.PrivateKey, version int64, expires time.Time) ([]byte, error) {
	if version < 1 {
		return nil, fmt.Errorf("sign fleet status: version %d: must be at least 1", version)
	}
	md := metadata.Targets(expires.UTC().Truncate(time.Second))
	md.Signed.Version = version
	tf, err := metadata.TargetFile().FromBytes(fleetstatus.Target, doc, "sha256")
	if err != nil {
		return nil, fmt.Errorf("sign fleet status: %w", err)
	}
	md.Signed.Targets[fleetstatus.Target] = tf
	s, err := signature.LoadSigner(key, crypto.Hash(0))
	if err != nil {
		return nil, fmt.Errorf("sign fleet status: %w", err)
	}
	if _, err := md.Sign(s); err != nil {
		return nil, fmt.Errorf("sign fleet status: %w", err)
	}
	return md.ToBytes(true)
}

// FleetStatusVersion returns the version of the fleet-status metadata the
// published snapshot lists (0: none yet).
func (r *Repo) FleetStatusVersion() int64 {
	if m, ok := r.snapshot.Signed.Meta[RoleFleetStatus+".json"]; ok {
		return m.Version
	}
	return 0
}

// PublishFleetStatus is the keeper's side: it checks the console's signed
// fleet-status metadata and document against the published targets'
// delegation (signed by the delegated key, a newer version than the one
// published, not expired, listing exactly fleetstatus.Target with doc's
// length and hash, and doc parses), writes both, and publishes a new
// snapshot listing it and a new timestamp. It needs only the snapshot and
// timestamp keys. Errors wrap ErrFleetStatusRefused when the console's
// input is at fault.
func (r *Repo) PublishFleetStatus(meta, doc []byte) (Versions, error) {
	op := "publish fleet status"
	del, err := r.fleetStatusDelegation()
	if err != nil {
		return Versions{}, fmt.Errorf("%s: %w", op, err)
	}
	md, err := (&metadata.Metadata[metadata.TargetsType]{}).FromBytes(meta)
	if err != nil {
		return Versions{}, fmt.Errorf("%s: %w: %v", op, ErrFleetStatusRefused, err)
	}
	if err := r.targets.VerifyDelegate(RoleFleetStatus, md); err != nil {
		return Versions{}, fmt.Errorf("%s: %w: not signed by the delegated fleet-status key: %v", op, ErrFleetStatusRefused, err)
	}
	now := r.now()
	if !md.Signed.Expires.After(now) {
		return Versions{}, fmt.Errorf("%s: %w: expired at %s", op, ErrFleetStatusRefused, md.Signed.Expires.UTC().Format(time.RFC3339))
	}
	if cur := r.FleetStatusVersion(); md.Signed.Version <= cur {
		return Versions{}, fmt.Errorf("%s: %w: version %d is not newer than the published %d", op, ErrFleetStatusRefused, md.Signed.Version, cur)
	}
	if md.Signed.Delegations != nil {
		return Versions{}, fmt.Errorf("%s: %w: the fleet-status role may not delegate", op, ErrFleetStatusRefused)
	}
	if len(md.Signed.Targets) != 1 || md.Signed.Targets[fleetstatus.Target] == nil {
		names := make([]string, 0, len(md.Signed.Targets))
		for n := range md.Signed.Targets {
			names = append(names, n)
		}
		return Versions{}, fmt.Errorf("%s: %w: must list exactly %s, lists %s", op, ErrFleetStatusRefused, fleetstatus.Target, strings.Join(names, ", "))
	}
	if ok, _ := del.IsDelegatedPath(fleetstatus.Target); !ok {
		return Versions{}, fmt.Errorf("%s: %w: the delegation does not allow %s", op, ErrFleetStatusRefused, fleetstatus.Target)
	}
	tf := md.Signed.Targets[fleetstatus.Target]
	if err := tf.VerifyLengthHashes(doc); err != nil {
		return Versions{}, fmt.Errorf("%s: %w: document does not match the signed length and hash: %v", op, ErrFleetStatusRefused, err)
	}
	if _, err := fleetstatus.Parse(doc); err != nil {
		return Versions{}, fmt.Errorf("%s: %w: %v", op, ErrFleetStatusRefused, err)
	}

	unlock, err := r.lock()
	if err != nil {
		return Versions{}, fmt.Errorf("%s: %w", op, err)
	}
	defer unlock()
	if err := r.checkUnchanged(); err != nil {
		return Versions{}, fmt.Errorf("%s: %w", op, err)
	}
	prevVersion := r.FleetStatusVersion()
	var prevPayload string
	if prevVersion > 0 {
		if old, err := (&metadata.Metadata[metadata.TargetsType]{}).FromFile(r.metaPath(fmt.Sprintf("%d.%s.json", prevVersion, RoleFleetStatus))); err == nil {
			if otf := old.Signed.Targets[fleetstatus.Target]; otf != nil {
				prevPayload = r.payloadPath(fleetstatus.Target, hex.EncodeToString(otf.Hashes["sha256"]))
			}
		}
	}
	payload := r.payloadPath(fleetstatus.Target, hex.EncodeToString(tf.Hashes["sha256"]))
	if err := os.MkdirAll(filepath.Dir(payload), 0o755); err != nil {
		return Versions{}, fmt.Errorf("%s: %w", op, err)
	}
	if err := atomicfile.WriteFile(payload, doc, 0o644); err != nil {
		return Versions{}, fmt.Errorf("%s: %w", op, err)
	}
	version := md.Signed.Version
	for _, name := range []string{fmt.Sprintf("%d.%s.json", version, RoleFleetStatus), RoleFleetStatus + ".json"} {
		if err := atomicfile.WriteFile(r.metaPath(name), meta, 0o644); err != nil {
			return Versions{}, fmt.Errorf("%s: %w", op, err)
		}
	}
	snapshot, err := clone(r.snapshot)
	if err != nil {
		return Versions{}, fmt.Errorf("%s: %w", op, err)
	}
	snapshot.Signed.Meta[RoleFleetStatus+".json"] = metaFor(version, meta)
	v, err := r.commitSnapshotLocked(snapshot, now)
	if err != nil {
		return Versions{}, fmt.Errorf("%s: %w", op, err)
	}
	// The version before the previous one is no longer listed anywhere an
	// agent could still be reading it: remove it (best effort). The
	// previous one stays for agents that read the old snapshot a moment ago.
	if prevVersion > 1 {
		if older, err := (&metadata.Metadata[metadata.TargetsType]{}).FromFile(r.metaPath(fmt.Sprintf("%d.%s.json", prevVersion-1, RoleFleetStatus))); err == nil {
			if otf := older.Signed.Targets[fleetstatus.Target]; otf != nil {
				p := r.payloadPath(fleetstatus.Target, hex.EncodeToString(otf.Hashes["sha256"]))
				if p != payload && p != prevPayload {
					_ = os.Remove(p)
				}
			}
		}
	}
	r.removeOldFleetStatusMeta(prevVersion)
	return v, nil
}

// removeOldFleetStatusMeta deletes fleet-status metadata versions older
// than keep (best effort: leftovers are harmless).
func (r *Repo) removeOldFleetStatusMeta(keep int64) {
	entries, err := os.ReadDir(filepath.Join(r.dir, metadataDir))
	if err != nil {
		return
	}
	suffix := "." + RoleFleetStatus + ".json"
	for _, e := range entries {
		n, ok := strings.CutSuffix(e.Name(), suffix)
		if !ok {
			continue
		}
		var v int64
		if _, err := fmt.Sscanf(n, "%d", &v); err == nil && v > 0 && v < keep && fmt.Sprint(v) == n {
			_ = os.Remove(r.metaPath(e.Name()))
		}
	}
}

// commitSnapshotLocked signs snapshot with the next version and a fresh
// expiry, and a new timestamp naming it, and writes both (timestamp last).
// The caller holds the lock.
func (r *Repo) commitSnapshotLocked(snapshot *metadata.Metadata[metadata.SnapshotType], now time.Time) (Versions, error) {
	trust := []*metadata.Metadata[metadata.RootType]{r.root}
	snapshot.Signed.Version = r.snapshot.Signed.Version + 1
	snapshot.Signed.Expires = r.expiry(RoleSnapshot, now)
	if err := signAs(r, snapshot, RoleSnapshot, trust); err != nil {
		return Versions{}, err
	}
	snapshotData, err := snapshot.ToBytes(true)
	if err != nil {
		return Versions{}, err
	}
	timestamp, err := clone(r.timestamp)
	if err != nil {
		return Versions{}, err
	}
	timestamp.Signed.Version = r.timestamp.Signed.Version + 1
	timestamp.Signed.Expires = r.expiry(RoleTimestamp, now)
	timestamp.Signed.Meta = map[string]*metadata.MetaFiles{"snapshot.json": metaFor(snapshot.Signed.Version, snapshotData)}
	if err := signAs(r, timestamp, RoleTimestamp, trust); err != nil {
		return Versions{}, err
	}
	timestampData, err := timestamp.ToBytes(true)
	if err != nil {
		return Versions{}, err
	}
	for _, f := range []struct {
		name string
		data []byte
	}{
		{fmt.Sprintf("%d.snapshot.json", snapshot.Signed.Version), snapshotData},
		{"snapshot.json", snapshotData},
		{"timestamp.json", timestampData},
	} {
		if err := atomicfile.WriteFile(r.metaPath(f.name), f.data, 0o644); err != nil {
			return Versions{}, err
		}
	}
	r.snapshot, r.timestamp = snapshot, timestamp
	return r.Versions(), nil
}

// Files of a fleet status directory: the console writes them, the keeper
// reads them.
const (
	fleetStatusMetaFile = "fleet-status.meta.json"
	fleetStatusDocFile  = "fleet-status.json"
)

// WriteFleetStatusDir leaves a signed fleet status in dir for the keeper:
// the document first, then its metadata, each replaced atomically, so the
// keeper reads a matching pair or, in the moment between, a pair that fails
// the hash check and is tried again on its next pass.
func WriteFleetStatusDir(dir string, meta, doc []byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write fleet status: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, fleetStatusDocFile), doc, 0o644); err != nil {
		return fmt.Errorf("write fleet status: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, fleetStatusMetaFile), meta, 0o644); err != nil {
		return fmt.Errorf("write fleet status: %w", err)
	}
	return nil
}

// ReadFleetStatusDir reads what WriteFleetStatusDir left (errors wrap
// fs.ErrNotExist when there is nothing yet).
func ReadFleetStatusDir(dir string) (meta, doc []byte, err error) {
	if meta, err = readCapped(filepath.Join(dir, fleetStatusMetaFile), 1<<20); err != nil {
		return nil, nil, fmt.Errorf("read fleet status: %w", err)
	}
	if doc, err = readCapped(filepath.Join(dir, fleetStatusDocFile), fleetstatus.MaxBytes); err != nil {
		return nil, nil, fmt.Errorf("read fleet status: %w", err)
	}
	return meta, doc, nil
}

func readCapped(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return data, nil
}
