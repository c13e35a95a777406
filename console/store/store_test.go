package store

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/patchring/patchring/console/report"
	"github.com/patchring/patchring/internal/testutil/pgtest"
)

// backend opens a fresh, empty store; reopen opens another store (another
// console process) on the same database.
type backend struct {
	name   string
	fresh  func(t *testing.T) (s *Store, reopen func(t *testing.T) *Store)
	openAt func(t *testing.T, version int) *Store // a database migrated only up to version
}

func backends(t *testing.T) []backend {
	sqliteOpen := func(t *testing.T, dir string) *Store {
		s, err := OpenSQLite(t.Context(), dir)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	pg := pgtest.Start(t)
	pgOpen := func(t *testing.T, dsn string) *Store {
		s, err := OpenPostgres(t.Context(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	return []backend{
		{
			name: "sqlite",
			fresh: func(t *testing.T) (*Store, func(*testing.T) *Store) {
				dir := t.TempDir()
				return sqliteOpen(t, dir), func(t *testing.T) *Store { return sqliteOpen(t, dir) }
			},
			openAt: func(t *testing.T, v int) *Store {
				dir := t.TempDir()
				s, err := OpenSQLite(t.Context(), dir)
				if err != nil {
					t.Fatal(err)
				}
				s.Close()
				return rewind(t, sqliteOpen(t, dir), v)
			},
		},
		{
			name: "postgres",
			fresh: func(t *testing.T) (*Store, func(*testing.T) *Store) {
				dsn := pg.NewDatabase(t)
				return pgOpen(t, dsn), func(t *testing.T) *Store { return pgOpen(t, dsn) }
			},
			openAt: func(t *testing.T, v int) *Store {
				return rewind(t, pgOpen(t, pg.NewDatabase(t)), v)
			},
		},
	}
}

// rewind drops everything and migrates the database only up to version v,
// as an older console would have left it.
func rewind(t *testing.T, s *Store, v int) *Store {
	t.Helper()
	for _, tbl := range []string{"schema_migrations", "nodes", "records", "outcomes", "node_packages", "node_keys", "node_vulns", "unmanaged", "unmanaged_lists", "sessions", "tokens", "accounts", "audit"} {
		if _, err := s.db.ExecContext(t.Context(), "DROP TABLE IF EXISTS "+tbl); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.migrate(t.Context(), v+1); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestStore runs one suite on SQLite and on a real PostgreSQL.
func TestStore(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			t.Run("Migrations", func(t *testing.T) { testMigrations(t, b) })
			t.Run("Ingest", func(t *testing.T) { testIngest(t, b) })
			t.Run("TwoConsoles", func(t *testing.T) { testTwoConsoles(t, b) })
			t.Run("Views", func(t *testing.T) { testViews(t, b) })
			t.Run("Access", func(t *testing.T) { testAccess(t, b) })
			t.Run("Rollout", func(t *testing.T) { testRollout(t, b) })
			t.Run("Vulns", func(t *testing.T) { testVulns(t, b) })
			t.Run("Unmanaged", func(t *testing.T) { testUnmanaged(t, b) })
		})
	}
}

type node struct {
	key ed25519.PrivateKey
	id  string
}

func newNode(i int) node {
	seed := make([]byte, ed25519.SeedSize)
	seed[0], seed[1] = byte(i), byte(i>>8)
	k := ed25519.NewKeyFromSeed(seed)
	return node{key: k, id: report.NodeID(k.Public().(ed25519.PublicKey))}
}

var t0 = time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)

func (n node) record(seq uint64, mut func(*report.Record)) report.Record {
	pkgs := []report.Package{{Name: "openssl", Version: "3.0.11", Arch: "amd64"}, {Name: "bash", Version: "5.2", Arch: "amd64"}}
	r := report.Record{
		V: report.Version, Node: n.id, Seq: seq, Time: t0.Add(time.Duration(seq) * time.Minute), Site: "berlin",
		Hostname: "h-" + n.id[len(n.id)-6:], Ring: "pilot", State: "idle", PolicyVersion: 3,
		Reboot: report.Reboot{State: report.RebootNone}, Packages: pkgs, PackagesDigest: report.DigestPackages(pkgs),
		BytesFromPeers: 100, BytesFromOrigin: 10,
	}
	if mut != nil {
		mut(&r)
	}
	return r
}

func entry(t testing.TB, n node, r report.Record) Entry {
	t.Helper()
	env, err := report.Sign(r, n.key)
	if err != nil {
		t.Fatal(err)
	}
	return Entry{Record: r, Digest: env.Digest(), Site: r.Site, ReceivedAt: r.Time.Add(time.Second)}
}

func ingest(t *testing.T, s *Store, es ...Entry) ([]Result, []error) {
	t.Helper()
	res, errs, err := s.IngestBatch(t.Context(), es)
	if err != nil {
		t.Fatal(err)
	}
	return res, errs
}

func counts(t *testing.T, s *Store) Counts {
	t.Helper()
	c, err := s.Count(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func testMigrations(t *testing.T, b backend) {
	s, _ := b.fresh(t)
	if v, err := s.SchemaVersion(t.Context()); err != nil || v != Latest() {
		t.Fatalf("fresh store at version %d (%v), want %d", v, err, Latest())
	}
	// A database left at version 1 with data in it is brought up to date
	// and keeps its data.
	old := b.openAt(t, 1)
	if v, _ := old.SchemaVersion(t.Context()); v != 1 {
		t.Fatalf("rewound store at version %d", v)
	}
	n := newNode(1)
	ingest(t, old, entry(t, n, n.record(1, nil)))
	if err := old.migrate(t.Context(), len(migrations)); err != nil {
		t.Fatal(err)
	}
	if v, _ := old.SchemaVersion(t.Context()); v != Latest() {
		t.Fatalf("migrated store at version %d, want %d", v, Latest())
	}
	if c := counts(t, old); c.Nodes != 1 || c.Packages != 2 {
		t.Fatalf("migration lost data: %+v", c)
	}
	// Migrating again changes nothing.
	if err := old.migrate(t.Context(), len(migrations)); err != nil {
		t.Fatal(err)
	}
	// A schema newer than this code is refused.
	if _, err := old.db.ExecContext(t.Context(), old.q(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, 0)`), Latest()+1); err != nil {
		t.Fatal(err)
	}
	if err := old.migrate(t.Context(), len(migrations)); err == nil {
		t.Fatal("a newer schema was accepted")
	}
}

func testIngest(t *testing.T, b backend) {
	s, _ := b.fresh(t)
	n := newNode(2)
	failed := func(r *report.Record) {
		r.Outcomes = []report.Outcome{{Source: "apt", Package: "openssl", Version: "3.0.12", Result: report.ResultFailed, Reason: "dpkg exit 1", At: r.Time}}
	}
	e1 := entry(t, n, n.record(1, failed))
	res, errs := ingest(t, s, e1)
	if res[0] != Stored || errs[0] != nil {
		t.Fatalf("first record: %v %v", res[0], errs[0])
	}
	// The same record again (a retry, another console): not counted twice.
	res, errs = ingest(t, s, e1)
	if res[0] != Duplicate || errs[0] != nil {
		t.Fatalf("same record again: %v %v", res[0], errs[0])
	}
	// Seq 3 without a package list keeps the list of seq 1.
	e3 := entry(t, n, n.record(3, func(r *report.Record) { r.Packages = nil; r.State = "failed" }))
	// Seq 2 after seq 3 is a replay of an old record: refused, while the
	// other entries of the batch are stored.
	e2 := entry(t, n, n.record(2, nil))
	other := newNode(3)
	if res, errs = ingest(t, s, e3); res[0] != Stored || errs[0] != nil {
		t.Fatalf("seq 3: %v %v", res, errs)
	}
	res, errs = ingest(t, s, e2, entry(t, other, other.record(1, nil)))
	if !errors.Is(errs[0], ErrStale) || res[1] != Stored || errs[1] != nil {
		t.Fatalf("batch: %v %v", res, errs)
	}
	// Nothing of the stale record was kept: sent again, it is stale
	// again, not a duplicate.
	if res, errs = ingest(t, s, e2); !errors.Is(errs[0], ErrStale) {
		t.Fatalf("stale record again: %v %v", res, errs)
	}
	// Same seq, other content: refused.
	conflicting := entry(t, n, n.record(3, func(r *report.Record) { r.State = "idle" }))
	if _, errs = ingest(t, s, conflicting); !errors.Is(errs[0], ErrConflict) {
		t.Fatalf("conflicting record: %v", errs[0])
	}
	c := counts(t, s)
	if c.Nodes != 2 || c.Records != 3 || c.Outcomes != 1 || c.Packages != 4 {
		t.Fatalf("counts %+v", c)
	}
	got, err := s.Node(t.Context(), n.id)
	if err != nil {
		t.Fatal(err)
	}
	if got.Seq != 3 || got.State != "failed" || got.BytesFromPeers != 200 || !got.ReportedAt.Equal(e3.Record.Time) {
		t.Fatalf("node %+v", got)
	}
	// A new package list replaces the old one.
	e4 := entry(t, n, n.record(4, func(r *report.Record) {
		r.Packages = []report.Package{{Name: "openssl", Version: "3.0.12", Arch: "amd64"}}
		r.PackagesDigest = report.DigestPackages(r.Packages)
	}))
	ingest(t, s, e4)
	pk, err := s.Packages(t.Context(), n.id)
	if err != nil || len(pk) != 1 || pk[0].Version != "3.0.12" {
		t.Fatalf("packages %+v %v", pk, err)
	}
	// One batch with two newer records of the node, each with its own
	// list (the later one's stays), and a replayed old one with a third
	// (stale: its list is not written).
	withList := func(seq uint64, version string) Entry {
		return entry(t, n, n.record(seq, func(r *report.Record) {
			r.Packages = []report.Package{{Name: "openssl", Version: version, Arch: "amd64"}, {Name: "curl", Version: version, Arch: "amd64"}}
			r.PackagesDigest = report.DigestPackages(r.Packages)
		}))
	}
	res, errs = ingest(t, s, withList(7, "b"), withList(2, "c"), withList(6, "a"))
	if res[0] != Stored || errs[0] != nil || !errors.Is(errs[1], ErrStale) || res[2] != Stored || errs[2] != nil {
		t.Fatalf("batch of lists: %v %v", res, errs)
	}
	pk, err = s.Packages(t.Context(), n.id)
	if err != nil || len(pk) != 2 || pk[0].Version != "b" || pk[1].Version != "b" {
		t.Fatalf("packages after the batch of lists: %+v %v", pk, err)
	}
	if _, err := s.Node(t.Context(), "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing node: %v", err)
	}
	if err := s.ForgetNode(t.Context(), other.id); err != nil {
		t.Fatal(err)
	}
	if c := counts(t, s); c.Nodes != 1 || c.Packages != 2 {
		t.Fatalf("after forget: %+v", c)
	}
}

// testTwoConsoles: two console processes on one database ingest the same
// reports at the same time (a reporter retrying against another console
// behind the load balancer); each record is counted once.
func testTwoConsoles(t *testing.T, b backend) {
	s1, reopen := b.fresh(t)
	s2 := reopen(t)
	const nodes, seqs = 40, 3
	var all [][]Entry // per seq, one batch of every node
	for q := 1; q <= seqs; q++ {
		var batch []Entry
		for i := range nodes {
			n := newNode(100 + i)
			batch = append(batch, entry(t, n, n.record(uint64(q), func(r *report.Record) {
				r.Outcomes = []report.Outcome{{Source: "apt", Package: "p", Version: fmt.Sprint(q), Result: report.ResultSucceeded, At: r.Time}}
			})))
		}
		all = append(all, batch)
	}
	var wg sync.WaitGroup
	stored := make([]int, 2)
	for c, s := range []*Store{s1, s2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, batch := range all {
				// The second console sees the batch in reverse order.
				b := append([]Entry(nil), batch...)
				if c == 1 {
					for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
						b[i], b[j] = b[j], b[i]
					}
				}
				res, errs, err := s.IngestBatch(context.Background(), b)
				if err != nil {
					t.Error(err)
					return
				}
				for i := range res {
					if errs[i] != nil {
						t.Errorf("console %d: %v", c, errs[i])
					} else if res[i] == Stored {
						stored[c]++
					}
				}
			}
		}()
	}
	wg.Wait()
	if stored[0]+stored[1] != nodes*seqs {
		t.Fatalf("stored %d + %d records, want %d in all", stored[0], stored[1], nodes*seqs)
	}
	c := counts(t, s1)
	if c.Nodes != nodes || c.Records != nodes*seqs || c.Outcomes != nodes*seqs {
		t.Fatalf("counts %+v", c)
	}
}

func testViews(t *testing.T, b backend) {
	s, _ := b.fresh(t)
	var es []Entry
	for i := range 6 {
		n := newNode(200 + i)
		es = append(es, entry(t, n, n.record(1, func(r *report.Record) {
			if i >= 3 {
				r.Site, r.Ring = "paris", "broad"
			}
			switch i {
			case 0:
				r.State = "failed"
				r.Outcomes = []report.Outcome{{Source: "apt", Package: "openssl", Version: "3.0.12", Result: report.ResultRolledBack, Reason: "postinst failed", At: r.Time}}
			case 1:
				r.Pending = 2
				r.Reboot = report.Reboot{State: report.RebootRefused, By: "bob"}
			case 4:
				r.MetadataExpires = t0.Add(48 * time.Hour)
				r.CredentialExpires = t0.Add(24 * time.Hour)
			}
		})))
	}
	ingest(t, s, es...)
	ov, err := s.Overview(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := []OverviewRow{{Ring: "broad", Site: "paris", Nodes: 3, UpToDate: 3}, {Ring: "pilot", Site: "berlin", Nodes: 3, UpToDate: 1, Pending: 1, Failed: 1, RebootPending: 1}}
	if fmt.Sprint(ov) != fmt.Sprint(want) {
		t.Fatalf("overview %+v, want %+v", ov, want)
	}
	f, err := s.Failures(t.Context(), "", 10)
	if err != nil || len(f) != 1 || f[0].Reason != "postinst failed" || f[0].Result != "rolled_back" || f[0].Hostname == "" {
		t.Fatalf("failures %+v %v", f, err)
	}
	rb, err := s.Reboots(t.Context(), 10)
	if err != nil || len(rb) != 1 || rb[0].RebootBy != "bob" {
		t.Fatalf("reboots %+v %v", rb, err)
	}
	ex, err := s.Expiries(t.Context(), 10)
	if err != nil || len(ex) != 1 || !ex[0].CredentialExpires.Equal(t0.Add(24*time.Hour)) {
		t.Fatalf("expiries %+v %v", ex, err)
	}
	sites, err := s.Sites(t.Context())
	if err != nil || len(sites) != 2 || sites[0].Site != "berlin" || sites[0].Members != 3 || sites[0].BytesFromPeers != 300 {
		t.Fatalf("sites %+v %v", sites, err)
	}
}

func testAccess(t *testing.T, b backend) {
	s, _ := b.fresh(t)
	ctx := t.Context()
	a := Account{Name: "alice", PasswordHash: "h1", Role: "operator", CreatedAt: t0}
	if err := s.PutAccount(ctx, a, false); err != nil {
		t.Fatal(err)
	}
	if err := s.PutAccount(ctx, a, false); !errors.Is(err, ErrExists) {
		t.Fatalf("second create: %v", err)
	}
	a.PasswordHash = "h2"
	if err := s.PutAccount(ctx, a, true); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Account(ctx, "alice"); err != nil || got.PasswordHash != "h2" {
		t.Fatalf("account %+v %v", got, err)
	}
	if err := s.PutSession(ctx, Session{IDHash: "s1", Account: "alice", CSRF: "c", ExpiresAt: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if x, err := s.Session(ctx, "s1", t0); err != nil || x.CSRF != "c" {
		t.Fatalf("session %+v %v", x, err)
	}
	if _, err := s.Session(ctx, "s1", t0.Add(2*time.Hour)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("expired session: %v", err)
	}
	if err := s.PutToken(ctx, Token{ID: "t1", SecretHash: "sh", Account: "alice", Label: "ci", CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	if tk, err := s.TokenBySecretHash(ctx, "sh"); err != nil || tk.ID != "t1" {
		t.Fatalf("token %+v %v", tk, err)
	}
	if err := s.DeleteToken(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TokenBySecretHash(ctx, "sh"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoked token: %v", err)
	}
	for i := range 3 {
		if err := s.Audit(ctx, AuditEntry{At: t0, Actor: "alice", Action: fmt.Sprint("act", i), Detail: "d"}); err != nil {
			t.Fatal(err)
		}
	}
	log, err := s.AuditLog(ctx, 2)
	if err != nil || len(log) != 2 || log[0].Action != "act2" {
		t.Fatalf("audit %+v %v", log, err)
	}
}

// testRollout: a release reaches the pilot at one site in the first hour
// (one node fails, then succeeds on retry) and broad at another in the
// third; the time series counts each node once, in its latest state.
func testRollout(t *testing.T, b backend) {
	s, _ := b.fresh(t)
	at := func(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }
	outcome := func(res string, min int) func(*report.Record) {
		return func(r *report.Record) {
			r.Outcomes = []report.Outcome{{Source: "apt", Package: "openssl", Version: "3.0.13", Result: res, Reason: "x", At: at(min)}}
		}
	}
	broad := func(f func(*report.Record)) func(*report.Record) {
		return func(r *report.Record) { f(r); r.Site, r.Ring = "paris", "broad" }
	}
	p1, p2, b1, b2, idle := newNode(300), newNode(301), newNode(302), newNode(303), newNode(304)
	ingest(t, s,
		entry(t, p1, p1.record(1, outcome(report.ResultSucceeded, 10))),
		entry(t, p2, p2.record(1, outcome(report.ResultFailed, 20))),
		entry(t, p2, p2.record(2, outcome(report.ResultSucceeded, 80))),
		entry(t, b1, b1.record(1, broad(outcome(report.ResultSucceeded, 130)))),
		entry(t, b2, b2.record(1, broad(outcome(report.ResultRolledBack, 150)))),
		entry(t, idle, idle.record(1, broad(func(*report.Record) {}))),
	)
	// Another release the list also shows.
	other := newNode(305)
	ingest(t, s, entry(t, other, other.record(1, func(r *report.Record) {
		r.Outcomes = []report.Outcome{{Source: "apt", Package: "bash", Version: "5.2.1", Result: report.ResultSucceeded, At: at(5)}}
	})))
	rels, err := s.Releases(t.Context(), 10)
	if err != nil || len(rels) != 2 {
		t.Fatalf("releases %+v %v", rels, err)
	}
	r := rels[0]
	if r.ID != "apt/openssl/3.0.13" || r.Nodes != 4 || r.Succeeded != 3 || r.Failed != 2 || r.Sites != 2 || !r.First.Equal(at(10)) || !r.Last.Equal(at(150)) {
		t.Fatalf("release %+v", r)
	}
	src, pkg, ver, err := ParseReleaseID(r.ID)
	if err != nil || src != "apt" || pkg != "openssl" || ver != "3.0.13" {
		t.Fatalf("ParseReleaseID(%s) = %s %s %s %v", r.ID, src, pkg, ver, err)
	}
	ro, err := s.Rollout(t.Context(), "apt", "openssl", "3.0.13", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if ro.Bucket != "1h0m0s" || len(ro.Times) != 3 || !ro.Times[0].Equal(t0.Add(time.Hour)) {
		t.Fatalf("rollout steps %s %v", ro.Bucket, ro.Times)
	}
	got := fmt.Sprint(ro.Series)
	want := "[{broad paris 3 [{0 0 0} {0 0 0} {2 1 1}]} {pilot berlin 3 [{2 1 1} {2 2 0} {2 2 0}]}]"
	if got != want {
		t.Fatalf("rollout series\n got %s\nwant %s", got, want)
	}
	if ro.Release.Nodes != 4 || ro.Release.Sites != 2 {
		t.Fatalf("rollout release %+v", ro.Release)
	}
	// The automatic step gives at most 60 steps: 5 minutes over 140.
	if auto, err := s.Rollout(t.Context(), "apt", "openssl", "3.0.13", 0); err != nil || auto.Bucket != "5m0s" || len(auto.Times) != 29 {
		t.Fatalf("automatic step: %s %d %v", auto.Bucket, len(auto.Times), err)
	}
	if _, err := s.Rollout(t.Context(), "apt", "openssl", "9", 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown release: %v", err)
	}
	if _, err := s.Rollout(t.Context(), "apt", "openssl", "3.0.13", time.Second); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("a one-second step: %v", err)
	}
	if _, _, _, err := ParseReleaseID("apt/openssl"); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("two-part ID: %v", err)
	}
}

// testVulns: vulnerability lists replace a node's, are kept when only the
// digest comes, clear with the empty list's digest, and answer "which
// nodes are exposed to CVE-Y / run a vulnerable X, at which sites".
func testVulns(t *testing.T, b backend) {
	s, _ := b.fresh(t)
	crit := report.Vuln{ID: "CVE-2026-0001", Package: "libssl3", Version: "3.0.11", Source: "openssl", FixedIn: "3.0.13", Severity: report.SeverityCritical, Fix: "available"}
	med := report.Vuln{ID: "CVE-2026-0002", Package: "bash", Version: "5.2", Severity: report.SeverityMedium, Fix: "none"}
	kev := report.Vuln{ID: "CVE-2026-0003", Package: "bash", Version: "5.2", Severity: report.SeverityLow, KEV: true, Fix: "none"}
	with := func(site string, vs ...report.Vuln) func(*report.Record) {
		return func(r *report.Record) {
			r.Site, r.Vulns, r.VulnsDigest = site, vs, report.DigestVulns(vs)
			if len(vs) == 0 {
				r.Vulns = nil
			}
		}
	}
	a, c, d := newNode(400), newNode(401), newNode(402)
	ingest(t, s,
		entry(t, a, a.record(1, with("berlin", crit, med))),
		entry(t, c, c.record(1, with("paris", crit, kev))),
		entry(t, d, d.record(1, with("paris", med))),
	)
	ex, err := s.VulnExposures(t.Context(), VulnFilter{}, 100)
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(ex)
	want := "[{CVE-2026-0001 libssl3 critical false 3.0.13 2 0 [{berlin 1} {paris 1}]} {CVE-2026-0003 bash low true  1 1 [{paris 1}]} {CVE-2026-0002 bash medium false  2 2 [{berlin 1} {paris 1}]}]"
	if got != want {
		t.Fatalf("exposure\n got %s\nwant %s", got, want)
	}
	// "Which nodes run a vulnerable openssl": by the source package.
	ns, err := s.VulnNodes(t.Context(), VulnFilter{Package: "openssl"}, 100)
	if err != nil || len(ns) != 2 || ns[0].Site != "berlin" || ns[0].NodeID != a.id || ns[1].NodeID != c.id || ns[0].FixedIn != "3.0.13" || ns[0].Hostname == "" {
		t.Fatalf("nodes with a vulnerable openssl: %+v %v", ns, err)
	}
	if ns, err := s.VulnNodes(t.Context(), VulnFilter{CVE: "CVE-2026-0002", Site: "paris"}, 100); err != nil || len(ns) != 1 || ns[0].NodeID != d.id {
		t.Fatalf("nodes exposed to CVE-2026-0002 at paris: %+v %v", ns, err)
	}
	if ex, err := s.VulnExposures(t.Context(), VulnFilter{KEV: true}, 100); err != nil || len(ex) != 1 || ex[0].ID != "CVE-2026-0003" {
		t.Fatalf("KEV exposure: %+v %v", ex, err)
	}
	// A record with the digest only keeps the list; a new list replaces
	// it; the empty list's digest clears it; no digest keeps it.
	ingest(t, s, entry(t, a, a.record(2, func(r *report.Record) { with("berlin", crit, med)(r); r.Vulns = nil })))
	if ns, _ := s.VulnNodes(t.Context(), VulnFilter{Site: "berlin"}, 100); len(ns) != 2 {
		t.Fatalf("digest only: %+v", ns)
	}
	ingest(t, s, entry(t, a, a.record(3, with("berlin", med))))
	if ns, _ := s.VulnNodes(t.Context(), VulnFilter{Site: "berlin"}, 100); len(ns) != 1 || ns[0].ID != med.ID {
		t.Fatalf("replaced: %+v", ns)
	}
	ingest(t, s, entry(t, a, a.record(4, with("berlin"))))
	if ns, _ := s.VulnNodes(t.Context(), VulnFilter{Site: "berlin"}, 100); len(ns) != 0 {
		t.Fatalf("cleared: %+v", ns)
	}
	ingest(t, s, entry(t, c, c.record(2, func(r *report.Record) { r.Site = "paris" })))
	if ns, _ := s.VulnNodes(t.Context(), VulnFilter{Site: "paris"}, 100); len(ns) != 3 {
		t.Fatalf("a record without a digest changed the list: %+v", ns)
	}
	if err := s.ForgetNode(t.Context(), c.id); err != nil {
		t.Fatal(err)
	}
	if ns, _ := s.VulnNodes(t.Context(), VulnFilter{}, 100); len(ns) != 1 || ns[0].NodeID != d.id {
		t.Fatalf("after forgetting a node: %+v", ns)
	}
}

// testUnmanaged: the site's reporter lists its unmanaged devices; a newer
// list replaces the site's, an older one (a former reporter's, delivered
// late) does not, the empty list's digest clears it.
func testUnmanaged(t *testing.T, b backend) {
	s, _ := b.fresh(t)
	rep, other, paris := newNode(500), newNode(501), newNode(502)
	dev := func(mac, host string, by ...node) report.Device {
		d := report.Device{MAC: mac, Vendor: "Brother Industries", Addrs: []string{"10.0.0.9", "fe80::1"}, Hostname: host,
			FirstSeen: t0.Add(-48 * time.Hour), LastSeen: t0}
		for _, n := range by {
			d.SeenBy = append(d.SeenBy, n.id)
		}
		return d
	}
	list := func(ds ...report.Device) func(*report.Record) {
		return func(r *report.Record) {
			r.Unmanaged, r.UnmanagedDigest = ds, report.DigestDevices(ds)
			if len(ds) == 0 {
				r.Unmanaged = nil
			}
		}
	}
	ingest(t, s,
		entry(t, rep, rep.record(5, list(dev("00:1b:a9:00:00:01", "printer", rep, other), dev("00:1b:a9:00:00:02", "", other)))),
		entry(t, other, other.record(1, nil)),
		entry(t, paris, paris.record(1, func(r *report.Record) {
			r.Site = "paris"
			list(dev("00:1b:a9:00:00:03", "cam"))(r)
		})),
	)
	ds, err := s.Unmanaged(t.Context(), "berlin", 100)
	if err != nil || len(ds) != 2 {
		t.Fatalf("berlin's devices: %+v %v", ds, err)
	}
	d := ds[0]
	if d.MAC != "00:1b:a9:00:00:01" || d.Hostname != "printer" || fmt.Sprint(d.Addrs) != "[10.0.0.9 fe80::1]" || !d.FirstSeen.Equal(t0.Add(-48*time.Hour)) ||
		d.ReportedBy != rep.id || d.ReportedByHost != "h-"+rep.id[len(rep.id)-6:] || len(d.SeenByHosts) != 2 || d.SeenByHosts[1] != "h-"+other.id[len(other.id)-6:] {
		t.Fatalf("device %+v", d)
	}
	if all, err := s.Unmanaged(t.Context(), "", 100); err != nil || len(all) != 3 || all[2].Site != "paris" {
		t.Fatalf("every site's devices: %+v %v", all, err)
	}
	// A former reporter's older list, delivered late, changes nothing.
	ingest(t, s, entry(t, other, other.record(2, func(r *report.Record) {
		r.Time = t0.Add(time.Minute) // older than rep's record 5
		list(dev("00:1b:a9:00:00:09", "old"))(r)
	})))
	if ds, _ := s.Unmanaged(t.Context(), "berlin", 100); len(ds) != 2 {
		t.Fatalf("an older list replaced the newer: %+v", ds)
	}
	// A newer list replaces it; the digest alone keeps it; the empty
	// list clears it.
	ingest(t, s, entry(t, rep, rep.record(6, list(dev("00:1b:a9:00:00:02", "", rep)))))
	if ds, _ := s.Unmanaged(t.Context(), "berlin", 100); len(ds) != 1 || ds[0].MAC != "00:1b:a9:00:00:02" {
		t.Fatalf("replaced: %+v", ds)
	}
	ingest(t, s, entry(t, rep, rep.record(7, func(r *report.Record) {
		r.UnmanagedDigest = report.DigestDevices([]report.Device{dev("00:1b:a9:00:00:02", "", rep)})
	})))
	if ds, _ := s.Unmanaged(t.Context(), "berlin", 100); len(ds) != 1 {
		t.Fatalf("digest only: %+v", ds)
	}
	ingest(t, s, entry(t, rep, rep.record(8, list())))
	if ds, _ := s.Unmanaged(t.Context(), "berlin", 100); len(ds) != 0 {
		t.Fatalf("cleared: %+v", ds)
	}
	if ds, _ := s.Unmanaged(t.Context(), "paris", 100); len(ds) != 1 {
		t.Fatalf("paris changed with berlin: %+v", ds)
	}
}
