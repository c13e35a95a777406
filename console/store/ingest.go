package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/patchring/patchring/console/report"
)

// Entry is one verified record to store. Site is the site the console
// believes (from the node's credential when there is one).
type Entry struct {
	Record     report.Record
	Digest     string // report.Envelope.Digest of the delivery
	Site       string
	ReceivedAt time.Time
}

// Result is what became of one entry.
type Result int

// The results. Only Stored changed anything: a Duplicate is the same
// record delivered again (another console, a retry) and is not counted
// twice.
const (
	Stored Result = iota
	Duplicate
)

// Errors for refused entries.
var (
	// ErrStale: the node already reported a newer record (a replay).
	ErrStale = errors.New("stale record: the node has already reported a newer sequence number")
	// ErrConflict: another record with this sequence number was stored.
	ErrConflict = errors.New("conflicting record: this sequence number was stored with other content")
)

// IngestBatch stores the entries in one transaction. A refused entry
// leaves the others stored: it is refused before it writes anything, or
// (a stale record) its one row is taken back. It returns one result and one
// error per entry; the error it returns itself is a database failure, after
// which nothing of the batch was stored.
//
// The statements are prepared once per batch (SQLite parses each only once
// instead of once per record), and a record costs no savepoint. On SQLite,
// which writes one transaction at a time, batches that arrive while one is
// being written are stored together in the next transaction (see
// ingestGroup): one commit for several sites' requests.
func (s *Store) IngestBatch(ctx context.Context, entries []Entry) ([]Result, []error, error) {
	if s.dialect == SQLite {
		return s.group.ingest(ctx, s, entries)
	}
	return s.ingestTx(ctx, entries)
}

// ingestTx stores entries in one transaction (IngestBatch without grouping).
func (s *Store) ingestTx(ctx context.Context, entries []Entry) ([]Result, []error, error) {
	results := make([]Result, len(entries))
	errs := make([]error, len(entries))
	if s.ingestFault != nil {
		if err := s.ingestFault(entries); err != nil {
			return nil, nil, fmt.Errorf("ingest %d records: %w", len(entries), err)
		}
	}
	// Every console takes the rows' locks in one order (node, sequence),
	// so two consoles ingesting the same reports do not deadlock.
	order := make([]int, len(entries))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		ea, eb := entries[order[a]].Record, entries[order[b]].Record
		return ea.Node < eb.Node || ea.Node == eb.Node && ea.Seq < eb.Seq
	})
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		st := &ingestStmts{s: s, tx: tx}
		defer st.close()
		for _, i := range order {
			e := entries[i]
			res, refused, err := st.ingestOne(ctx, e)
			if err != nil {
				return fmt.Errorf("record %d of node %s: %w", e.Record.Seq, e.Record.Node, err)
			}
			results[i], errs[i] = res, refused
		}
		return st.flushPackages(ctx)
	})
	if err != nil {
		return nil, nil, fmt.Errorf("ingest %d records: %w", len(entries), err)
	}
	return results, errs, nil
}

// maxGroupEntries bounds the records of one grouped transaction (the
// writer holds SQLite's one write lock for all of it).
const maxGroupEntries = 2000

// ingestGroup is SQLite's group commit, the leader/follower scheme of
// LevelDB's writer queue. A call joins the queue; if no transaction is
// being written it leads: it takes the calls at the head of the queue
// (itself first, at most maxGroupEntries records unless one call alone has
// more), stores their entries in one transaction, wakes them with their
// results and hands the lead to the next call queued meanwhile. Nothing
// waits for company: a lone call is written at once, and calls group only
// while the single writer is busy anyway. Each commit writes its pages to
// the WAL once (the package index's pages are shared by every site), so
// four sites in one commit cost much less than four commits.
type ingestGroup struct {
	mu      sync.Mutex
	queue   []*ingestCall
	leading bool // a call is writing a transaction
}

// ingestCall is one IngestBatch call in the group's queue.
type ingestCall struct {
	entries []Entry
	results []Result
	errs    []error
	err     error
	lead    bool          // woken to lead, not with results
	wake    chan struct{} // buffered: results are in, or lead
}

