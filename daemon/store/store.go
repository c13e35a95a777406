// Package store is patchringd's durable state: one bbolt file in the state
// directory, one bucket per concern, a schema version with migrations, and
// fsync on every commit. A store that is locked by another daemon or that
// cannot be read is refused, never deleted or rewritten.
package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// FileName is the name of the database file inside the state directory.
const FileName = "state.db"

// SchemaVersion is the schema this build writes. Open migrates older
// stores up to it and refuses newer ones.
const SchemaVersion = 1

// Bucket names: one per concern.
var (
	BucketMeta      = []byte("meta")      // schema version, start count
	BucketNode      = []byte("node")      // node identity facts
	BucketInventory = []byte("inventory") // latest snapshot
	BucketHistory   = []byte("history")   // inventory change history
	BucketPolicy    = []byte("policy")    // last verified policy and refresh state
	BucketUpdates   = []byte("updates")   // updates seen, first-seen times
	BucketJournal   = []byte("journal")   // install/rollback transactions
	BucketReboot    = []byte("reboot")    // reboot state, deferrals
	BucketFleet     = []byte("fleet")     // fleet view cache
)

var allBuckets = [][]byte{
	BucketMeta, BucketNode, BucketInventory, BucketHistory, BucketPolicy,
	BucketUpdates, BucketJournal, BucketReboot, BucketFleet,
}

var keySchema = []byte("schema_version")

// ErrLocked is returned by Open when another process holds the store.
var ErrLocked = errors.New("state store is in use by another process")

// ErrNotFound is returned by Get when a key does not exist.
var ErrNotFound = errors.New("not found")

// CorruptError says the database file cannot be used. The file is left
// exactly as it was found.
type CorruptError struct {
	Path string
	Err  error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("state database %s is unreadable (%v); it was left untouched: "+
		"move it aside (e.g. mv %s %s.broken) to start with empty state, or restore it from a backup",
		e.Path, e.Err, e.Path, e.Path)
}

func (e *CorruptError) Unwrap() error { return e.Err }

// A Migration moves the store from version From to From+1 inside one
// write transaction.
type Migration struct {
	From  int
	Apply func(tx *bolt.Tx) error
}

// migrations lists every schema step. Version 0 is an empty file.
var migrations = []Migration{
	{From: 0, Apply: func(tx *bolt.Tx) error { return nil }},
}

// DB is an open state store.
type DB struct {
	bolt *bolt.DB
	path string
}

// Options tune Open.
type Options struct {
	// LockTimeout is how long Open waits for another process to release
	// the file. Zero means one second.
	LockTimeout time.Duration
}

// Open opens or creates the store at path, applies migrations and returns
// it. It fails with ErrLocked when another process has the file open and
// with *CorruptError when the file cannot be read; in neither case is the
// file modified.
func Open(path string, opts Options) (*DB, error) {
	timeout := opts.LockTimeout
	if timeout == 0 {
		timeout = time.Second
	}
	if fi, err := os.Stat(path); err == nil && fi.Size() > 0 {
		// Open read-only first so a corrupt file is never written to
		// (opening read-write may grow or initialise it).
		if err := probe(path, timeout); err != nil {
			return nil, err
		}
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return nil, classify(path, err)
	}
	s := &DB{bolt: db, path: path}
	if err := s.migrate(migrations); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// probe opens an existing file read-only and walks its buckets so that
// corruption is found before anything writes.
func probe(path string, timeout time.Duration) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &CorruptError{Path: path, Err: fmt.Errorf("%v", r)}
		}
	}()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout, ReadOnly: true})
	if err != nil {
		return classify(path, err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error { return nil })
		})
	})
	if err != nil {
		return &CorruptError{Path: path, Err: err}
	}
	return nil
}

func classify(path string, err error) error {
	switch {
	case errors.Is(err, bolterrors.ErrTimeout):
		return fmt.Errorf("open %s: %w (is another patchringd running with this state dir?)", path, ErrLocked)
	case errors.Is(err, bolterrors.ErrInvalid), errors.Is(err, bolterrors.ErrVersionMismatch),
		errors.Is(err, bolterrors.ErrChecksum), errors.Is(err, bolterrors.ErrInvalidMapping):
		return &CorruptError{Path: path, Err: err}
	case errors.Is(err, os.ErrPermission):
		return fmt.Errorf("open state database %s: %w", path, err)
	}
	return &CorruptError{Path: path, Err: err}
}

