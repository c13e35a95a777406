package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// migration is one schema step. Where the backends differ, postgres holds
// PostgreSQL's text; otherwise sqlite serves both. A released migration is
// never edited: a change is a new migration.
type migration struct {
	sqlite, postgres string
}

var migrations = []migration{
	1: {sqlite: `
CREATE TABLE nodes (
	node_id TEXT PRIMARY KEY,
	seq BIGINT NOT NULL,
	site TEXT NOT NULL,
	hostname TEXT NOT NULL,
	ring TEXT NOT NULL,
	state TEXT NOT NULL,
	policy_version BIGINT NOT NULL,
	pending INTEGER NOT NULL,
	reboot_state TEXT NOT NULL,
	reboot_by TEXT NOT NULL,
	reboot_deadline BIGINT NOT NULL,
	reboot_deferrals INTEGER NOT NULL,
	packages_digest TEXT NOT NULL,
	bytes_peers BIGINT NOT NULL,
	bytes_origin BIGINT NOT NULL,
	metadata_expires BIGINT NOT NULL,
	credential_expires BIGINT NOT NULL,
	reported_at BIGINT NOT NULL,
	received_at BIGINT NOT NULL,
	first_seen BIGINT NOT NULL
);
CREATE INDEX nodes_ring_site ON nodes (ring, site);
CREATE TABLE records (
	node_id TEXT NOT NULL,
	seq BIGINT NOT NULL,
	digest TEXT NOT NULL,
	received_at BIGINT NOT NULL,
	PRIMARY KEY (node_id, seq)
) WITHOUT ROWID;
CREATE TABLE outcomes (
	node_id TEXT NOT NULL,
	seq BIGINT NOT NULL,
	idx INTEGER NOT NULL,
	site TEXT NOT NULL,
	ring TEXT NOT NULL,
	source TEXT NOT NULL,
	package TEXT NOT NULL,
	version TEXT NOT NULL,
	result TEXT NOT NULL,
	reason TEXT NOT NULL,
	at BIGINT NOT NULL,
	PRIMARY KEY (node_id, seq, idx)
) WITHOUT ROWID;
CREATE TABLE node_keys (
	nid INTEGER PRIMARY KEY AUTOINCREMENT,
	node_id TEXT NOT NULL UNIQUE
);
CREATE TABLE node_packages (
	nid BIGINT NOT NULL,
	name TEXT NOT NULL,
	arch TEXT NOT NULL,
	version TEXT NOT NULL,
	PRIMARY KEY (nid, name, arch)
) WITHOUT ROWID;
CREATE INDEX node_packages_name ON node_packages (name, version);
CREATE TABLE accounts (
	name TEXT PRIMARY KEY,
	password_hash TEXT NOT NULL,
	role TEXT NOT NULL,
	created_at BIGINT NOT NULL
);
CREATE TABLE sessions (
	id_hash TEXT PRIMARY KEY,
	account TEXT NOT NULL REFERENCES accounts (name) ON DELETE CASCADE,
	csrf TEXT NOT NULL,
	expires_at BIGINT NOT NULL
);
CREATE TABLE tokens (
	id TEXT PRIMARY KEY,
	secret_hash TEXT NOT NULL UNIQUE,
	account TEXT NOT NULL REFERENCES accounts (name) ON DELETE CASCADE,
	label TEXT NOT NULL,
	created_at BIGINT NOT NULL
);
CREATE TABLE audit (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	at BIGINT NOT NULL,
	actor TEXT NOT NULL,
	action TEXT NOT NULL,
	detail TEXT NOT NULL
);`},
	// 2: failures are read newest first across the fleet.
	2: {sqlite: `CREATE INDEX outcomes_result_at ON outcomes (result, at);`},
	// 3: a release's rollout is read by package and version; each node's
	// open vulnerabilities (by the node's small key, like its packages);
	// each site's unmanaged devices, as its reporter last listed them.
	3: {sqlite: `
CREATE INDEX outcomes_release ON outcomes (package, version, at);
CREATE TABLE node_vulns (
	nid BIGINT NOT NULL,
	cve TEXT NOT NULL,
	package TEXT NOT NULL,
	version TEXT NOT NULL,
	source TEXT NOT NULL,
	fixed_in TEXT NOT NULL,
	severity TEXT NOT NULL,
	kev INTEGER NOT NULL,
	fix TEXT NOT NULL,
	PRIMARY KEY (nid, cve, package)
) WITHOUT ROWID;
CREATE INDEX node_vulns_cve ON node_vulns (cve);
CREATE INDEX node_vulns_package ON node_vulns (package);
CREATE INDEX node_vulns_source ON node_vulns (source);
CREATE TABLE unmanaged (
	site TEXT NOT NULL,
	mac TEXT NOT NULL,
	vendor TEXT NOT NULL,
	addrs TEXT NOT NULL,
	hostname TEXT NOT NULL,
	first_seen BIGINT NOT NULL,
	last_seen BIGINT NOT NULL,
	seen_by TEXT NOT NULL,
	reported_by TEXT NOT NULL,
	received_at BIGINT NOT NULL,
	PRIMARY KEY (site, mac)
) WITHOUT ROWID;
CREATE TABLE unmanaged_lists (
	site TEXT PRIMARY KEY,
	reported_by TEXT NOT NULL,
	reported_at BIGINT NOT NULL,
	devices INTEGER NOT NULL
);`},
}