func (g *ingestGroup) ingest(ctx context.Context, s *Store, entries []Entry) ([]Result, []error, error) {
	c := &ingestCall{entries: entries, wake: make(chan struct{}, 1)}
	g.mu.Lock()
	g.queue = append(g.queue, c)
	lead := !g.leading
	g.leading = true
	g.mu.Unlock()
	if !lead {
		// A follower waits even when its caller gives up: the leader may
		// hand it the lead, and its entries may already be in a
		// transaction (a retry then reads them as duplicates).
		<-c.wake
		if !c.lead {
			return c.results, c.errs, c.err
		}
	}
	g.mu.Lock()
	n, size := 0, 0
	for n < len(g.queue) && (n == 0 || size+len(g.queue[n].entries) <= maxGroupEntries) {
		size += len(g.queue[n].entries)
		n++
	}
	calls := slices.Clone(g.queue[:n])
	g.queue = slices.Delete(g.queue, 0, n)
	g.mu.Unlock()

	// One caller's cancelled request must not undo the others' records.
	storeGroup(context.WithoutCancel(ctx), s, calls)
	for _, o := range calls[1:] {
		o.wake <- struct{}{}
	}
	g.mu.Lock()
	if len(g.queue) > 0 {
		next := g.queue[0]
		next.lead = true
		next.wake <- struct{}{}
	} else {
		g.leading = false
	}
	g.mu.Unlock()
	return c.results, c.errs, c.err
}

// storeGroup stores the calls' entries in one transaction and gives each
// call its share of the results. If that transaction fails, each call is
// stored in a transaction of its own, so that a database failure caused by
// one call's records is reported to that call only.
func storeGroup(ctx context.Context, s *Store, calls []*ingestCall) {
	if len(calls) > 1 {
		var all []Entry
		for _, c := range calls {
			all = append(all, c.entries...)
		}
		results, errs, err := s.ingestTx(ctx, all)
		if err == nil {
			at := 0
			for _, c := range calls {
				n := len(c.entries)
				c.results, c.errs = results[at:at+n:at+n], errs[at:at+n:at+n]
				at += n
			}
			return
		}
	}
	for _, c := range calls {
		c.results, c.errs, c.err = s.ingestTx(ctx, c.entries)
	}
}

// The ingest's statements.
const (
	sqlInsertRecord = `INSERT INTO records (node_id, seq, digest, received_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`
	sqlRecordDigest = `SELECT digest FROM records WHERE node_id = ? AND seq = ?`
	sqlDeleteRecord = `DELETE FROM records WHERE node_id = ? AND seq = ?`
	sqlUpsertNode   = `INSERT INTO nodes (node_id, seq, site, hostname, ring, state, policy_version, pending,
	reboot_state, reboot_by, reboot_deadline, reboot_deferrals, packages_digest, bytes_peers, bytes_origin,
	metadata_expires, credential_expires, reported_at, received_at, first_seen)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (node_id) DO UPDATE SET seq = excluded.seq, site = excluded.site, hostname = excluded.hostname,
	ring = excluded.ring, state = excluded.state, policy_version = excluded.policy_version, pending = excluded.pending,
	reboot_state = excluded.reboot_state, reboot_by = excluded.reboot_by, reboot_deadline = excluded.reboot_deadline,
	reboot_deferrals = excluded.reboot_deferrals, packages_digest = excluded.packages_digest,
	bytes_peers = nodes.bytes_peers + excluded.bytes_peers, bytes_origin = nodes.bytes_origin + excluded.bytes_origin,
	metadata_expires = excluded.metadata_expires, credential_expires = excluded.credential_expires,
	reported_at = excluded.reported_at, received_at = excluded.received_at
WHERE nodes.seq < excluded.seq`
	sqlNodeSeq             = `SELECT seq FROM nodes WHERE node_id = ?`
	sqlInsertOutcome       = `INSERT INTO outcomes (node_id, seq, idx, site, ring, source, package, version, result, reason, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	sqlNodeKey             = `INSERT INTO node_keys (node_id) VALUES (?) ON CONFLICT (node_id) DO UPDATE SET node_id = excluded.node_id RETURNING nid`
	sqlDeletePackages      = `DELETE FROM node_packages WHERE nid = ?`
	sqlDeleteVulns         = `DELETE FROM node_vulns WHERE nid = ?`
	sqlInsertVuln          = `INSERT INTO node_vulns (nid, cve, package, version, source, fixed_in, severity, kev, fix) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`
	sqlUpsertUnmanagedList = `INSERT INTO unmanaged_lists (site, reported_by, reported_at, devices) VALUES (?, ?, ?, ?)
ON CONFLICT (site) DO UPDATE SET reported_by = excluded.reported_by, reported_at = excluded.reported_at, devices = excluded.devices
WHERE unmanaged_lists.reported_at < excluded.reported_at`
	sqlDeleteUnmanaged = `DELETE FROM unmanaged WHERE site = ?`
	sqlInsertUnmanaged = `INSERT INTO unmanaged (site, mac, vendor, addrs, hostname, first_seen, last_seen, seen_by, reported_by, received_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
)

// ingestStmts prepares each statement of one batch's transaction the first
// time it is needed.
type ingestStmts struct {
	s     *Store
	tx    *sql.Tx
	stmts map[string]*sql.Stmt
	multi map[multiKey]*sql.Stmt // multi-row statements by kind and row count

	// Package lists replacing a node's, written for the whole batch at
	// the end (flushPackages): the keys and rows of all of them in a few
	// statements instead of two per record (on PostgreSQL each statement
	// is a round trip).
	pkgLists map[string][]report.Package // by node ID; a later record's list wins
	pkgNodes []string                    // the nodes of pkgLists in order
}

type multiKey struct {
	kind string
	n    int
}

func (st *ingestStmts) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if p, ok := st.stmts[query]; ok {
		return p, nil
	}
	p, err := st.tx.PrepareContext(ctx, st.s.q(query))
	if err != nil {
		return nil, err
	}
	if st.stmts == nil {
		st.stmts = map[string]*sql.Stmt{}
	}
	st.stmts[query] = p
	return p, nil
}

