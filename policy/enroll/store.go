package enroll

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/patchring/patchring/internal/atomicfile"
)

// Files in the service's data directory.
const (
	// StoreFile holds the tokens (JSON, replaced atomically).
	StoreFile = "tokens.json"
	// lockFile serializes the processes that change StoreFile.
	lockFile = "tokens.lock"
	// LedgerFile is the service's ledger of issued credentials.
	LedgerFile = "issued.jsonl"
)

// ErrNoToken means the store has no token with that ID.
var ErrNoToken = errors.New("no such token")

// TokenRecord is what the service keeps about a token: never the secret,
// only its hash.
type TokenRecord struct {
	ID         string    `json:"id"`
	SecretHash []byte    `json:"secret_sha256"`
	Fleet      string    `json:"fleet"` // FleetID of the token's root.json
	Site       string    `json:"site"`
	Tags       []string  `json:"tags,omitempty"`
	Uses       int       `json:"uses"`      // granted
	UsesLeft   int       `json:"uses_left"` // remaining
	Created    time.Time `json:"created"`
	Expires    time.Time `json:"expires"`
	// Nodes are the node IDs enrolled with the token. A node enrolling
	// again (its first answer was lost) gets a new credential without
	// spending a use.
	Nodes []string `json:"nodes,omitempty"`
}

// HashSecret is how the store keeps a secret.
func HashSecret(secret []byte) []byte {
	sum := sha256.Sum256(secret)
	return sum[:]
}

// Store is the issuing service's token store: a JSON file in the data
// directory, read and replaced (atomically) under a lock file for every
// operation, so `patchring enroll-token create` can add tokens while the
// service runs. (Not bbolt: the CLI links no bbolt.)
type Store struct {
	dir string
	// Timeout is how long an operation waits for another process's lock
	// (default 10s).
	Timeout time.Duration
	mu      sync.Mutex // the lock file is per process; this serializes goroutines
}

// storeData is the file's content.
type storeData struct {
	Version int                    `json:"version"`
	Tokens  map[string]TokenRecord `json:"tokens"`
	// Fleets are the FleetIDs of every token ever created, to tell a
	// foreign token from a deleted one.
	Fleets []string `json:"fleets"`
}

// OpenStore returns the store in dir, creating dir (0700) and the file.
func OpenStore(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("token store: no data directory given")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("token store: %w", err)
	}
	s := &Store{dir: dir, Timeout: 10 * time.Second}
	if err := s.update(func(*storeData) error { return nil }); err != nil {
		return nil, err
	}
	return s, nil
}

// Path is the store's file.
func (s *Store) Path() string { return filepath.Join(s.dir, StoreFile) }

// locked runs fn holding the store's lock, with the file's content.
func (s *Store) locked(fn func(*storeData) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	lf, err := os.OpenFile(filepath.Join(s.dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("token store: %w", err)
	}
	defer lf.Close() // closing releases the lock
	deadline := time.Now().Add(s.Timeout)
	for {
		err := tryLock(lf)
		if err == nil {
			break
		}
		if !errors.Is(err, errLocked) || time.Now().After(deadline) {
			return fmt.Errorf("token store %s: lock: %w", s.Path(), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	d := storeData{Version: 1, Tokens: map[string]TokenRecord{}}
	raw, err := os.ReadFile(s.Path())
	switch {
	case err == nil:
		if err := json.Unmarshal(raw, &d); err != nil {
			return fmt.Errorf("token store %s: %w", s.Path(), err)
		}
		if d.Version != 1 {
			return fmt.Errorf("token store %s: version %d, this program reads 1", s.Path(), d.Version)
		}
		if d.Tokens == nil {
			d.Tokens = map[string]TokenRecord{}
		}
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("token store: %w", err)
	}
	return fn(&d)
}

func (s *Store) update(fn func(*storeData) error) error {
	return s.locked(func(d *storeData) error {
		if err := fn(d); err != nil {
			return err
		}
		raw, err := json.MarshalIndent(d, "", "  ")
		if err != nil {
			return fmt.Errorf("token store: %w", err)
		}
		if err := atomicfile.WriteFile(s.Path(), append(raw, '\n'), 0o600); err != nil {
			return fmt.Errorf("token store: %w", err)
		}
		return nil
	})
}

// Add records a new token. Its ID must be new.
func (s *Store) Add(rec TokenRecord) error {
	if len(rec.ID) != 2*idLen || !isLowerHex(rec.ID) || len(rec.SecretHash) != sha256.Size {
		return fmt.Errorf("add token %q: malformed record", rec.ID)
	}
	return s.update(func(d *storeData) error {
		if _, ok := d.Tokens[rec.ID]; ok {
			return fmt.Errorf("add token %s: the ID is taken", rec.ID)
		}
		d.Tokens[rec.ID] = rec
		if !slices.Contains(d.Fleets, rec.Fleet) {
			d.Fleets = append(d.Fleets, rec.Fleet)
		}
		return nil
	})
}

// Tokens returns every token, in ID order.
func (s *Store) Tokens() ([]TokenRecord, error) {
	var out []TokenRecord
	err := s.locked(func(d *storeData) error {
		for _, id := range slices.Sorted(maps.Keys(d.Tokens)) {
			out = append(out, d.Tokens[id])
		}
		return nil
	})
	return out, err
}

// Delete removes a token (revoking it before its uses run out).
func (s *Store) Delete(id string) error {
	return s.update(func(d *storeData) error {
		if _, ok := d.Tokens[id]; !ok {
			return fmt.Errorf("delete token %s: %w", id, ErrNoToken)
		}
		delete(d.Tokens, id)
		return nil
	})
}

// use runs fn on the token id under the lock; fn's changes to the record
// are saved when it returns nil. knownFleet reports whether the store has
// created any token for fleet (to tell a foreign token from an unknown
// one); when id is not found fn gets nil.
func (s *Store) use(id, fleet string, fn func(rec *TokenRecord, knownFleet bool) error) error {
	return s.update(func(d *storeData) error {
		known := slices.Contains(d.Fleets, fleet)
		rec, ok := d.Tokens[id]
		if !ok {
			return fn(nil, known)
		}
		if err := fn(&rec, known); err != nil {
			return err
		}
		d.Tokens[id] = rec
		return nil
	})
}
