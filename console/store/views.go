package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// OverviewRow is the compliance of one ring at one site.
type OverviewRow struct {
	Ring          string `json:"ring"`
	Site          string `json:"site"`
	Nodes         int    `json:"nodes"`
	UpToDate      int    `json:"up_to_date"`
	Pending       int    `json:"pending"`
	Failed        int    `json:"failed"`
	RebootPending int    `json:"reboot_pending"`
}

// Overview is the fleet's compliance, rings x sites.
func (s *Store) Overview(ctx context.Context) ([]OverviewRow, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT ring, site, COUNT(*),
	SUM(CASE WHEN pending = 0 AND state <> 'failed' THEN 1 ELSE 0 END),
	SUM(CASE WHEN pending > 0 THEN 1 ELSE 0 END),
	SUM(CASE WHEN state = 'failed' THEN 1 ELSE 0 END),
	SUM(CASE WHEN reboot_state <> 'none' THEN 1 ELSE 0 END)
FROM nodes GROUP BY ring, site ORDER BY ring, site`)
	if err != nil {
		return nil, fmt.Errorf("overview: %w", err)
	}
	return collect(rows, "overview", func(r *OverviewRow) []any {
		return []any{&r.Ring, &r.Site, &r.Nodes, &r.UpToDate, &r.Pending, &r.Failed, &r.RebootPending}
	})
}

// Failure is a failed install or a rollback, with its reason.
type Failure struct {
	NodeID   string    `json:"node_id"`
	Hostname string    `json:"hostname"`
	Site     string    `json:"site"`
	Ring     string    `json:"ring"`
	Source   string    `json:"source"`
	Package  string    `json:"package"`
	Version  string    `json:"version"`
	Result   string    `json:"result"`
	Reason   string    `json:"reason"`
	At       time.Time `json:"at"`
}

// Failures lists the newest failed installs and rollbacks; nodeID limits
// them to one node when not empty.
func (s *Store) Failures(ctx context.Context, nodeID string, limit int) ([]Failure, error) {
	query := `SELECT o.node_id, COALESCE(n.hostname, ''), o.site, o.ring, o.source, o.package, o.version, o.result, o.reason, o.at
FROM outcomes o LEFT JOIN nodes n ON n.node_id = o.node_id
WHERE o.result IN ('failed', 'rolled_back')`
	args := []any{}
	if nodeID != "" {
		query += ` AND o.node_id = ?`
		args = append(args, nodeID)
	}
	query += ` ORDER BY o.at DESC, o.node_id LIMIT ?`
	args = append(args, limit)
	rows, err := s.db.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("failures: %w", err)
	}
	var at int64
	return collectThen(rows, "failures", func(f *Failure) []any {
		return []any{&f.NodeID, &f.Hostname, &f.Site, &f.Ring, &f.Source, &f.Package, &f.Version, &f.Result, &f.Reason, &at}
	}, func(f *Failure) { f.At = fromMS(at) })
}

// Node is one node's latest state.
type Node struct {
	NodeID            string    `json:"node_id"`
	Seq               int64     `json:"seq"`
	Site              string    `json:"site"`
	Hostname          string    `json:"hostname"`
	Ring              string    `json:"ring"`
	State             string    `json:"state"`
	PolicyVersion     int64     `json:"policy_version"`
	Pending           int       `json:"pending"`
	RebootState       string    `json:"reboot_state"`
	RebootBy          string    `json:"reboot_by"`
	RebootDeadline    time.Time `json:"reboot_deadline"`
	RebootDeferrals   int       `json:"reboot_deferrals"`
	PackagesDigest    string    `json:"packages_digest"`
	BytesFromPeers    int64     `json:"bytes_from_peers"`
	BytesFromOrigin   int64     `json:"bytes_from_origin"`
	MetadataExpires   time.Time `json:"metadata_expires"`
	CredentialExpires time.Time `json:"credential_expires"`
	ReportedAt        time.Time `json:"reported_at"`
	ReceivedAt        time.Time `json:"received_at"`
}

const nodeCols = `node_id, seq, site, hostname, ring, state, policy_version, pending, reboot_state, reboot_by, reboot_deadline,
	reboot_deferrals, packages_digest, bytes_peers, bytes_origin, metadata_expires, credential_expires, reported_at, received_at`

func nodeScan(n *Node, t *[6]int64) []any {
	return []any{&n.NodeID, &n.Seq, &n.Site, &n.Hostname, &n.Ring, &n.State, &n.PolicyVersion, &n.Pending, &n.RebootState, &n.RebootBy, &t[0],
		&n.RebootDeferrals, &n.PackagesDigest, &n.BytesFromPeers, &n.BytesFromOrigin, &t[1], &t[2], &t[3], &t[4]}
}

func nodeTimes(n *Node, t *[6]int64) {
	n.RebootDeadline, n.MetadataExpires, n.CredentialExpires, n.ReportedAt, n.ReceivedAt = fromMS(t[0]), fromMS(t[1]), fromMS(t[2]), fromMS(t[3]), fromMS(t[4])
}

// ErrNotFound: no such node (or account, session, token).
var ErrNotFound = errors.New("not found")

// Node returns one node's latest state.
func (s *Store) Node(ctx context.Context, id string) (Node, error) {
	var n Node
	var t [6]int64
	err := s.db.QueryRowContext(ctx, s.q(`SELECT `+nodeCols+` FROM nodes WHERE node_id = ?`), id).Scan(nodeScan(&n, &t)...)
	if errors.Is(err, sql.ErrNoRows) {
		return n, fmt.Errorf("node %s: %w", id, ErrNotFound)
	} else if err != nil {
		return n, fmt.Errorf("node %s: %w", id, err)
	}
	nodeTimes(&n, &t)
	return n, nil
}

// Reboots lists nodes whose reboot is pending, deferred or refused.
func (s *Store) Reboots(ctx context.Context, limit int) ([]Node, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT `+nodeCols+` FROM nodes WHERE reboot_state <> 'none' ORDER BY reboot_state, site, hostname LIMIT ?`), limit)
	if err != nil {
		return nil, fmt.Errorf("reboots: %w", err)
	}
	var t [6]int64
	return collectThen(rows, "reboots", func(n *Node) []any { return nodeScan(n, &t) }, func(n *Node) { nodeTimes(n, &t) })
}

