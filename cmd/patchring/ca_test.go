package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchring/patchring/policy/credential"
	"github.com/patchring/patchring/policy/tufrepo"
)

// caRepo is a repository with a fleet CA made through the CLI.
type caRepo struct {
	dir, keys, pass string
	rk              []string // --repo DIR --keys KEYS
}

// newCARepo runs repo init and ca init; with pass set, every key file is
// encrypted with it (PR_TEST_PASSPHRASE).
func newCARepo(t *testing.T, pass string) *caRepo {
	t.Helper()
	base := t.TempDir()
	c := &caRepo{dir: filepath.Join(base, "repo"), keys: filepath.Join(base, "keys"), pass: pass}
	t.Setenv("PR_TEST_PASSPHRASE", pass)
	c.rk = []string{"--repo", c.dir, "--keys", c.keys, "--passphrase-env", "PR_TEST_PASSPHRASE"}
	mustCLI(t, append([]string{"repo", "init", "--no-fleet-ca"}, c.rk...)...)
	out := mustCLI(t, append([]string{"ca", "init"}, c.rk...)...)
	if !strings.Contains(out, "Created fleet CA key") || !strings.Contains(out, credential.TargetName) {
		t.Fatalf("ca init output:\n%s", out)
	}
	return c
}

func (c *caRepo) cli(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return runCLI(t, context.Background(), append(args, c.rk...)...)
}

func (c *caRepo) must(t *testing.T, args ...string) string {
	t.Helper()
	return mustCLI(t, append(args, c.rk...)...)
}

