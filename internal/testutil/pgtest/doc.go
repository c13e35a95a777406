// Package pgtest starts a throwaway PostgreSQL cluster for tests: Debian's
// PostgreSQL (package postgresql), initialised with initdb in a temporary
// directory and run with pg_ctl as the unprivileged "postgres" user,
// listening only on a unix socket in that directory (no TCP port). The
// cluster is stopped and its directory removed in t.Cleanup, also when the
// test fails. It is imported by tests only.
package pgtest
