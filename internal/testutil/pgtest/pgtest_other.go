//go:build !linux

package pgtest

import "testing"

// Cluster is a running PostgreSQL server (Linux only).
type Cluster struct {
	Dir string
	PID int
}

// Start skips the test: the harness drives Debian's PostgreSQL.
func Start(t testing.TB) *Cluster {
	t.Skip("pgtest runs Debian's PostgreSQL and needs Linux")
	return nil
}

// NewDatabase is never reached.
func (c *Cluster) NewDatabase(t testing.TB) string { return "" }
