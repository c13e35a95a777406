package tufrepo

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// RotateKey replaces every key of role with as many fresh keys (at least
// the threshold). The change is a new root version signed by the current
// root keys and, for root itself, by the new ones too, so agents trusting
// the old root follow it; targets, snapshot and timestamp are re-signed with
// new versions. The old key files move to keysDir/retired/. It returns the
// new key IDs.
func (r *Repo) RotateKey(role string) ([]string, error) {
	if err := parseRole(role); err != nil {
		return nil, fmt.Errorf("rotate key: %w", err)
	}
	unlock, err := r.lock()
	if err != nil {
		return nil, fmt.Errorf("rotate %s key: %w", role, err)
	}
	defer unlock()
	newRoot, err := clone(r.root)
	if err != nil {
		return nil, err
	}
	old := slices.Clone(newRoot.Signed.Roles[role].KeyIDs)
	n := max(len(old), newRoot.Signed.Roles[role].Threshold)
	for _, id := range old {
		if err := newRoot.Signed.RevokeKey(id, role); err != nil {
			return nil, fmt.Errorf("rotate %s key: %w", role, err)
		}
	}
	added, err := r.addKeys(newRoot, role, n)
	if err != nil {
		return nil, fmt.Errorf("rotate %s key: %w", role, err)
	}
	if _, err := r.commitLocked(newRoot, true, r.now()); err != nil {
		r.discardKeys(added)
		return nil, fmt.Errorf("rotate %s key: %w", role, err)
	}
	r.retireUnused(old)
	ids := make([]string, len(added))
	for i, k := range added {
		ids[i] = k.ID
	}
	return ids, nil
}

// AddKey adds one fresh key to role (a new root version) and returns its
// ID.
func (r *Repo) AddKey(role string) (string, error) {
	if err := parseRole(role); err != nil {
		return "", fmt.Errorf("add key: %w", err)
	}
	unlock, err := r.lock()
	if err != nil {
		return "", fmt.Errorf("add %s key: %w", role, err)
	}
	defer unlock()
	newRoot, err := clone(r.root)
	if err != nil {
		return "", err
	}
	if len(newRoot.Signed.Roles[role].KeyIDs) >= maxKeys {
		return "", fmt.Errorf("add %s key: the role already has %d keys", role, maxKeys)
	}
	added, err := r.addKeys(newRoot, role, 1)
	if err != nil {
		return "", fmt.Errorf("add %s key: %w", role, err)
	}
	if _, err := r.commitLocked(newRoot, true, r.now()); err != nil {
		r.discardKeys(added)
		return "", fmt.Errorf("add %s key: %w", role, err)
	}
	return added[0].ID, nil
}

// RemoveKey revokes keyID (or a unique prefix of it of at least 8
// characters) from role (a new root version) and retires its key file. It refuses to leave the role with fewer keys than its
// threshold.
func (r *Repo) RemoveKey(role, keyID string) error {
	if err := parseRole(role); err != nil {
		return fmt.Errorf("remove key: %w", err)
	}
	unlock, err := r.lock()
	if err != nil {
		return fmt.Errorf("remove %s key: %w", role, err)
	}
	defer unlock()
	newRoot, err := clone(r.root)
	if err != nil {
		return err
	}
	rr := newRoot.Signed.Roles[role]
	if !slices.Contains(rr.KeyIDs, keyID) {
		// Accept a unique prefix of at least 8 characters, as status shows.
		var matches []string
		for _, id := range rr.KeyIDs {
			if len(keyID) >= 8 && strings.HasPrefix(id, keyID) {
				matches = append(matches, id)
			}
		}
		if len(matches) != 1 {
			return fmt.Errorf("remove %s key: %w: %s is not a key (or a unique prefix of at least 8 characters) of %s (see patchring repo status)", role, ErrNoSuchKey, keyID, role)
		}
		keyID = matches[0]
	}
	if len(rr.KeyIDs)-1 < rr.Threshold {
		return fmt.Errorf("remove %s key %s: %w: %s would keep %d key(s) for a threshold of %d; add a key first", role, keyID, ErrThresholdTooHigh, role, len(rr.KeyIDs)-1, rr.Threshold)
	}
	if err := newRoot.Signed.RevokeKey(keyID, role); err != nil {
		return fmt.Errorf("remove %s key: %w", role, err)
	}
	if _, err := r.commitLocked(newRoot, true, r.now()); err != nil {
		return fmt.Errorf("remove %s key: %w", role, err)
	}
	r.retireUnused([]string{keyID})
	return nil
}

// addKeys generates n keys for role, writes their files and adds them to
// newRoot.
func (r *Repo) addKeys(newRoot *metadata.Metadata[metadata.RootType], role string, n int) ([]*Key, error) {
	if r.keysDir == "" {
		return nil, fmt.Errorf("no keys directory given")
	}
	if err := ensureKeysDir(r.keysDir); err != nil {
		return nil, err
	}
	var added []*Key
	for range n {
		k, err := generateKey(role, r.now())
		if err != nil {
			r.discardKeys(added)
			return nil, err
		}
		if err := writeKeyFile(r.keysDir, k, r.passphrase); err != nil {
			r.discardKeys(added)
			return nil, err
		}
		added = append(added, k)
		r.keys[k.ID] = k
		tk, err := k.tufKey()
		if err != nil {
			r.discardKeys(added)
			return nil, err
		}
		if err := newRoot.Signed.AddKey(tk, role); err != nil {
			r.discardKeys(added)
			return nil, err
		}
	}
	return added, nil
}

// discardKeys removes key files of a change that was not published.
func (r *Repo) discardKeys(keys []*Key) {
	for _, k := range keys {
		delete(r.keys, k.ID)
		if k.Path != "" {
			_ = os.Remove(k.Path)
		}
	}
}

// retireUnused moves the files of keys no role of the current root uses to
// keysDir/retired/.
func (r *Repo) retireUnused(ids []string) {
	for _, id := range ids {
		if _, used := r.root.Signed.Keys[id]; used {
			continue
		}
		if k, ok := r.keys[id]; ok {
			if err := retireKey(r.keysDir, k); err == nil {
				delete(r.keys, id)
			}
		}
	}
}
