package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Account is a console user. PasswordHash is an encoded argon2id hash.
type Account struct {
	Name         string    `json:"name"`
	PasswordHash string    `json:"-"`
	Role         string    `json:"role"`
	CreatedAt    time.Time `json:"created_at"`
}

// ErrExists: an account or token of that name exists.
var ErrExists = errors.New("already exists")

// PutAccount creates an account, or replaces its password and role when
// replace is set.
func (s *Store) PutAccount(ctx context.Context, a Account, replace bool) error {
	query := `INSERT INTO accounts (name, password_hash, role, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (name) DO NOTHING`
	if replace {
		query = `INSERT INTO accounts (name, password_hash, role, created_at) VALUES (?, ?, ?, ?)
ON CONFLICT (name) DO UPDATE SET password_hash = excluded.password_hash, role = excluded.role`
	}
	res, err := s.db.ExecContext(ctx, s.q(query), a.Name, a.PasswordHash, a.Role, ms(a.CreatedAt))
	if err != nil {
		return fmt.Errorf("put account %s: %w", a.Name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("put account %s: %w", a.Name, ErrExists)
	}
	return nil
}

// Account reads one account.
func (s *Store) Account(ctx context.Context, name string) (Account, error) {
	var a Account
	var at int64
	err := s.db.QueryRowContext(ctx, s.q(`SELECT name, password_hash, role, created_at FROM accounts WHERE name = ?`), name).Scan(&a.Name, &a.PasswordHash, &a.Role, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return a, fmt.Errorf("account %s: %w", name, ErrNotFound)
	} else if err != nil {
		return a, fmt.Errorf("account %s: %w", name, err)
	}
	a.CreatedAt = fromMS(at)
	return a, nil
}

// CountAccounts counts the accounts.
func (s *Store) CountAccounts(ctx context.Context) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM accounts`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count accounts: %w", err)
	}
	return n, nil
}

// Session is a logged-in browser. Only the hash of its cookie is stored.
type Session struct {
	IDHash    string
	Account   string
	CSRF      string
	ExpiresAt time.Time
}

// PutSession stores a new session.
func (s *Store) PutSession(ctx context.Context, x Session) error {
	if _, err := s.db.ExecContext(ctx, s.q(`INSERT INTO sessions (id_hash, account, csrf, expires_at) VALUES (?, ?, ?, ?)`), x.IDHash, x.Account, x.CSRF, ms(x.ExpiresAt)); err != nil {
		return fmt.Errorf("put session: %w", err)
	}
	return nil
}

// Session reads a session that has not expired at now.
func (s *Store) Session(ctx context.Context, idHash string, now time.Time) (Session, error) {
	x := Session{IDHash: idHash}
	var at int64
	err := s.db.QueryRowContext(ctx, s.q(`SELECT account, csrf, expires_at FROM sessions WHERE id_hash = ? AND expires_at > ?`), idHash, ms(now)).Scan(&x.Account, &x.CSRF, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return x, fmt.Errorf("session: %w", ErrNotFound)
	} else if err != nil {
		return x, fmt.Errorf("session: %w", err)
	}
	x.ExpiresAt = fromMS(at)
	return x, nil
}

// DeleteSession ends a session, and every expired one.
func (s *Store) DeleteSession(ctx context.Context, idHash string, now time.Time) error {
	if _, err := s.db.ExecContext(ctx, s.q(`DELETE FROM sessions WHERE id_hash = ? OR expires_at <= ?`), idHash, ms(now)); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// Token is an API token. Only the hash of its secret is stored.
type Token struct {
	ID         string    `json:"id"`
	SecretHash string    `json:"-"`
	Account    string    `json:"account"`
	Label      string    `json:"label"`
	CreatedAt  time.Time `json:"created_at"`
}

// PutToken stores a new token.
func (s *Store) PutToken(ctx context.Context, t Token) error {
	if _, err := s.db.ExecContext(ctx, s.q(`INSERT INTO tokens (id, secret_hash, account, label, created_at) VALUES (?, ?, ?, ?, ?)`), t.ID, t.SecretHash, t.Account, t.Label, ms(t.CreatedAt)); err != nil {
		return fmt.Errorf("put token %s: %w", t.ID, err)
	}
	return nil
}

// TokenBySecretHash finds the token whose secret hashes to h.
func (s *Store) TokenBySecretHash(ctx context.Context, h string) (Token, error) {
	t := Token{SecretHash: h}
	var at int64
	err := s.db.QueryRowContext(ctx, s.q(`SELECT id, account, label, created_at FROM tokens WHERE secret_hash = ?`), h).Scan(&t.ID, &t.Account, &t.Label, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return t, fmt.Errorf("token: %w", ErrNotFound)
	} else if err != nil {
		return t, fmt.Errorf("token: %w", err)
	}
	t.CreatedAt = fromMS(at)
	return t, nil
}

// Tokens lists the tokens.
func (s *Store) Tokens(ctx context.Context) ([]Token, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, account, label, created_at FROM tokens ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("tokens: %w", err)
	}
	var at int64
	return collectThen(rows, "tokens", func(t *Token) []any { return []any{&t.ID, &t.Account, &t.Label, &at} }, func(t *Token) { t.CreatedAt = fromMS(at) })
}

// DeleteToken revokes a token.
func (s *Store) DeleteToken(ctx context.Context, id string) error {
	res, err := s.db.ExecContext(ctx, s.q(`DELETE FROM tokens WHERE id = ?`), id)
	if err != nil {
		return fmt.Errorf("delete token %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("delete token %s: %w", id, ErrNotFound)
	}
	return nil
}

// AuditEntry is one operator action.
type AuditEntry struct {
	ID     int64     `json:"id"`
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`
	Action string    `json:"action"`
	Detail string    `json:"detail"`
}

// Audit appends an entry to the audit log.
func (s *Store) Audit(ctx context.Context, e AuditEntry) error {
	if _, err := s.db.ExecContext(ctx, s.q(`INSERT INTO audit (at, actor, action, detail) VALUES (?, ?, ?, ?)`), ms(e.At), e.Actor, e.Action, e.Detail); err != nil {
		return fmt.Errorf("audit %s by %s: %w", e.Action, e.Actor, err)
	}
	return nil
}

// AuditLog lists the newest entries first.
func (s *Store) AuditLog(ctx context.Context, limit int) ([]AuditEntry, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT id, at, actor, action, detail FROM audit ORDER BY id DESC LIMIT ?`), limit)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	var at int64
	return collectThen(rows, "audit log", func(e *AuditEntry) []any { return []any{&e.ID, &at, &e.Actor, &e.Action, &e.Detail} }, func(e *AuditEntry) { e.At = fromMS(at) })
}
