// Package store owns the fleet console's database: the versioned schema and
// its migrations, idempotent ingest of node records, the queries behind the
// dashboard, and accounts, sessions, API tokens and the audit log. One code
// path serves both backends: SQLite (modernc.org/sqlite, pure Go, the
// embedded default) and PostgreSQL (pgx). Console processes keep no state
// of their own, so several may share one PostgreSQL database.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	_ "modernc.org/sqlite"             // registers the "sqlite" driver
)

// Dialect names a backend.
type Dialect string

// The backends.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// Store is the console's database.
type Store struct {
	db      *sql.DB
	dialect Dialect
	group   ingestGroup // SQLite's group commit

	// ingestFault, set by tests, fails an ingest transaction for the
	// entries it returns an error for.
	ingestFault func([]Entry) error
}

// SQLiteFile is the database file inside the console's data directory.
const SQLiteFile = "console.db"

// OpenSQLite opens (creating) the SQLite database in dir and migrates it.
func OpenSQLite(ctx context.Context, dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open console store: %w", err)
	}
	dsn := "file:" + filepath.Join(dir, SQLiteFile) +
		"?_pragma=busy_timeout(30000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)&_pragma=cache_size(-131072)&_pragma=wal_autocheckpoint(20000)&_pragma=temp_store(MEMORY)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open console store %s: %w", dir, err)
	}
	// One writer at a time is SQLite's rule; a single connection keeps
	// writers from failing with SQLITE_BUSY under load.
	db.SetMaxOpenConns(1)
	return open(ctx, db, SQLite)
}

// OpenPostgres connects to PostgreSQL (a pgx connection string or URL) and
// migrates the database.
func OpenPostgres(ctx context.Context, dsn string) (*Store, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("open console store: %w", err)
	}
	db.SetMaxOpenConns(8)
	return open(ctx, db, Postgres)
}

func open(ctx context.Context, db *sql.DB, d Dialect) (*Store, error) {
	s := &Store{db: db, dialect: d}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open console store (%s): %w", d, err)
	}
	if err := s.migrate(ctx, len(migrations)); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Dialect says which backend s uses.
func (s *Store) Dialect() Dialect { return s.dialect }

// q rewrites a query written with ? placeholders for the backend.
func (s *Store) q(query string) string {
	if s.dialect != Postgres {
		return query
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

// retryable reports a PostgreSQL deadlock or serialization failure, which
// two consoles ingesting the same reports at once may meet; the whole
// transaction is then run again.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

// inTx runs fn in a transaction, again on a retryable failure.
func (s *Store) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		var tx *sql.Tx
		tx, err = s.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if err = fn(tx); err == nil {
			if err = tx.Commit(); err == nil {
				return nil
			}
		} else {
			tx.Rollback()
		}
		if !retryable(err) {
			return err
		}
	}
	return err
}