func init() {
	// node_keys gives each node a small integer key, so that a node's
	// package rows sit together and a new node's rows append at the end of
	// the table instead of landing at random places of a large b-tree.
	// PostgreSQL spells an auto-increment key differently and has no
	// WITHOUT ROWID (SQLite's clustered tables, which save a second b-tree
	// per row); the rest of migration 1 is the same text.
	m := migrations[1]
	m.postgres = replaceOnce(m.sqlite, "nid INTEGER PRIMARY KEY AUTOINCREMENT", "nid BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY")
	m.postgres = replaceOnce(m.postgres, "\tid INTEGER PRIMARY KEY AUTOINCREMENT", "\tid BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY")
	m.postgres = strings.ReplaceAll(m.postgres, ") WITHOUT ROWID;", ");")
	migrations[1] = m
	// Later migrations differ only by SQLite's WITHOUT ROWID.
	for v := 2; v < len(migrations); v++ {
		if m := migrations[v]; m.postgres == "" && strings.Contains(m.sqlite, "WITHOUT ROWID") {
			m.postgres = strings.ReplaceAll(m.sqlite, ") WITHOUT ROWID;", ");")
			migrations[v] = m
		}
	}
}

func replaceOnce(s, old, new string) string {
	for i := 0; i+len(old) <= len(s); i++ {
		if s[i:i+len(old)] == old {
			return s[:i] + new + s[i+len(old):]
		}
	}
	panic("migration text changed: " + old)
}

// Latest is the schema version this code writes and reads.
func Latest() int { return len(migrations) - 1 }

// SchemaVersion is the version the database is at.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v sql.NullInt64
	if err := s.db.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("schema version: %w", err)
	}
	return int(v.Int64), nil
}

// migrate brings the schema up to version upTo-1. Consoles starting at once
// on one PostgreSQL serialize on an advisory lock; SQLite's immediate
// transactions do the same.
func (s *Store) migrate(ctx context.Context, upTo int) error {
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("migrate console store: %w", err)
	}
	for v := 1; v < upTo; v++ {
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			if s.dialect == Postgres {
				if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(72656706)`); err != nil {
					return err
				}
			}
			var n int
			if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM schema_migrations WHERE version = ?`), v).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			text := migrations[v].sqlite
			if s.dialect == Postgres && migrations[v].postgres != "" {
				text = migrations[v].postgres
			}
			if _, err := tx.ExecContext(ctx, text); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, s.q(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`), v, ms(time.Now()))
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate console store to version %d: %w", v, err)
		}
	}
	var newer int
	if err := s.db.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM schema_migrations WHERE version > ?`), Latest()).Scan(&newer); err != nil {
		return fmt.Errorf("migrate console store: %w", err)
	}
	if newer > 0 {
		return fmt.Errorf("migrate console store: the database has a schema newer than version %d: run a newer console", Latest())
	}
	return nil
}
