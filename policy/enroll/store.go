package enroll

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Files in the service's data directory.
const (
	// StoreFile holds the tokens (bbolt).
	StoreFile = "tokens.db"
	// LedgerFile is the service's ledger of issued credentials.
	LedgerFile = "issued.jsonl"
)

var (
	bucketTokens = []byte("tokens")
	bucketFleets = []byte("fleets")
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

// Store is the issuing service's token store: a bbolt file in the data
// directory. Each operation opens the file and closes it again, so
// `patchring enroll-token create` can add tokens while the service runs
// (bbolt's file lock serializes them).
type Store struct {
	path string
	// Timeout is how long an operation waits for the other process's
	// lock (default 10s).
	Timeout time.Duration
}

// OpenStore returns the store in dir, creating dir (0700) and the file.
func OpenStore(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("token store: no data directory given")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("token store: %w", err)
	}
	s := &Store{path: filepath.Join(dir, StoreFile), Timeout: 10 * time.Second}
	if err := s.update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketTokens, bucketFleets} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	return s, nil
}

// Path is the store's file.
func (s *Store) Path() string { return s.path }

func (s *Store) open() (*bolt.DB, error) {
	db, err := bolt.Open(s.path, 0o600, &bolt.Options{Timeout: s.Timeout})
	if err != nil {
		return nil, fmt.Errorf("token store %s: %w", s.path, err)
	}
	return db, nil
}

func (s *Store) update(fn func(*bolt.Tx) error) error {
	db, err := s.open()
	if err != nil {
		return err
	}
	err = db.Update(fn)
	if cerr := db.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("token store %s: %w", s.path, cerr)
	}
	return err
}

func (s *Store) view(fn func(*bolt.Tx) error) error {
	db, err := s.open()
	if err != nil {
		return err
	}
	err = db.View(fn)
	db.Close()
	return err
}

// Add records a new token. Its ID must be new.
func (s *Store) Add(rec TokenRecord) error {
	if len(rec.ID) != 2*idLen || !isLowerHex(rec.ID) || len(rec.SecretHash) != sha256.Size {
		return fmt.Errorf("add token %q: malformed record", rec.ID)
	}
	raw, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("add token %s: %w", rec.ID, err)
	}
	return s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTokens)
		if b.Get([]byte(rec.ID)) != nil {
			return fmt.Errorf("add token %s: the ID is taken", rec.ID)
		}
		if err := tx.Bucket(bucketFleets).Put([]byte(rec.Fleet), []byte{1}); err != nil {
			return fmt.Errorf("add token %s: %w", rec.ID, err)
		}
		if err := b.Put([]byte(rec.ID), raw); err != nil {
			return fmt.Errorf("add token %s: %w", rec.ID, err)
		}
		return nil
	})
}

// Tokens returns every token, in ID order.
func (s *Store) Tokens() ([]TokenRecord, error) {
	var out []TokenRecord
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketTokens).ForEach(func(k, v []byte) error {
			var rec TokenRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("token store %s: token %s: %w", s.path, k, err)
			}
			out = append(out, rec)
			return nil
		})
	})
	return out, err
}

// Delete removes a token (revoking it before its uses run out).
func (s *Store) Delete(id string) error {
	return s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTokens)
		if b.Get([]byte(id)) == nil {
			return fmt.Errorf("delete token %s: %w", id, ErrNoToken)
		}
		return b.Delete([]byte(id))
	})
}

// use runs fn on the token id in one transaction; fn's changes to the
// record are saved when it returns nil. known reports whether the store
// has issued any token for fleet (to tell a foreign token from an unknown
// one) when id is not found, in which case fn gets nil.
func (s *Store) use(id, fleet string, fn func(rec *TokenRecord, knownFleet bool) error) error {
	return s.update(func(tx *bolt.Tx) error {
		known := tx.Bucket(bucketFleets).Get([]byte(fleet)) != nil
		b := tx.Bucket(bucketTokens)
		v := b.Get([]byte(id))
		if v == nil {
			return fn(nil, known)
		}
		var rec TokenRecord
		if err := json.Unmarshal(v, &rec); err != nil {
			return fmt.Errorf("token store %s: token %s: %w", s.path, id, err)
		}
		if err := fn(&rec, known); err != nil {
			return err
		}
		raw, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		return b.Put([]byte(id), raw)
	})
}