func (s *DB) migrate(steps []Migration) error {
	return s.bolt.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(BucketMeta)
		if err != nil {
			return err
		}
		v := 0
		if raw := meta.Get(keySchema); raw != nil {
			if err := json.Unmarshal(raw, &v); err != nil {
				return &CorruptError{Path: s.path, Err: fmt.Errorf("schema version %q: %w", raw, err)}
			}
		}
		if v > SchemaVersion {
			return fmt.Errorf("state database %s has schema version %d, newer than this patchringd understands (%d): run a newer patchringd", s.path, v, SchemaVersion)
		}
		for _, m := range steps {
			if m.From < v {
				continue
			}
			if m.From != v {
				return fmt.Errorf("migrate %s: no step from schema %d", s.path, v)
			}
			if err := m.Apply(tx); err != nil {
				return fmt.Errorf("migrate %s from schema %d: %w", s.path, v, err)
			}
			v++
		}
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		raw, _ := json.Marshal(v)
		return meta.Put(keySchema, raw)
	})
}

// Path is the file the store lives in.
func (s *DB) Path() string { return s.path }

// Close closes the store.
func (s *DB) Close() error { return s.bolt.Close() }

// Schema returns the schema version stored in the file.
func (s *DB) Schema() (int, error) {
	var v int
	err := s.Get(BucketMeta, keySchema, &v)
	return v, err
}

// Get decodes the JSON value at bucket/key into v. It returns ErrNotFound
// when the key does not exist.
func (s *DB) Get(bucket, key []byte, v any) error {
	return s.bolt.View(func(tx *bolt.Tx) error {
		return GetTx(tx, bucket, key, v)
	})
}

// Put stores v as JSON at bucket/key in its own transaction.
func (s *DB) Put(bucket, key []byte, v any) error {
	return s.bolt.Update(func(tx *bolt.Tx) error {
		return PutTx(tx, bucket, key, v)
	})
}

// GetTx is Get inside a transaction.
func GetTx(tx *bolt.Tx, bucket, key []byte, v any) error {
	b := tx.Bucket(bucket)
	if b == nil {
		return fmt.Errorf("get %s/%s: no bucket: %w", bucket, key, ErrNotFound)
	}
	raw := b.Get(key)
	if raw == nil {
		return fmt.Errorf("get %s/%s: %w", bucket, key, ErrNotFound)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("get %s/%s: decode: %w", bucket, key, err)
	}
	return nil
}

// PutTx is Put inside a write transaction.
func PutTx(tx *bolt.Tx, bucket, key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("put %s/%s: encode: %w", bucket, key, err)
	}
	b := tx.Bucket(bucket)
	if b == nil {
		return fmt.Errorf("put %s/%s: no bucket", bucket, key)
	}
	return b.Put(key, raw)
}

// View runs fn in a read transaction.
func (s *DB) View(fn func(tx *bolt.Tx) error) error { return s.bolt.View(fn) }

// Update runs fn in a write transaction that is fsynced on commit.
func (s *DB) Update(fn func(tx *bolt.Tx) error) error { return s.bolt.Update(fn) }

// ForEach calls fn for every key of bucket in key order.
func (s *DB) ForEach(bucket []byte, fn func(k, v []byte) error) error {
	return s.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		if b == nil {
			return nil
		}
		return b.ForEach(fn)
	})
}

// Sequence returns the next value of bucket's sequence inside tx: a
// monotonically increasing ID for journal and history records.
func Sequence(tx *bolt.Tx, bucket []byte) (uint64, error) {
	b := tx.Bucket(bucket)
	if b == nil {
		return 0, fmt.Errorf("sequence %s: no bucket", bucket)
	}
	return b.NextSequence()
}

// IsNotFound reports whether err says a key does not exist.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