// Expiries lists nodes by their nearest expiry (signed metadata or
// credential), soonest first; nodes reporting neither are left out.
func (s *Store) Expiries(ctx context.Context, limit int) ([]Node, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT `+nodeCols+` FROM nodes WHERE metadata_expires > 0 OR credential_expires > 0
ORDER BY CASE WHEN metadata_expires = 0 THEN credential_expires WHEN credential_expires = 0 THEN metadata_expires
	WHEN metadata_expires < credential_expires THEN metadata_expires ELSE credential_expires END, node_id LIMIT ?`), limit)
	if err != nil {
		return nil, fmt.Errorf("expiries: %w", err)
	}
	var t [6]int64
	return collectThen(rows, "expiries", func(n *Node) []any { return nodeScan(n, &t) }, func(n *Node) { nodeTimes(n, &t) })
}

// Package is one installed package of a node.
type Package struct {
	Name    string `json:"name"`
	Arch    string `json:"arch"`
	Version string `json:"version"`
}

// Packages lists a node's installed packages.
func (s *Store) Packages(ctx context.Context, id string) ([]Package, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT p.name, p.arch, p.version FROM node_packages p JOIN node_keys k ON k.nid = p.nid WHERE k.node_id = ? ORDER BY p.name, p.arch`), id)
	if err != nil {
		return nil, fmt.Errorf("packages of %s: %w", id, err)
	}
	return collect(rows, "packages", func(p *Package) []any { return []any{&p.Name, &p.Arch, &p.Version} })
}

// Site is one site's summary.
type Site struct {
	Site            string    `json:"site"`
	Members         int       `json:"members"`
	LastReport      time.Time `json:"last_report"`
	BytesFromPeers  int64     `json:"bytes_from_peers"`
	BytesFromOrigin int64     `json:"bytes_from_origin"`
}

// Sites lists the sites: members, the last report received, bytes saved.
func (s *Store) Sites(ctx context.Context) ([]Site, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT site, COUNT(*), MAX(received_at), SUM(bytes_peers), SUM(bytes_origin) FROM nodes GROUP BY site ORDER BY site`)
	if err != nil {
		return nil, fmt.Errorf("sites: %w", err)
	}
	var last int64
	return collectThen(rows, "sites", func(x *Site) []any {
		return []any{&x.Site, &x.Members, &last, &x.BytesFromPeers, &x.BytesFromOrigin}
	}, func(x *Site) { x.LastReport = fromMS(last) })
}

// Counts are the totals of stored data, for tests and health checks.
type Counts struct {
	Nodes, Records, Outcomes, Packages int
}

// Count counts what is stored.
func (s *Store) Count(ctx context.Context) (Counts, error) {
	var c Counts
	err := s.db.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM nodes), (SELECT COUNT(*) FROM records), (SELECT COUNT(*) FROM outcomes), (SELECT COUNT(*) FROM node_packages)`).
		Scan(&c.Nodes, &c.Records, &c.Outcomes, &c.Packages)
	if err != nil {
		return c, fmt.Errorf("count: %w", err)
	}
	return c, nil
}

// ForgetNode deletes a node and everything it reported (a decommissioned
// machine). Its next record, if one comes, starts it afresh.
func (s *Store) ForgetNode(ctx context.Context, id string) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`DELETE FROM nodes WHERE node_id = ?`), id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM outcomes WHERE node_id = ?`), id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM node_packages WHERE nid IN (SELECT nid FROM node_keys WHERE node_id = ?)`), id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM node_vulns WHERE nid IN (SELECT nid FROM node_keys WHERE node_id = ?)`), id); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("forget node %s: %w", id, err)
	}
	return nil
}

func collect[T any](rows *sql.Rows, what string, scan func(*T) []any) ([]T, error) {
	return collectThen(rows, what, scan, func(*T) {})
}

func collectThen[T any](rows *sql.Rows, what string, scan func(*T) []any, after func(*T)) ([]T, error) {
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		var v T
		if err := rows.Scan(scan(&v)...); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		after(&v)
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}
