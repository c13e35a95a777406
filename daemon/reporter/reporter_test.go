package reporter

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patchring/patchring/console/report"
	"github.com/patchring/patchring/internal/testutil"
	"github.com/patchring/patchring/internal/testutil/consoletest"
	"github.com/patchring/patchring/policy/credential"
	"github.com/patchring/patchring/policy/credential/credtest"
)

func fleetOf(t *credential.Trust) consoletest.FleetFunc {
	return func(context.Context) (*credential.Trust, error) { return t, nil }
}

// agent is one node's reporter with its own outbox and state.
type agent struct {
	id    string
	box   *Outbox
	rep   *Reporter
	mu    sync.Mutex
	state string
	outs  []report.Outcome
	vulns []report.Vuln // nil: no advisories matched
}

type testSite struct {
	mu      sync.Mutex
	agents  map[string]*agent
	members []string // live members
	console Console
	clock   time.Time       // zero: the real clock
	devices []report.Device // the site's unmanaged devices
	// liveDevices: the devices were last seen now (the site's clock).
	liveDevices bool
}

func (s *testSite) now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.clock.IsZero() {
		return time.Now()
	}
	return s.clock
}

func (s *testSite) live() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.members)
}

func (s *testSite) leave(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.members = slices.DeleteFunc(s.members, func(m string) bool { return m == id })
}

func newSite(t testing.TB, ca *credtest.CA, n int, url string, npkgs int) *testSite {
	s := &testSite{agents: map[string]*agent{}, console: Console{URL: url}}
	for i := range n {
		_, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		id := report.NodeID(key.Public().(ed25519.PublicKey))
		_, cred := ca.Issue(t, id, credtest.Spec{Hostname: fmt.Sprintf("ws%02d", i), Site: "berlin"})
		box, err := OpenOutbox(OutboxConfig{Path: filepath.Join(t.TempDir(), "outbox.json"), Key: key, Credential: func() []byte { return cred }})
		if err != nil {
			t.Fatal(err)
		}
		a := &agent{id: id, box: box, state: "idle"}
		a.rep = New(Config{
			Now:     s.now,
			Outbox:  box,
			Log:     testutil.Logger(t).With("node", id[len(id)-4:]),
			Members: s.live,
			Console: func() (Console, bool) { return s.console, true },
			Sample: func(context.Context) (Sample, error) {
				a.mu.Lock()
				defer a.mu.Unlock()
				pkgs := []report.Package{{Name: "openssl", Version: "3.0.11", Arch: "amd64"}}
				for i := 1; i < npkgs; i++ {
					pkgs = append(pkgs, report.Package{Name: fmt.Sprintf("pkg%05d", i), Version: "1.2.3-4+deb12u1", Arch: "amd64"})
				}
				return Sample{Record: report.Record{Site: "claimed", Hostname: "x", Ring: "pilot", State: a.state, Reboot: report.Reboot{State: report.RebootNone}},
					Packages: pkgs, Outcomes: slices.Clone(a.outs), VulnsKnown: a.vulns != nil, Vulns: slices.Clone(a.vulns)}, nil
			},
			SiteDevices: func(context.Context) ([]report.Device, bool) {
				s.mu.Lock()
				defer s.mu.Unlock()
				ds := slices.Clone(s.devices)
				if s.liveDevices {
					for i := range ds {
						ds[i].LastSeen = s.clock
					}
				}
				return ds, true
			},
			// The exchange's file protocol carries these bytes; here
			// the member's file server is called directly.
			Fetch: func(ctx context.Context, member string, after uint64) ([]report.Envelope, error) {
				s.mu.Lock()
				m := s.agents[member]
				s.mu.Unlock()
				rc, _, err := m.box.OpenFile(ctx, PathPrefix+strconv.FormatUint(after, 10))
				if err != nil {
					return nil, err
				}
				defer rc.Close()
				b, err := io.ReadAll(rc)
				if err != nil {
					return nil, err
				}
				return ParseBatch(b)
			},
		})
		s.agents[id] = a
		s.members = append(s.members, id)
	}
	return s
}

func (s *testSite) round(t testing.TB) (leaderErr error) {
	t.Helper()
	// Members first, the reporter last: every member's round signs its
	// record before the reporter collects (in the field, the next round
	// collects what this one missed).
	ids := s.live()
	slices.SortStableFunc(ids, func(a, b string) int {
		ra, rb := s.agents[a].rep.IsReporter(), s.agents[b].rep.IsReporter()
		switch {
		case ra == rb:
			return 0
		case rb:
			return -1
		}
		return 1
	})
	for _, id := range ids {
		a := s.agents[id]
		err := a.rep.Round(context.Background())
		if a.rep.IsReporter() {
			leaderErr = err
		} else if err != nil {
			t.Fatalf("member round: %v", err)
		}
	}
	return leaderErr
}

