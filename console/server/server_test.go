package server

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/patchring/patchring/console/auth"
	"github.com/patchring/patchring/console/report"
	"github.com/patchring/patchring/console/store"
	"github.com/patchring/patchring/internal/testutil"
)

var t0 = time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)

type revoker struct{ revoked map[string]bool }

func (v revoker) VerifyNode(_ context.Context, id string, _ ed25519.PublicKey, _ []byte) (NodeInfo, error) {
	if v.revoked[id] {
		return NodeInfo{}, errors.New("credential revoked")
	}
	return NodeInfo{}, nil
}

type fixture struct {
	st  *store.Store
	srv *httptest.Server
	ver revoker
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	st, err := store.OpenSQLite(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{st: st, ver: revoker{revoked: map[string]bool{}}}
	s := New(Config{Store: st, Verifier: f.ver, Logger: testutil.Logger(t), Now: func() time.Time { return t0.Add(time.Hour) }})
	f.srv = httptest.NewServer(s)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fixture) account(t *testing.T, name, role string) {
	t.Helper()
	h, err := auth.HashPassword("password-of-" + name)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.st.PutAccount(t.Context(), store.Account{Name: name, PasswordHash: h, Role: role, CreatedAt: t0}, false); err != nil {
		t.Fatal(err)
	}
}

type testNode struct {
	key ed25519.PrivateKey
	id  string
}

func newTestNode(i byte) testNode {
	seed := make([]byte, ed25519.SeedSize)
	seed[0] = i
	k := ed25519.NewKeyFromSeed(seed)
	return testNode{k, report.NodeID(k.Public().(ed25519.PublicKey))}
}

func (n testNode) sign(t *testing.T, seq uint64, mut func(*report.Record)) report.Envelope {
	t.Helper()
	pkgs := []report.Package{{Name: "openssl", Version: "3.0.11", Arch: "amd64"}}
	r := report.Record{Node: n.id, Seq: seq, Time: t0.Add(time.Duration(seq) * time.Minute), Site: "berlin", Hostname: "ws-" + n.id[len(n.id)-4:],
		Ring: "pilot", State: "idle", Reboot: report.Reboot{State: report.RebootNone}, Packages: pkgs, PackagesDigest: report.DigestPackages(pkgs)}
	if mut != nil {
		mut(&r)
	}
	env, err := report.Sign(r, n.key)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func (f *fixture) ingest(t *testing.T, envs ...report.Envelope) []IngestResult {
	t.Helper()
	body, _ := json.Marshal(IngestRequest{Records: envs})
	resp, err := http.Post(f.srv.URL+"/api/v1/ingest", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out IngestResponse
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&out) != nil {
		t.Fatalf("ingest: %s", resp.Status)
	}
	return out.Results
}

func TestIngestRefusesForgedReplayedRevoked(t *testing.T) {
	f := newFixture(t)
	a, b, c := newTestNode(1), newTestNode(2), newTestNode(3)
	good := a.sign(t, 5, nil)
	// b signs a record naming a: a reporter forging another node's record.
	forgedRec, _, err := report.Open(a.sign(t, 6, func(r *report.Record) { r.State = "failed" }))
	if err != nil {
		t.Fatal(err)
	}
	forgedRec.V = report.Version
	payload, _ := json.Marshal(forgedRec)
	forged := report.Envelope{Payload: payload, Sig: ed25519.Sign(b.key, append([]byte("patchring-report-v1\n"), payload...))}
	f.ver.revoked[c.id] = true
	res := f.ingest(t, good, forged, c.sign(t, 1, nil), b.sign(t, 1, nil))
	want := []string{"stored", "refused", "refused", "stored"}
	for i, r := range res {
		if r.Status != want[i] {
			t.Errorf("record %d: %+v, want %s", i, r, want[i])
		}
	}
	if !strings.Contains(res[1].Error, "bad signature") || !strings.Contains(res[2].Error, "revoked") {
		t.Errorf("reasons: %q %q", res[1].Error, res[2].Error)
	}
	// Delivered again: a duplicate, not counted. An older sequence: a replay.
	res = f.ingest(t, good, a.sign(t, 4, nil))
	if res[0].Status != "duplicate" || res[1].Status != "refused" || !strings.Contains(res[1].Error, "stale") {
		t.Errorf("again: %+v", res)
	}
	c2, _ := f.st.Count(t.Context())
	if c2.Nodes != 2 || c2.Records != 2 {
		t.Errorf("counts %+v", c2)
	}
	n, _ := f.st.Node(t.Context(), a.id)
	if n.State != "idle" {
		t.Errorf("forged record changed the node: %+v", n)
	}
	// Garbage is a 400, not a crash.
	resp, err := http.Post(f.srv.URL+"/api/v1/ingest", "application/json", strings.NewReader("{"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("garbage: %s", resp.Status)
	}
}

// browser is a client with cookies that, like a browser, sends Origin and
// Sec-Fetch-Site on form posts.
type browser struct {
	t    *testing.T
	c    *http.Client
	base string
}

func newBrowser(t *testing.T, base string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: base, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) get(path string) (int, string) {
	b.t.Helper()
	req, _ := http.NewRequest("GET", b.base+path, nil)
	req.Header.Set("Accept", "text/html")
	return b.do(req)
}

func (b *browser) do(req *http.Request) (int, string) {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func (b *browser) post(path string, form url.Values, origin, site string) (int, string) {
	b.t.Helper()
	req, _ := http.NewRequest("POST", b.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	if site != "" {
		req.Header.Set("Sec-Fetch-Site", site)
	}
	return b.do(req)
}

var csrfPat = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (b *browser) login(name, password string) int {
	b.t.Helper()
	_, page := b.get("/login")
	m := csrfPat.FindStringSubmatch(page)
	if m == nil {
		b.t.Fatalf("login form without CSRF token:\n%s", page)
	}
	code, _ := b.post("/login", url.Values{"csrf": {m[1]}, "account": {name}, "password": {password}}, b.base, "same-origin")
	return code
}

func TestDashboardAccess(t *testing.T) {
	f := newFixture(t)
	f.account(t, "olga", RoleOperator)
	f.account(t, "vic", RoleViewer)
	n := newTestNode(9)
	f.ingest(t, n.sign(t, 1, func(r *report.Record) {
		r.State = "failed"
		r.Hostname = "=cmd|calc"
		r.Outcomes = []report.Outcome{{Source: "apt", Package: "openssl", Version: "3.0.12", Result: report.ResultFailed, Reason: "<script>alert(1)</script>", At: r.Time}}
	}))

	anon := newBrowser(t, f.srv.URL)
	if code, _ := anon.get("/overview"); code != http.StatusSeeOther {
		t.Fatalf("anonymous dashboard: %d", code)
	}
	if resp, err := http.Get(f.srv.URL + "/api/v1/overview"); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous API: %v %v", resp.Status, err)
	}
	if code := anon.login("olga", "wrong-password-here"); code != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d", code)
	}
	// A login form posted from another site is refused.
	if code, _ := anon.post("/login", url.Values{"account": {"olga"}, "password": {"password-of-olga"}}, "https://evil.example", "cross-site"); code != http.StatusForbidden {
		t.Fatalf("cross-site login: %d", code)
	}

	op := newBrowser(t, f.srv.URL)
	if code := op.login("olga", "password-of-olga"); code != http.StatusSeeOther {
		t.Fatalf("login: %d", code)
	}
	code, page := op.get("/overview")
	if code != 200 || !strings.Contains(page, "pilot") || !strings.Contains(page, "berlin") {
		t.Fatalf("overview %d:\n%s", code, page)
	}
	code, page = op.get("/nodes/" + n.id)
	if code != 200 || strings.Contains(page, "<script>alert") || !strings.Contains(page, "&lt;script&gt;") {
		t.Fatalf("node page %d does not escape the reason:\n%s", code, page)
	}
	code, body := op.get("/failures.csv")
	recs, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if code != 200 || err != nil || len(recs) != 2 || recs[1][1] != "'=cmd|calc" || recs[1][7] != "<script>alert(1)</script>" {
		t.Fatalf("failures.csv %d %v: %q", code, err, recs)
	}
	csrf := csrfPat.FindStringSubmatch(page)[1]
	// A forget without the CSRF token, or from another site, is refused.
	if code, _ := op.post("/nodes/"+n.id+"/forget", url.Values{}, f.srv.URL, "same-origin"); code != http.StatusForbidden {
		t.Fatalf("forget without CSRF: %d", code)
	}
	if code, _ := op.post("/nodes/"+n.id+"/forget", url.Values{"csrf": {csrf}}, "https://evil.example", "cross-site"); code != http.StatusForbidden {
		t.Fatalf("cross-site forget: %d", code)
	}
	if _, err := f.st.Node(t.Context(), n.id); err != nil {
		t.Fatal("node forgotten by a refused request")
	}

	// A viewer reads but does not act.
	vb := newBrowser(t, f.srv.URL)
	vb.login("vic", "password-of-vic")
	_, vpage := vb.get("/nodes/" + n.id)
	vcsrf := csrfPat.FindStringSubmatch(vpage)[1]
	if code, _ := vb.post("/nodes/"+n.id+"/forget", url.Values{"csrf": {vcsrf}}, f.srv.URL, "same-origin"); code != http.StatusForbidden {
		t.Fatalf("viewer forget: %d", code)
	}
	if code, _ := vb.get("/audit"); code != http.StatusForbidden {
		t.Fatalf("viewer audit: %d", code)
	}

	// An API token: created on the tokens page, used by a script.
	_, tpage := op.get("/tokens")
	code, tpage = op.post("/tokens", url.Values{"csrf": {csrfPat.FindStringSubmatch(tpage)[1]}, "label": {"ci"}}, f.srv.URL, "same-origin")
	secret := regexp.MustCompile(`prc_[A-Za-z0-9_-]+`).FindString(tpage)
	if code != 200 || secret == "" {
		t.Fatalf("token page %d:\n%s", code, tpage)
	}
	api := func(method, path, tok string) int {
		req, _ := http.NewRequest(method, f.srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := api("GET", "/api/v1/overview", secret); c != 200 {
		t.Fatalf("token read: %d", c)
	}
	if c := api("GET", "/api/v1/overview", secret+"x"); c != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d", c)
	}
	// The operator forgets the node with the form (CSRF token, same origin).
	if code, _ := op.post("/nodes/"+n.id+"/forget", url.Values{"csrf": {csrf}}, f.srv.URL, "same-origin"); code != http.StatusSeeOther {
		t.Fatalf("forget: %d", code)
	}
	if _, err := f.st.Node(t.Context(), n.id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("node still there: %v", err)
	}
	log, _ := f.st.AuditLog(t.Context(), 10)
	var actions []string
	for _, e := range log {
		actions = append(actions, e.Actor+": "+e.Action)
	}
	if got := strings.Join(actions, "; "); got != "olga: forget node; olga: create API token; vic: login; olga: login" {
		t.Fatalf("audit log: %s", got)
	}
	// After logout the session cookie is worthless.
	_, page = op.get("/overview")
	op.post("/logout", url.Values{"csrf": {csrfPat.FindStringSubmatch(page)[1]}}, f.srv.URL, "same-origin")
	if code, _ := op.get("/overview"); code != http.StatusSeeOther {
		t.Fatalf("after logout: %d", code)
	}
}

func TestCheckExposure(t *testing.T) {
	for _, c := range []struct {
		addr     string
		tls      bool
		accounts int
		ok       bool
	}{
		{"127.0.0.1:8080", false, 0, true},
		{"[::1]:8080", false, 0, true},
		{"localhost:8080", false, 0, true},
		{"0.0.0.0:8080", false, 1, false},
		{":8080", true, 1, true},
		{"10.0.0.5:443", true, 0, false},
		{"10.0.0.5:443", true, 1, true},
		{"nonsense", false, 0, false},
	} {
		if err := CheckExposure(c.addr, c.tls, c.accounts); (err == nil) != c.ok {
			t.Errorf("CheckExposure(%s, tls %v, %d accounts) = %v", c.addr, c.tls, c.accounts, err)
		}
	}
}

func TestSafeNextAndCSV(t *testing.T) {
	for in, want := range map[string]string{"/nodes/x": "/nodes/x", "//evil.example": "/", "https://evil.example": "/", "": "/", "/\\evil": "/"} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q", in, got)
		}
	}
	for in, want := range map[string]string{"=1+1": "'=1+1", "-5": "-5", "@x": "'@x", "plain": "plain"} {
		if got := csvSafe(in); got != want {
			t.Errorf("csvSafe(%q) = %q", in, got)
		}
	}
}