func (st *ingestStmts) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	p, err := st.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return p.ExecContext(ctx, args...)
}

func (st *ingestStmts) queryRow(ctx context.Context, query string, args ...any) (*sql.Row, error) {
	p, err := st.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return p.QueryRowContext(ctx, args...), nil
}

// multiRow is the prepared statement head + n copies of row (joined by
// commas) + tail.
func (st *ingestStmts) multiRow(ctx context.Context, head, row, tail string, n int) (*sql.Stmt, error) {
	k := multiKey{head, n}
	if p, ok := st.multi[k]; ok {
		return p, nil
	}
	query := []byte(head)
	for j := range n {
		if j > 0 {
			query = append(query, ',')
		}
		query = append(query, row...)
	}
	query = append(query, tail...)
	p, err := st.tx.PrepareContext(ctx, st.s.q(string(query)))
	if err != nil {
		return nil, err
	}
	if st.multi == nil {
		st.multi = map[multiKey]*sql.Stmt{}
	}
	st.multi[k] = p
	return p, nil
}

// The multi-row statements of flushPackages.
const (
	sqlNodeKeysHead     = `INSERT INTO node_keys (node_id) VALUES `
	sqlNodeKeysTail     = ` ON CONFLICT (node_id) DO UPDATE SET node_id = excluded.node_id RETURNING node_id, nid`
	sqlInsertPkgsHead   = `INSERT INTO node_packages (nid, name, arch, version) VALUES `
	nodesPerStatement   = 500
	packagesPerInsert   = 500
	packageInsertParams = 4
)

// deferPackages records that the node's package list is replaced by pkgs.
func (st *ingestStmts) deferPackages(node string, pkgs []report.Package) {
	if st.pkgLists == nil {
		st.pkgLists = map[string][]report.Package{}
	}
	if _, ok := st.pkgLists[node]; !ok {
		st.pkgNodes = append(st.pkgNodes, node)
	}
	st.pkgLists[node] = pkgs
}