func (s *testSite) leader(t testing.TB) *agent {
	t.Helper()
	for _, id := range s.live() {
		if s.agents[id].rep.IsReporter() {
			return s.agents[id]
		}
	}
	t.Fatal("no reporter")
	return nil
}

func TestSiteReportsThroughOneReporter(t *testing.T) {
	ca := credtest.NewCA(t)
	c := consoletest.Start(t, fleetOf(ca.Trust(t, credential.Revocations{})))
	s := newSite(t, ca, 4, c.URL(), 1)

	if err := s.round(t); err != nil {
		t.Fatal(err)
	}
	leader := s.leader(t)
	n, err := c.Store.Count(t.Context())
	if err != nil || n.Nodes != 4 || n.Records != 4 {
		t.Fatalf("after one round: %+v %v, want 4 nodes and records", n, err)
	}
	// Only the reporter sent.
	for _, a := range s.agents {
		if st := a.rep.Stats(); (a == leader) != (st.Sent > 0) {
			t.Errorf("node %s sent %d records; reporter is %s", a.id, st.Sent, leader.id)
		}
	}
	// The overview lists the site from the credentials, not the records.
	rows, err := c.Store.Overview(t.Context())
	if err != nil || len(rows) != 1 || rows[0].Site != "berlin" || rows[0].Nodes != 4 {
		t.Fatalf("overview %+v %v", rows, err)
	}
	// Nothing changed: a second round sends nothing (deltas).
	before := leader.rep.Stats().Sent
	if err := s.round(t); err != nil {
		t.Fatal(err)
	}
	if got := leader.rep.Stats().Sent; got != before {
		t.Errorf("an unchanged site sent %d more records", got-before)
	}

	// Console outage: records queue on their nodes and arrive after.
	c.Stop()
	var victim *agent
	for _, a := range s.agents {
		if a != leader {
			victim = a
			break
		}
	}
	victim.mu.Lock()
	victim.state = "failed"
	victim.outs = append(victim.outs, report.Outcome{Source: "debian", Package: "openssl", Version: "3.0.12", Result: report.ResultFailed, Reason: "postinst exited 1", At: time.Now()})
	victim.mu.Unlock()
	for range 2 {
		if err := s.round(t); err == nil {
			t.Fatal("a round with the console down did not fail")
		}
	}
	if victim.box.Len() == 0 {
		t.Fatal("the failed node's record is not queued")
	}
	c.Start()
	if err := s.round(t); err != nil {
		t.Fatal(err)
	}
	node, err := c.Store.Node(t.Context(), victim.id)
	if err != nil || node.State != "failed" {
		t.Fatalf("after the outage: %+v %v", node, err)
	}
	fails, err := c.Store.Failures(t.Context(), victim.id, 10)
	if err != nil || len(fails) != 1 || fails[0].Reason != "postinst exited 1" {
		t.Fatalf("failures %+v %v", fails, err)
	}
	// Delivered records are dropped from the outboxes at the next ask.
	if err := s.round(t); err != nil {
		t.Fatal(err)
	}
	if victim.box.Len() != 0 {
		t.Errorf("outbox keeps %d delivered records", victim.box.Len())
	}

	// The reporter leaves: the next in rendezvous order takes over, with
	// what was queued while nobody reported.
	s.leave(leader.id)
	victim.mu.Lock()
	victim.state = "idle"
	victim.mu.Unlock()
	for range 2 {
		if err := s.round(t); err != nil {
			t.Fatal(err)
		}
	}
	next := s.leader(t)
	if next == leader {
		t.Fatal("no takeover")
	}
	node, _ = c.Store.Node(t.Context(), victim.id)
	if node.State != "idle" {
		t.Errorf("after takeover the console has %q", node.State)
	}
	if st := next.rep.Stats(); st.Sent == 0 || st.Refused != 0 {
		t.Errorf("new reporter stats %+v", st)
	}
}