func (c *caRepo) trust(t *testing.T) *credential.Trust {
	t.Helper()
	r, err := tufrepo.Open(c.dir, "", "")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := r.FleetDocument()
	if err != nil {
		t.Fatal(err)
	}
	tr, err := credential.NewTrust(&doc)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func (c *caRepo) ledger(t *testing.T) []credential.Issued {
	t.Helper()
	recs, err := credential.ReadLedger(filepath.Join(c.keys, caLedgerName))
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// testNode is a node key as patchringd holds it.
type testNode struct {
	id  string
	key ed25519.PrivateKey
}

func newTestNode(t testing.TB) testNode {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := credential.NodeIDFromKey(k.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	return testNode{id: id, key: k}
}

// request writes the node's enrollment request to dir/name.request, as
// patchringd enroll --request does, signed with signer (the node's own key
// unless a test forges it).
func (n testNode) request(t testing.TB, dir, name, hostname string, signer ed25519.PrivateKey) string {
	t.Helper()
	r, err := credential.NewRequest(n.id, hostname, "", time.Now(), func(m []byte) ([]byte, error) { return ed25519.Sign(signer, m), nil })
	if err != nil {
		t.Fatal(err)
	}
	raw, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name+".request")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func readCredential(t *testing.T, path string) *credential.Credential {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := credential.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func writeCredential(t *testing.T, path string, c *credential.Credential, key ed25519.PrivateKey) {
	t.Helper()
	if err := c.Sign(key); err != nil {
		t.Fatal(err)
	}
	raw, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

func exitCode(err error) int {
	var e *exitError
	if errors.As(err, &e) {
		return e.code
	}
	if err != nil {
		return -1
	}
	return 0
}

func listJSON(t *testing.T, c *caRepo, extra ...string) map[uint64]ledgerRecord {
	t.Helper()
	var recs []ledgerRecord
	out := c.must(t, append([]string{"ca", "list", "-o", "json"}, extra...)...)
	if err := json.Unmarshal([]byte(out), &recs); err != nil {
		t.Fatalf("ca list -o json: %v\n%s", err, out)
	}
	m := map[uint64]ledgerRecord{}
	for _, r := range recs {
		m[r.Serial] = r
	}
	return m
}

// TestCaOfflineFlow: the admin signs
// requests, lists and shows credentials, and revokes by node ID, by
// hostname (refused while ambiguous) and by serial; each revocation is
// published in fleet.json and seen by ca list and ca show.
func TestCaOfflineFlow(t *testing.T) {
	c := newCARepo(t, "")
	if out, err := c.cli(t, "ca", "init"); err == nil || !strings.Contains(err.Error(), "already publishes") {
		t.Fatalf("second ca init: %v\n%s", err, out)
	}

	usb := t.TempDir()
	web1, web2, web1b := newTestNode(t), newTestNode(t), newTestNode(t)
	r1 := web1.request(t, usb, "web-1", "web-1", web1.key)
	r2 := web2.request(t, usb, "web-2", "web-2", web2.key)
	out := c.must(t, "ca", "sign", r1, r2, "--site", "berlin", "--tags", "pilot,linux", "--valid", "365d", "-o", "json")
	var got []signed
	if err := json.Unmarshal([]byte(out), &got); err != nil || len(got) != 2 {
		t.Fatalf("ca sign -o json: %v\n%s", err, out)
	}
	tr := c.trust(t)
	for i, n := range []testNode{web1, web2} {
		if got[i].File != filepath.Join(usb, n.id+".credential") {
			t.Errorf("credential for %s written to %s, want beside its request", n.id, got[i].File)
		}
		cred := readCredential(t, got[i].File)
		if err := tr.VerifyFor(cred, n.id, time.Now()); err != nil {
			t.Errorf("signed credential: %v", err)
		}
		if cred.Site != "berlin" || strings.Join(cred.Tags, ",") != "pilot,linux" || cred.Hostname != []string{"web-1", "web-2"}[i] {
			t.Errorf("credential %s", cred)
		}
		if d := time.Until(cred.NotAfter); d < 364*24*time.Hour || d > 366*24*time.Hour {
			t.Errorf("--valid 365d gave %s", cred.NotAfter)
		}
	}
	if recs := c.ledger(t); len(recs) != 2 || recs[0].NodeID != web1.id || recs[0].How != "offline" || recs[1].Serial != got[1].Serial {
		t.Fatalf("ledger after signing two: %+v", recs)
	}

	// web-1 was reinstalled with a new node key and the same hostname.
	outDir := t.TempDir()
	r1b := web1b.request(t, usb, "web-1b", "web-1", web1b.key)
	out = c.must(t, "ca", "sign", r1b, "--site", "berlin", "--tags", "broad", "--out", outDir)
	if !strings.Contains(out, "Signed 1 credential") {
		t.Errorf("ca sign output:\n%s", out)
	}
	web1bFile := filepath.Join(outDir, web1b.id+".credential")
	if _, err := os.Stat(web1bFile); err != nil {
		t.Fatalf("--out: %v", err)
	}

	out, err := c.cli(t, "ca", "show", got[0].File)
	if err != nil || !strings.Contains(out, "Status:") || !strings.Contains(out, "valid") || !strings.Contains(out, "CA key") {
		t.Fatalf("ca show of a valid credential: %v\n%s", err, out)
	}
	list := listJSON(t, c)
	if len(list) != 3 {
		t.Fatalf("ca list: %d records", len(list))
	}
	for s, r := range list {
		if r.Status != "valid" {
			t.Errorf("serial %d: %s %s", s, r.Status, r.Reason)
		}
	}
	if out := c.must(t, "ca", "list"); !strings.Contains(out, "web-2") || !strings.Contains(out, "pilot,linux") {
		t.Errorf("ca list table:\n%s", out)
	}
	if l := listJSON(t, c, "--site", "paris"); len(l) != 0 {
		t.Errorf("ca list --site paris: %v", l)
	}

	// An ambiguous hostname is refused, naming both nodes; nothing published.
	before := c.trust(t).Document()
	_, err = c.cli(t, "ca", "revoke", "web-1", "--reason", "stolen")
	if err == nil || !strings.Contains(err.Error(), "names 2 nodes") || !strings.Contains(err.Error(), web1.id) || !strings.Contains(err.Error(), web1b.id) {
		t.Fatalf("revoke by an ambiguous hostname: %v", err)
	}
	if len(c.trust(t).Document().Revoked.Nodes) != len(before.Revoked.Nodes) {
		t.Fatal("a refused revocation was published")
	}
	// By node ID: the old web-1 key.
	out = c.must(t, "ca", "revoke", web1.id, "--reason", "disk sold with the old install")
	if !strings.Contains(out, "Revoked node "+web1.id) || !strings.Contains(out, "Published") {
		t.Errorf("revoke output:\n%s", out)
	}
	if _, ok := c.trust(t).Revoked(web1.id); !ok {
		t.Fatal("revocation not in the published fleet.json")
	}
	if r := listJSON(t, c)[got[0].Serial]; r.Status != "revoked" || !strings.Contains(r.Reason, "disk sold") {
		t.Errorf("ca list after revoke: %+v", r)
	}
	out, err = c.cli(t, "ca", "show", got[0].File)
	if exitCode(err) != 1 || !strings.Contains(out, "revoked") || !strings.Contains(out, "disk sold") {
		t.Errorf("ca show of a revoked credential: exit %d (%v)\n%s", exitCode(err), err, out)
	}
	if _, err := c.cli(t, "ca", "revoke", web1.id, "--reason", "again"); err == nil || !strings.Contains(err.Error(), "revoked already") {
		t.Errorf("revoking twice: %v", err)
	}
	// Now "web-1" names one node that is not revoked: the new one.
	c.must(t, "ca", "revoke", "web-1", "--reason", "decommissioned")
	if _, ok := c.trust(t).Revoked(web1b.id); !ok {
		t.Fatal("revoke by hostname did not revoke the remaining web-1")
	}
	if _, err := c.cli(t, "ca", "revoke", "WEB-1", "--reason", "x"); err == nil || !strings.Contains(err.Error(), "revoked already") {
		t.Errorf("revoke of a hostname whose nodes are all revoked: %v", err)
	}
	if _, err := c.cli(t, "ca", "revoke", "nosuchhost", "--reason", "x"); err == nil || !strings.Contains(err.Error(), "in no ledger") {
		t.Errorf("revoke of an unknown hostname: %v", err)
	}
	// A revoked node's next request is refused.
	r1again := web1.request(t, usb, "web-1-again", "web-1", web1.key)
	if _, err := c.cli(t, "ca", "sign", r1again, "--site", "berlin"); err == nil || !strings.Contains(err.Error(), "revoked") || !strings.Contains(err.Error(), r1again) {
		t.Errorf("signing a revoked node: %v", err)
	}

	// One credential by serial.
	c.must(t, "ca", "revoke", "--serial", jsonNumber(got[1].Serial))
	if r := listJSON(t, c)[got[1].Serial]; r.Status != "revoked" || !strings.Contains(r.Reason, "serial") {
		t.Errorf("ca list after revoking serial: %+v", r)
	}
	if _, err := c.cli(t, "ca", "revoke", "--serial", jsonNumber(got[1].Serial)); err == nil {
		t.Error("revoking a serial twice succeeded")
	}

	// ca show by hostname reads the ledger.
	out, err = c.cli(t, "ca", "show", "web-2")
	if exitCode(err) != 1 || !strings.Contains(out, "revoked") {
		t.Errorf("ca show web-2 (revoked serial): exit %d\n%s", exitCode(err), out)
	}

}

// TestCaPassphrase: with passphrase-encrypted repository keys, ca init
// encrypts the CA key with the same passphrase, and so does ca issuer
// create for the issuing key by default; ca sign works with the passphrase
// and is refused without it or with a wrong one, recording nothing.
func TestCaPassphrase(t *testing.T) {
	c := newCARepo(t, "s3cret passphrase")
	cas, _ := filepath.Glob(filepath.Join(c.keys, tufrepo.RoleFleetCA+"-*.json"))
	if len(cas) != 1 {
		t.Fatalf("CA key files: %v", cas)
	}
	if data, _ := os.ReadFile(cas[0]); !strings.Contains(string(data), `"encrypted"`) || strings.Contains(string(data), `"private"`) {
		t.Fatalf("CA key is not encrypted with the repository's passphrase:\n%s", data)
	}
	usb := t.TempDir()
	web := newTestNode(t)
	c.must(t, "ca", "sign", web.request(t, usb, "web", "web-1", web.key), "--site", "berlin")
	if _, err := c.cli(t, "ca", "show", filepath.Join(usb, web.id+".credential")); err != nil {
		t.Errorf("credential signed with the encrypted CA key: %v", err)
	}
	svc := filepath.Join(t.TempDir(), "svc")
	out := c.must(t, "ca", "issuer", "create", "--name", "svc-1", "--out", svc)
	files, _ := filepath.Glob(filepath.Join(svc, tufrepo.RoleFleetIssuer+"-*.json"))
	if len(files) != 1 {
		t.Fatalf("issuer key files %v\n%s", files, out)
	}
	if _, err := tufrepo.ReadKeyFile(files[0], []byte(c.pass), true); err != nil {
		t.Errorf("issuer key with the repository's passphrase: %v", err)
	}

	// Without the passphrase and without a terminal, signing is refused
	// and nothing is recorded.
	n := len(c.ledger(t))
	t.Setenv("PR_TEST_PASSPHRASE", "")
	web3 := newTestNode(t)
	if _, err := c.cli(t, "ca", "sign", web3.request(t, usb, "web-3", "web-3", web3.key), "--site", "berlin"); err == nil || !strings.Contains(err.Error(), "PR_TEST_PASSPHRASE") {
		t.Errorf("ca sign without the passphrase: %v", err)
	}
	t.Setenv("PR_TEST_PASSPHRASE", "wrong")
	if _, err := c.cli(t, "ca", "sign", filepath.Join(usb, "web-3.request"), "--site", "berlin"); !errors.Is(err, tufrepo.ErrBadPassphrase) {
		t.Errorf("ca sign with a wrong passphrase: %v", err)
	}
	if len(c.ledger(t)) != n {
		t.Error("a refused signing was recorded")
	}
	if _, err := os.Stat(filepath.Join(usb, web3.id+".credential")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused signing wrote a credential: %v", err)
	}
}

func jsonNumber(n uint64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// TestCaSignRefusesBadRequests: forged, foreign, malformed and duplicate
// requests are each named with their reason, and nothing of the batch is
// signed or recorded.
func TestCaSignRefusesBadRequests(t *testing.T) {
	c := newCARepo(t, "")
	dir := t.TempDir()
	good, forgedNode, foreignNode, dup := newTestNode(t), newTestNode(t), newTestNode(t), newTestNode(t)
	okPath := good.request(t, dir, "good", "good-1", good.key)
	// Forged: a valid request whose hostname was changed afterwards.
	forged := forgedNode.request(t, dir, "forged", "lab-1", forgedNode.key)
	raw, _ := os.ReadFile(forged)
	os.WriteFile(forged, []byte(strings.Replace(string(raw), `"lab-1"`, `"dc-1"`, 1)), 0o644)
	// Foreign: the node ID of one key, signed by another.
	foreign := foreignNode.request(t, dir, "foreign", "lab-2", newTestNode(t).key)
	garbage := filepath.Join(dir, "garbage.request")
	os.WriteFile(garbage, []byte("not json"), 0o644)
	big := filepath.Join(dir, "big.request")
	os.WriteFile(big, []byte(strings.Repeat(" ", credential.MaxRequestSize+10)), 0o644)
	d1 := dup.request(t, dir, "dup1", "lab-3", dup.key)
	d2 := dup.request(t, dir, "dup2", "lab-3", dup.key)
	missing := filepath.Join(dir, "missing.request")

	_, err := c.cli(t, "ca", "sign", okPath, forged, foreign, garbage, big, d1, d2, missing, "--site", "lab")
	if err == nil {
		t.Fatal("a batch with bad requests was signed")
	}
	msg := err.Error()
	for _, want := range []string{"nothing signed, 6 of 8", forged + ": request from", foreign + ": request from", "does not verify",
		garbage + ": request", big + ": request", d2 + ": node " + dup.id + " also requested in " + d1, missing + ":"} {
		if !strings.Contains(msg, want) {
			t.Errorf("refusal does not say %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, okPath+":") {
		t.Errorf("the good request is listed as refused:\n%s", msg)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "*.credential")); len(m) != 0 {
		t.Errorf("credentials written for a refused batch: %v", m)
	}
	if recs := c.ledger(t); len(recs) != 0 {
		t.Errorf("ledger after a refused batch: %+v", recs)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no site", []string{"ca", "sign", okPath}, "--site"},
		{"site with a space", []string{"ca", "sign", okPath, "--site", "two words"}, "space"},
		{"too many tags", []string{"ca", "sign", okPath, "--site", "s", "--tags", "a,b,c,d,e,f,g,h,i"}, "tags"},
		{"bad validity", []string{"ca", "sign", okPath, "--site", "s", "--valid", "forever"}, "--valid"},
		{"out not a dir", []string{"ca", "sign", okPath, "--site", "s", "--out", missing}, "--out"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := c.cli(t, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
	// The good request alone signs.
	c.must(t, "ca", "sign", okPath, "--site", "lab")
	if recs := c.ledger(t); len(recs) != 1 || recs[0].NodeID != good.id {
		t.Fatalf("ledger: %+v", recs)
	}
	// A keys directory holding only the CA key signs too (no TUF key is
	// needed to sign), and keeps its own ledger.
	caOnly := filepath.Join(t.TempDir(), "ca-only")
	if err := os.Mkdir(caOnly, 0o700); err != nil {
		t.Fatal(err)
	}
	m, _ := filepath.Glob(filepath.Join(c.keys, tufrepo.RoleFleetCA+"-*.json"))
	data, err := os.ReadFile(m[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(caOnly, filepath.Base(m[0])), data, 0o600); err != nil {
		t.Fatal(err)
	}
	other := newTestNode(t)
	mustCLI(t, "ca", "sign", other.request(t, dir, "other", "other-1", other.key), "--site", "lab", "--repo", c.dir, "--keys", caOnly)
	if recs, err := credential.ReadLedger(filepath.Join(caOnly, caLedgerName)); err != nil || len(recs) != 1 || recs[0].NodeID != other.id {
		t.Fatalf("CA-only ledger: %+v %v", recs, err)
	}
}

// TestCaShowAndListStatuses: expired, not-yet-valid and foreign credentials
// (files and ledger records of an issuing service) are reported with their
// reason; a file that is not a credential is refused.
func TestCaShowAndListStatuses(t *testing.T) {
	c := newCARepo(t, "")
	r, err := tufrepo.Open(c.dir, c.keys, "")
	if err != nil {
		t.Fatal(err)
	}
	ca, err := r.SigningCA()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	node := newTestNode(t)
	now := time.Now()
	cases := []struct {
		name       string
		key        ed25519.PrivateKey
		from, till time.Time
		status     string
		reason     string
	}{
		{"valid", ca, now.Add(-time.Hour), now.Add(time.Hour), "valid", ""},
		{"expired", ca, now.Add(-48 * time.Hour), now.Add(-24 * time.Hour), "expired", "expired at"},
		{"future", ca, now.Add(24 * time.Hour), now.Add(48 * time.Hour), "not-yet-valid", "not yet valid"},
		{"foreign", newTestNode(t).key, now.Add(-time.Hour), now.Add(time.Hour), "foreign", "another fleet"},
	}
	ledger := filepath.Join(dir, "service-issued.jsonl")
	for i, tc := range cases {
		cred := &credential.Credential{NodeID: node.id, Hostname: "h-" + tc.name, Site: "s", Serial: uint64(i + 1), NotBefore: tc.from, NotAfter: tc.till}
		path := filepath.Join(dir, tc.name+".credential")
		writeCredential(t, path, cred, tc.key)
		out, err := c.cli(t, "ca", "show", path, "-o", "json")
		var s shownCredential
		if jerr := json.Unmarshal([]byte(out), &s); jerr != nil {
			t.Fatalf("%s: ca show -o json: %v\n%s", tc.name, jerr, out)
		}
		if s.Status != tc.status || !strings.Contains(s.Reason, tc.reason) || s.NodeID != node.id {
			t.Errorf("%s: ca show = %+v", tc.name, s)
		}
		if want := map[bool]int{true: 0, false: 1}[tc.status == "valid"]; exitCode(err) != want {
			t.Errorf("%s: exit %d, want %d", tc.name, exitCode(err), want)
		}
		if err := credential.AppendLedger(ledger, credential.IssuedFrom(cred, now, "token t1")); err != nil {
			t.Fatal(err)
		}
	}
	list := listJSON(t, c, "--ledger", ledger)
	for i, tc := range cases {
		if r := list[uint64(i+1)]; r.Status != tc.status || !strings.Contains(r.Reason, tc.reason) || r.Ledger != ledger {
			t.Errorf("%s: ca list = %+v", tc.name, r)
		}
	}
	// All four are one node's: the newest supersedes the others.
	if list[1].SupersededBy != 4 || list[4].SupersededBy != 0 {
		t.Errorf("superseded: %d %d", list[1].SupersededBy, list[4].SupersededBy)
	}
	// A forged file: a valid credential with its site changed.
	raw, _ := os.ReadFile(filepath.Join(dir, "valid.credential"))
	forged := []byte(strings.Replace(string(raw), "\x01s", "\x01t", 1))
	os.WriteFile(filepath.Join(dir, "forged.credential"), forged, 0o644)
	if out, err := c.cli(t, "ca", "show", filepath.Join(dir, "forged.credential")); exitCode(err) != 1 || !strings.Contains(out, "forged") {
		t.Errorf("forged credential: %v\n%s", err, out)
	}
	os.WriteFile(filepath.Join(dir, "junk"), []byte("hello"), 0o644)
	if _, err := c.cli(t, "ca", "show", filepath.Join(dir, "junk")); err == nil || !strings.Contains(err.Error(), "not a node credential") {
		t.Errorf("ca show junk: %v", err)
	}
	if _, err := c.cli(t, "ca", "show", "nosuch"); err == nil || !strings.Contains(err.Error(), "no credential for that node") {
		t.Errorf("ca show of an unknown name: %v", err)
	}
	if _, err := c.cli(t, "ca", "list", "--ledger", filepath.Join(dir, "nope.jsonl")); err == nil || !strings.Contains(err.Error(), "nope.jsonl") {
		t.Errorf("ca list with a missing --ledger: %v", err)
	}
}

// TestCaIssuersAndRotation: an issuer created for a site signs valid
// credentials there and out-of-scope ones elsewhere; retiring it makes
// them untrusted. A CA rotation keeps old credentials valid until the old
// key is removed, and new ones are signed by the new key.
func TestCaIssuersAndRotation(t *testing.T) {
	c := newCARepo(t, "")
	svc := filepath.Join(t.TempDir(), "svc-keys")
	t.Setenv("PR_TEST_SVC_PASS", "service pw")
	out := c.must(t, "ca", "issuer", "create", "--name", "berlin-1", "--sites", "berlin", "--valid", "180d", "--out", svc, "--issuer-passphrase-env", "PR_TEST_SVC_PASS", "-o", "json")
	var created struct {
		Signer  string `json:"signer"`
		KeyFile string `json:"key_file"`
	}
	if err := json.Unmarshal([]byte(out), &created); err != nil || created.KeyFile == "" {
		t.Fatalf("issuer create: %v\n%s", err, out)
	}
	k, err := tufrepo.ReadKeyFile(created.KeyFile, []byte("service pw"), true)
	if err != nil || k.Role != tufrepo.RoleFleetIssuer {
		t.Fatalf("issuer key file: %+v %v", k, err)
	}
	if _, err := c.cli(t, "ca", "issuer", "create", "--name", "berlin-1", "--out", svc); err == nil || !strings.Contains(err.Error(), "berlin-1") {
		t.Errorf("second issuer with the same name: %v", err)
	}
	if _, err := c.cli(t, "ca", "issuer", "create", "--name", "x", "--out", filepath.Join(c.dir, "leak")); err == nil || !strings.Contains(err.Error(), "inside repository") {
		t.Errorf("issuer key inside the repository: %v", err)
	}
	dir := t.TempDir()
	node := newTestNode(t)
	now := time.Now()
	inScope := filepath.Join(dir, "berlin.credential")
	writeCredential(t, inScope, &credential.Credential{NodeID: node.id, Site: "berlin", Serial: 1, NotBefore: now, NotAfter: now.Add(time.Hour)}, k.Private)
	outScope := filepath.Join(dir, "paris.credential")
	writeCredential(t, outScope, &credential.Credential{NodeID: node.id, Site: "paris", Serial: 2, NotBefore: now, NotAfter: now.Add(time.Hour)}, k.Private)
	if out, err := c.cli(t, "ca", "show", inScope); err != nil || !strings.Contains(out, `issuer "berlin-1"`) {
		t.Errorf("issuer's credential: %v\n%s", err, out)
	}
	if out, err := c.cli(t, "ca", "show", outScope); exitCode(err) != 1 || !strings.Contains(out, "out-of-scope") {
		t.Errorf("issuer's credential for another site: %v\n%s", err, out)
	}

	// Rotation: the old CA's credential stays valid, new ones use the new key.
	usb := t.TempDir()
	oldNode := newTestNode(t)
	c.must(t, "ca", "sign", oldNode.request(t, usb, "old", "old-1", oldNode.key), "--site", "berlin")
	oldCred := filepath.Join(usb, oldNode.id+".credential")
	oldSigner := readCredential(t, oldCred).Signer.String()
	out = c.must(t, "ca", "rotate", "-o", "json")
	var rot struct {
		Signer string `json:"ca_signer"`
	}
	if err := json.Unmarshal([]byte(out), &rot); err != nil || rot.Signer == "" || rot.Signer == oldSigner {
		t.Fatalf("ca rotate: %v\n%s", err, out)
	}
	newNode := newTestNode(t)
	c.must(t, "ca", "sign", newNode.request(t, usb, "new", "new-1", newNode.key), "--site", "berlin")
	if s := readCredential(t, filepath.Join(usb, newNode.id+".credential")).Signer.String(); s != rot.Signer {
		t.Errorf("after rotation signed by %s, want the new key %s", s, rot.Signer)
	}
	if _, err := c.cli(t, "ca", "show", oldCred); err != nil {
		t.Errorf("old CA's credential during the rotation: %v", err)
	}
	if _, err := c.cli(t, "ca", "show", inScope); err != nil {
		t.Errorf("issuer's credential after the rotation: %v", err)
	}
	if l := listJSON(t, c, "--signer", oldSigner); len(l) != 1 {
		t.Errorf("ca list --signer OLD: %d records, want the one credential left to re-sign", len(l))
	}
	c.must(t, "ca", "remove-key", oldSigner)
	if out, err := c.cli(t, "ca", "show", oldCred); exitCode(err) != 1 || !strings.Contains(out, "foreign") {
		t.Errorf("old CA's credential after its key was removed: %v\n%s", err, out)
	}
	if _, err := c.cli(t, "ca", "show", inScope); err != nil {
		t.Errorf("issuer's credential after the old CA key left (re-signed issuer): %v", err)
	}
	if _, err := c.cli(t, "ca", "remove-key", rot.Signer); err == nil || !strings.Contains(err.Error(), "only one") {
		t.Errorf("removing the last CA key: %v", err)
	}

	c.must(t, "ca", "issuer", "retire", "berlin-1")
	if out, err := c.cli(t, "ca", "show", inScope); exitCode(err) != 1 || !strings.Contains(out, "untrusted") || !strings.Contains(out, "retired") {
		t.Errorf("retired issuer's credential: %v\n%s", err, out)
	}
	out = c.must(t, "ca", "issuer", "list")
	if !strings.Contains(out, "berlin-1") || !strings.Contains(out, "retired") || !strings.Contains(out, rot.Signer) {
		t.Errorf("issuer list:\n%s", out)
	}
	if _, err := c.cli(t, "ca", "issuer", "retire", "nope"); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("retire an unknown issuer: %v", err)
	}
}

func TestCaCLIErrors(t *testing.T) {
	base := t.TempDir()
	dir, keys := filepath.Join(base, "repo"), filepath.Join(base, "keys")
	mustCLI(t, "repo", "init", "--no-fleet-ca", "--repo", dir, "--keys", keys)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"sign before ca init", []string{"ca", "sign", "x.request", "--site", "s", "--repo", dir, "--keys", keys}, "ca init"},
		{"list before ca init", []string{"ca", "list", "--repo", dir, "--keys", keys}, "ca init"},
		{"init without keys", []string{"ca", "init", "--repo", dir}, "--keys"},
		{"revoke both", []string{"ca", "revoke", "h", "--serial", "3", "--repo", dir, "--keys", keys}, "one of them"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := runCLI(t, context.Background(), tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
	c := &caRepo{dir: dir, keys: keys, rk: []string{"--repo", dir, "--keys", keys}}
	c.must(t, "ca", "init")
	if _, err := c.cli(t, "ca", "list"); err != nil {
		t.Errorf("ca list of an empty ledger: %v", err)
	}
	if _, err := c.cli(t, "ca", "revoke", "h"); err == nil || !strings.Contains(err.Error(), "--reason") {
		t.Errorf("revoke without a reason: %v", err)
	}
}