// flushPackages replaces the package lists deferPackages recorded: the
// nodes' keys in one statement per 500 nodes, their old rows deleted node
// by node, the new rows inserted 500 to a statement. The deletes stay one
// per node: PostgreSQL ran one DELETE ... WHERE nid IN (...) per batch as
// a scan of the growing table even when planned for its parameters (the
// 100k-node ingest took 100 s instead of 54).
func (st *ingestStmts) flushPackages(ctx context.Context) error {
	nids := make(map[string]int64, len(st.pkgNodes))
	for start := 0; start < len(st.pkgNodes); start += nodesPerStatement {
		chunk := st.pkgNodes[start:min(start+nodesPerStatement, len(st.pkgNodes))]
		p, err := st.multiRow(ctx, sqlNodeKeysHead, "(?)", sqlNodeKeysTail, len(chunk))
		if err != nil {
			return err
		}
		args := make([]any, len(chunk))
		for i, n := range chunk {
			args[i] = n
		}
		rows, err := p.QueryContext(ctx, args...)
		if err != nil {
			return fmt.Errorf("node keys: %w", err)
		}
		for rows.Next() {
			var node string
			var nid int64
			if err := rows.Scan(&node, &nid); err != nil {
				rows.Close()
				return fmt.Errorf("node keys: %w", err)
			}
			nids[node] = nid
		}
		if err := rows.Close(); err != nil {
			return fmt.Errorf("node keys: %w", err)
		}
		for _, n := range chunk {
			nid, ok := nids[n]
			if !ok {
				return fmt.Errorf("node keys: no key returned for node %s", n)
			}
			if _, err := st.exec(ctx, sqlDeletePackages, nid); err != nil {
				return fmt.Errorf("delete package lists: %w", err)
			}
		}
	}
	args := make([]any, 0, packageInsertParams*packagesPerInsert)
	flush := func() error {
		if len(args) == 0 {
			return nil
		}
		p, err := st.multiRow(ctx, sqlInsertPkgsHead, "(?, ?, ?, ?)", "", len(args)/packageInsertParams)
		if err != nil {
			return err
		}
		if _, err := p.ExecContext(ctx, args...); err != nil {
			return fmt.Errorf("insert package lists: %w", err)
		}
		args = args[:0]
		return nil
	}
	for _, n := range st.pkgNodes {
		for _, pk := range st.pkgLists[n] {
			args = append(args, nids[n], pk.Name, pk.Arch, pk.Version)
			if len(args) == packageInsertParams*packagesPerInsert {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	return flush()
}

func (st *ingestStmts) close() {
	for _, p := range st.stmts {
		p.Close()
	}
	for _, p := range st.multi {
		p.Close()
	}
}

// ingestOne stores one entry. refused is a per-entry refusal, after which
// nothing of the entry is stored; err a database failure.
func (st *ingestStmts) ingestOne(ctx context.Context, e Entry) (res Result, refused, err error) {
	r := e.Record
	ins, err := st.exec(ctx, sqlInsertRecord, r.Node, int64(r.Seq), e.Digest, ms(e.ReceivedAt))
	if err != nil {
		return 0, nil, err
	}
	if n, err := ins.RowsAffected(); err != nil {
		return 0, nil, err
	} else if n == 0 {
		row, err := st.queryRow(ctx, sqlRecordDigest, r.Node, int64(r.Seq))
		if err != nil {
			return 0, nil, err
		}
		var digest string
		if err := row.Scan(&digest); err != nil {
			return 0, nil, err
		}
		if digest == e.Digest {
			return Duplicate, nil, nil
		}
		return 0, ErrConflict, nil
	}
	// The node's row changes only for a newer sequence number; no change
	// means the node has already passed this one (a replay): the record's
	// row is taken back and nothing else is written.
	up, err := st.exec(ctx, sqlUpsertNode,
		r.Node, int64(r.Seq), e.Site, r.Hostname, r.Ring, r.State, r.PolicyVersion, r.Pending,
		r.Reboot.State, r.Reboot.By, ms(r.Reboot.Deadline), r.Reboot.Deferrals, r.PackagesDigest, r.BytesFromPeers, r.BytesFromOrigin,
		ms(r.MetadataExpires), ms(r.CredentialExpires), ms(r.Time), ms(e.ReceivedAt), ms(e.ReceivedAt))
	if err != nil {
		return 0, nil, err
	}
	if newest, err := up.RowsAffected(); err != nil {
		return 0, nil, err
	} else if newest == 0 {
		row, err := st.queryRow(ctx, sqlNodeSeq, r.Node)
		if err != nil {
			return 0, nil, err
		}
		var last int64
		if err := row.Scan(&last); err != nil {
			return 0, nil, err
		}
		if _, err := st.exec(ctx, sqlDeleteRecord, r.Node, int64(r.Seq)); err != nil {
			return 0, nil, err
		}
		return 0, fmt.Errorf("%w (record %d, newest %d)", ErrStale, r.Seq, last), nil
	}
	for i, o := range r.Outcomes {
		if _, err := st.exec(ctx, sqlInsertOutcome, r.Node, int64(r.Seq), i, e.Site, r.Ring, o.Source, o.Package, o.Version, o.Result, o.Reason, ms(o.At)); err != nil {
			return 0, nil, err
		}
	}
	var nid int64
	nodeKey := func() (int64, error) {
		if nid != 0 {
			return nid, nil
		}
		row, err := st.queryRow(ctx, sqlNodeKey, r.Node)
		if err != nil {
			return 0, err
		}
		return nid, row.Scan(&nid)
	}
	// A package list replaces the node's (at the end of the batch).
	if len(r.Packages) > 0 {
		st.deferPackages(r.Node, dedupe(r.Packages))
	}
	// A vulnerability list replaces the node's; the empty list's digest
	// without a list clears it; no digest, or another one without a list,
	// leaves it as it was (it did not change).
	if len(r.Vulns) > 0 || r.VulnsDigest == emptyVulns {
		if _, err := nodeKey(); err != nil {
			return 0, nil, err
		}
		if _, err := st.exec(ctx, sqlDeleteVulns, nid); err != nil {
			return 0, nil, err
		}
		for _, v := range dedupeVulns(r.Vulns) {
			kev := 0
			if v.KEV {
				kev = 1
			}
			if _, err := st.exec(ctx, sqlInsertVuln, nid, v.ID, v.Package, v.Version, v.Source, v.FixedIn, v.Severity, kev, v.Fix); err != nil {
				return 0, nil, err
			}
		}
	}
	// The site's reporter lists the site's unmanaged devices the same way.
	// Only a list newer than the one stored replaces it (two nodes may
	// both have been the reporter for a while, around a takeover).
	if len(r.Unmanaged) > 0 || r.UnmanagedDigest == emptyDevices {
		devs := dedupeDevices(r.Unmanaged)
		res, err := st.exec(ctx, sqlUpsertUnmanagedList, e.Site, r.Node, ms(r.Time), len(devs))
		if err != nil {
			return 0, nil, err
		}
		if n, err := res.RowsAffected(); err != nil {
			return 0, nil, err
		} else if n == 0 {
			return Stored, nil, nil
		}
		if _, err := st.exec(ctx, sqlDeleteUnmanaged, e.Site); err != nil {
			return 0, nil, err
		}
		for _, d := range devs {
			if _, err := st.exec(ctx, sqlInsertUnmanaged, e.Site, d.MAC, d.Vendor, strings.Join(d.Addrs, " "), d.Hostname,
				ms(d.FirstSeen), ms(d.LastSeen), strings.Join(d.SeenBy, " "), r.Node, ms(e.ReceivedAt)); err != nil {
				return 0, nil, err
			}
		}
	}
	return Stored, nil, nil
}

var (
	emptyVulns   = report.DigestVulns(nil)
	emptyDevices = report.DigestDevices(nil)
)

// dedupeVulns keeps the last of a (vulnerability, package) pair listed
// twice.
func dedupeVulns(vs []report.Vuln) []report.Vuln {
	type key struct{ id, pkg string }
	return keepLast(vs, func(v report.Vuln) key { return key{v.ID, v.Package} })
}

// dedupeDevices keeps the last of a MAC listed twice.
func dedupeDevices(ds []report.Device) []report.Device {
	return keepLast(ds, func(d report.Device) string { return d.MAC })
}

// dedupe keeps the last entry of a package named twice (same name and
// arch) in a list.
func dedupe(pkgs []report.Package) []report.Package {
	type key struct{ name, arch string }
	return keepLast(pkgs, func(p report.Package) key { return key{p.Name, p.Arch} })
}

// keepLast returns xs with each key once, at its first place, holding the
// last entry with that key.
func keepLast[T any, K comparable](xs []T, key func(T) K) []T {
	at := make(map[K]int, len(xs))
	out := make([]T, 0, len(xs))
	for _, x := range xs {
		k := key(x)
		if i, ok := at[k]; ok {
			out[i] = x
			continue
		}
		at[k] = len(out)
		out = append(out, x)
	}
	return out
}