// records returns the records an agent signed since the console last
// confirmed (its outbox).
func (a *agent) records(t *testing.T) []report.Record {
	t.Helper()
	envs, err := a.box.Since(0)
	if err != nil {
		t.Fatal(err)
	}
	var out []report.Record
	for _, e := range envs {
		r, _, err := report.Open(e)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// TestVulnsAndDevicesOnChange: a node's vulnerabilities and the site's
// unmanaged devices (only in the reporter's record) reach the console;
// their lists travel only when they change, a cleared list by its digest
// alone, and a new reporter lists the site's devices again.
func TestVulnsAndDevicesOnChange(t *testing.T) {
	ca := credtest.NewCA(t)
	c := consoletest.Start(t, fleetOf(ca.Trust(t, credential.Revocations{})))
	s := newSite(t, ca, 3, c.URL(), 1)
	cve := report.Vuln{ID: "CVE-2026-0001", Package: "openssl", Version: "3.0.11", FixedIn: "3.0.13", Severity: report.SeverityCritical, KEV: true, Fix: "available"}
	for _, a := range s.agents {
		a.vulns = []report.Vuln{cve}
	}
	leader := s.leader(t)
	t1 := time.Now().UTC().Truncate(time.Hour)
	s.devices = []report.Device{{MAC: "00:1b:a9:00:00:01", Vendor: "Brother", Addrs: []string{"10.0.0.9"}, FirstSeen: t1.Add(-time.Hour), LastSeen: t1, SeenBy: []string{leader.id}}}
	if err := s.round(t); err != nil {
		t.Fatal(err)
	}
	ns, err := c.ExposedTo(t.Context(), cve.ID)
	if err != nil || len(ns) != 3 || ns[0].Site != "berlin" || !ns[0].KEV {
		t.Fatalf("exposed nodes %+v %v", ns, err)
	}
	devs, err := c.Store.Unmanaged(t.Context(), "berlin", 10)
	if err != nil || len(devs) != 1 || devs[0].ReportedBy != leader.id {
		t.Fatalf("unmanaged %+v %v", devs, err)
	}
	// Only the reporter's record speaks for the site.
	for _, a := range s.agents {
		for _, r := range a.records(t) {
			if (a == leader) != (r.UnmanagedDigest != "") || len(r.Vulns) != 1 {
				t.Fatalf("record of %s (reporter %v): devices %q %d, vulns %d", a.id, a == leader, r.UnmanagedDigest, len(r.Unmanaged), len(r.Vulns))
			}
		}
	}
	// A day later, the heartbeats: no list travels again.
	s.mu.Lock()
	s.clock = time.Now().Add(25 * time.Hour)
	s.mu.Unlock()
	if err := s.round(t); err != nil {
		t.Fatal(err)
	}
	for _, a := range s.agents {
		recs := a.records(t)
		if len(recs) == 0 {
			t.Fatalf("no heartbeat from %s", a.id)
		}
		if r := recs[len(recs)-1]; len(r.Vulns) != 0 || len(r.Unmanaged) != 0 || r.VulnsDigest != report.DigestVulns([]report.Vuln{cve}) {
			t.Fatalf("heartbeat of %s: %d vulns, %d devices, vulns digest %s", a.id, len(r.Vulns), len(r.Unmanaged), r.VulnsDigest)
		}
	}
	if err := s.round(t); err != nil { // the outboxes drop what the console confirmed
		t.Fatal(err)
	}
	// One node's exposure clears: its record carries the empty list's
	// digest, no list; the console clears it.
	victim := s.agents[s.live()[0]]
	if victim == leader {
		victim = s.agents[s.live()[1]]
	}
	victim.mu.Lock()
	victim.vulns = []report.Vuln{}
	victim.mu.Unlock()
	if err := s.round(t); err != nil {
		t.Fatal(err)
	}
	recs := victim.records(t)
	if len(recs) == 0 {
		t.Fatal("a cleared exposure made no record")
	}
	if r := recs[len(recs)-1]; r.VulnsDigest != report.DigestVulns(nil) || r.Vulns != nil {
		t.Fatalf("cleared record: digest %s, %d vulns", r.VulnsDigest, len(r.Vulns))
	}
	for _, a := range s.agents {
		if a == victim {
			continue
		}
		for _, r := range a.records(t) {
			if len(r.Vulns) != 0 || len(r.Unmanaged) != 0 {
				t.Fatalf("an unchanged node sent its lists again: %d vulns, %d devices", len(r.Vulns), len(r.Unmanaged))
			}
		}
	}
	if ns, _ := c.ExposedTo(t.Context(), cve.ID); len(ns) != 2 {
		t.Fatalf("after one node's exposure cleared: %+v", ns)
	}
	if devs, _ := c.Store.Unmanaged(t.Context(), "berlin", 10); len(devs) != 1 {
		t.Fatalf("a heartbeat changed the devices: %+v", devs)
	}
	// The reporter leaves; the next lists the site's devices (now two).
	s.leave(leader.id)
	s.mu.Lock()
	s.devices = append(s.devices, report.Device{MAC: "b8:27:eb:00:00:07", FirstSeen: t1, LastSeen: t1})
	s.clock = s.clock.Add(time.Hour)
	s.mu.Unlock()
	for range 2 {
		if err := s.round(t); err != nil {
			t.Fatal(err)
		}
	}
	next := s.leader(t)
	devs, err = c.Store.Unmanaged(t.Context(), "berlin", 10)
	if err != nil || len(devs) != 2 || devs[1].ReportedBy != next.id {
		t.Fatalf("after the takeover: %+v %v", devs, err)
	}
}

func TestReporterCannotForge(t *testing.T) {
	ca := credtest.NewCA(t)
	c := consoletest.Start(t, fleetOf(ca.Trust(t, credential.Revocations{})))
	s := newSite(t, ca, 2, c.URL(), 1)
	if err := s.round(t); err != nil {
		t.Fatal(err)
	}
	leader := s.leader(t)
	var other *agent
	for _, a := range s.agents {
		if a != leader {
			other = a
		}
	}
	// The reporter alters the other node's queued record before sending:
	// the console refuses it.
	other.mu.Lock()
	other.state = "installing"
	other.mu.Unlock()
	if _, err := other.box.Add(mustSample(t, other), time.Now()); err != nil {
		t.Fatal(err)
	}
	envs, err := other.box.Since(0)
	if err != nil || len(envs) == 0 {
		t.Fatal(envs, err)
	}
	tampered := envs[len(envs)-1]
	tampered.Payload = []byte(strings.Replace(string(tampered.Payload), `"installing"`, `"idle"`, 1))
	if err := leader.rep.post(t.Context(), s.console, []report.Envelope{tampered}); err != nil {
		t.Fatal(err)
	}
	if st := leader.rep.Stats(); st.Refused != 1 {
		t.Errorf("stats %+v, want one refused", st)
	}
	node, _ := c.Store.Node(t.Context(), other.id)
	if node.State != "idle" || node.Seq != 1 {
		t.Errorf("tampered record stored: %+v", node)
	}
}

func mustSample(t *testing.T, a *agent) Sample {
	s, err := a.rep.cfg.Sample(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestParsePath(t *testing.T) {
	for _, p := range []string{"reports/since/", "reports/since/-1", "reports/since/01", "reports/since/1x", "other/1"} {
		if _, err := ParsePath(p); err == nil {
			t.Errorf("%q parsed", p)
		}
	}
	if n, err := ParsePath("reports/since/42"); err != nil || n != 42 {
		t.Errorf("42: %d %v", n, err)
	}
}

// TestRunQueuesWhileASendHangs: the console stops answering in the middle
// of a request (a WAN gone dark under an open connection, which only the
// client's 2-minute timeout ends). The reporter's own records keep being
// queued each round meanwhile; before, its rounds waited for the send.
func TestRunQueuesWhileASendHangs(t *testing.T) {
	hung := make(chan struct{})
	posts := make(chan struct{}, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		posts <- struct{}{}
		select {
		case <-hung:
		case <-r.Context().Done():
		}
		http.Error(w, "gone", http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(hung) }) // before srv.Close: it waits for the handler
	s := newSite(t, credtest.NewCA(t), 1, srv.URL, 1)
	var a *agent
	for _, x := range s.agents {
		a = x
	}
	rounds := make(chan struct{})
	a.rep.cfg.Wait = func(ctx context.Context, _ time.Duration) error {
		select {
		case <-rounds:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- a.rep.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-posts: // the first round's send hangs
	case <-time.After(30 * time.Second):
		t.Fatal("the reporter did not send")
	}
	a.mu.Lock()
	a.state = "installing"
	a.mu.Unlock()
	select {
	case rounds <- struct{}{}:
	case <-time.After(10 * time.Second):
		t.Fatal("the reporter's next round waits for the hung send")
	}
	testutil.WaitFor(t, 10*time.Second, "the next round's record queued while the send hangs", func() error {
		for _, r := range a.records(t) {
			if r.State == "installing" {
				return nil
			}
		}
		return fmt.Errorf("records: %+v", a.records(t))
	})
	if n := len(posts); n != 0 {
		t.Errorf("%d more sends started while one hung, want none", n)
	}
}
