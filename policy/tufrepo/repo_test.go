package tufrepo

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// newRepo initializes a repository in a temp dir.
func newRepo(t testing.TB, opts Options) (*Repo, string, string) {
	t.Helper()
	base := t.TempDir()
	dir, keys := filepath.Join(base, "repo"), filepath.Join(base, "keys")
	r, err := Init(dir, keys, opts)
	if err != nil {
		t.Fatalf("Init: %v", err)
	}
	return r, dir, keys
}

func readRoot(t testing.TB, dir string, version int64) *metadata.Metadata[metadata.RootType] {
	t.Helper()
	md, err := (&metadata.Metadata[metadata.RootType]{}).FromFile(filepath.Join(dir, metadataDir, fmt.Sprintf("%d.root.json", version)))
	if err != nil {
		t.Fatal(err)
	}
	return md
}

func TestInit(t *testing.T) {
	r, dir, keys := newRepo(t, Options{Thresholds: map[string]int{RoleRoot: 2, RoleTargets: 2}})
	if got, want := r.Versions(), (Versions{Root: 1, Targets: 1, Snapshot: 1, Timestamp: 1}); got != want {
		t.Errorf("versions = %+v, want %+v", got, want)
	}
	for _, name := range []string{"1.root.json", "root.json", "1.targets.json", "targets.json", "1.snapshot.json", "snapshot.json", "timestamp.json"} {
		if _, err := os.Stat(filepath.Join(dir, metadataDir, name)); err != nil {
			t.Errorf("metadata/%s: %v", name, err)
		}
	}
	root := readRoot(t, dir, 1)
	if !root.Signed.ConsistentSnapshot {
		t.Error("consistent snapshots are off")
	}
	if err := root.VerifyDelegate(RoleRoot, root); err != nil {
		t.Errorf("root does not verify: %v", err)
	}
	for role, want := range map[string]int{RoleRoot: 2, RoleTargets: 2, RoleSnapshot: 1, RoleTimestamp: 1} {
		rr := root.Signed.Roles[role]
		if rr.Threshold != want || len(rr.KeyIDs) != want {
			t.Errorf("%s: threshold %d with %d keys, want %d", role, rr.Threshold, len(rr.KeyIDs), want)
		}
	}
	fi, err := os.Stat(keys)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("keys dir mode = %v (%v), want 0700", fi.Mode().Perm(), err)
	}
	files, _ := filepath.Glob(filepath.Join(keys, "*.json"))
	if len(files) != 6 {
		t.Errorf("%d key files, want 6", len(files))
	}
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode = %v, want 0600", f, fi.Mode().Perm())
		}
	}
	// The default expiries apply.
	st := r.Status(0)
	for _, rs := range st.Roles {
		if d := rs.Expires.Sub(st.Now); d > DefaultExpiries[rs.Role] || d < DefaultExpiries[rs.Role]-time.Minute {
			t.Errorf("%s expires in %s, want about %s", rs.Role, d, DefaultExpiries[rs.Role])
		}
	}
	// Reopening reads the same state.
	r2, err := Open(dir, keys, "")
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if r2.Versions() != r.Versions() {
		t.Errorf("reopened versions %+v, want %+v", r2.Versions(), r.Versions())
	}
}

func TestInitRejects(t *testing.T) {
	base := t.TempDir()
	repo := filepath.Join(base, "repo")
	if err := os.MkdirAll(repo, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(repo, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(repo, "sub"), filepath.Join(base, "link")); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(base, "open")
	if err := os.Mkdir(open, 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		keys string
		opts Options
		want error
	}{
		{"keys inside repo", filepath.Join(repo, "keys"), Options{}, ErrKeysInRepo},
		{"keys are the repo", repo, Options{}, ErrKeysInRepo},
		{"keys through a symlink into the repo", filepath.Join(base, "link", "keys"), Options{}, ErrKeysInRepo},
		{"keys dir readable by others", open, Options{}, ErrKeyPermissions},
		{"unknown role threshold", filepath.Join(base, "k1"), Options{Thresholds: map[string]int{"mirror": 1}}, ErrUnknownRole},
		{"zero threshold", filepath.Join(base, "k2"), Options{Thresholds: map[string]int{RoleRoot: 0}}, nil},
		{"tiny expiry", filepath.Join(base, "k3"), Options{Expiries: map[string]time.Duration{RoleTimestamp: time.Second}}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Init(repo, tc.keys, tc.opts)
			if err == nil {
				t.Fatal("Init succeeded")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
			if _, err := os.Stat(filepath.Join(repo, metadataDir, "1.root.json")); err == nil {
				t.Error("a failed Init left metadata behind")
			}
		})
	}
	t.Run("already initialized", func(t *testing.T) {
		_, dir, keys := newRepo(t, Options{})
		if _, err := Init(dir, keys+"2", Options{}); !errors.Is(err, ErrExists) {
			t.Errorf("second Init: err = %v, want ErrExists", err)
		}
	})
	t.Run("open not a repo", func(t *testing.T) {
		if _, err := Open(t.TempDir(), "", ""); !errors.Is(err, ErrNotRepo) {
			t.Errorf("err = %v, want ErrNotRepo", err)
		}
	})
}

func TestKeyFilePermissions(t *testing.T) {
	_, dir, keys := newRepo(t, Options{})
	files, _ := filepath.Glob(filepath.Join(keys, "targets-*.json"))
	if err := os.Chmod(files[0], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, keys, ""); !errors.Is(err, ErrKeyPermissions) {
		t.Errorf("Open with a world-readable key file: err = %v, want ErrKeyPermissions", err)
	}
}

func TestPassphrase(t *testing.T) {
	defer func(n int) { scryptN = n }(scryptN)
	scryptN = 1 << 10
	r, dir, keys := newRepo(t, Options{Passphrase: "correct horse"})
	files, _ := filepath.Glob(filepath.Join(keys, "*.json"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var kf keyFile
		if err := json.Unmarshal(data, &kf); err != nil {
			t.Fatal(err)
		}
		if kf.Private != "" || kf.Encrypted == nil {
			t.Errorf("%s holds the private key in clear", f)
		}
	}
	before := r.Versions()
	tests := []struct {
		name string
		pass string
		want error
	}{
		{"none", "", ErrPassphraseRequired},
		{"wrong", "wrong horse", ErrBadPassphrase},
		{"right", "correct horse", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Open(dir, keys, tc.pass)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			_, err = r.PublishPolicy([]byte(`{"p":1}`))
			if tc.want == nil {
				if err != nil {
					t.Fatalf("publish: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("publish: err = %v, want %v", err, tc.want)
			}
			if payloads, _ := filepath.Glob(filepath.Join(dir, targetsDir, "*.policy.json")); len(payloads) != 0 {
				t.Errorf("a publish refused for its passphrase wrote %v", payloads)
			}
			r2, err := Open(dir, keys, "")
			if err != nil {
				t.Fatal(err)
			}
			if r2.Versions() != before {
				t.Errorf("a failed publish changed the repository: %+v -> %+v", before, r2.Versions())
			}
		})
	}
}

func TestTargetsPublishAndServe(t *testing.T) {
	r, dir, _ := newRepo(t, Options{})
	src := filepath.Join(t.TempDir(), "tool_1:2.0_amd64.deb")
	payload := bytes.Repeat([]byte("deb"), 5000)
	if err := os.WriteFile(src, payload, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := r.AddCatalogFile(src, CatalogMeta{Package: "tool", Version: "1:2.0"}); err == nil {
		t.Error("AddCatalogFile accepted a file name with ':'")
	}
	src2 := filepath.Join(filepath.Dir(src), "tool_2.0_amd64.deb")
	if err := os.Rename(src, src2); err != nil {
		t.Fatal(err)
	}
	name, err := r.AddCatalogFile(src2, CatalogMeta{Package: "tool", Version: "1:2.0", Reboot: true, CVEs: []string{"CVE-2025-0001"}})
	if err != nil {
		t.Fatalf("AddCatalogFile: %v", err)
	}
	if name != "catalog/tool/1_2.0/tool_2.0_amd64.deb" {
		t.Errorf("catalog target name = %s", name)
	}
	v, err := r.PublishPolicy([]byte(`{"rings":[]}`))
	if err != nil {
		t.Fatalf("PublishPolicy: %v", err)
	}
	if v != 2 || r.Versions() != (Versions{Root: 1, Targets: 2, Snapshot: 2, Timestamp: 2}) {
		t.Errorf("PublishPolicy = %d, versions %+v", v, r.Versions())
	}
	list := r.ListTargets()
	if len(list) != 2 || list[0].Name != name || list[1].Name != PolicyTarget {
		t.Fatalf("targets = %+v", list)
	}
	if c := list[0].Catalog; c == nil || c.Version != "1:2.0" || !c.Reboot || c.CVEs[0] != "CVE-2025-0001" {
		t.Errorf("catalog metadata = %+v", c)
	}

	srv := httptest.NewServer(Handler(dir))
	t.Cleanup(srv.Close)
	get := func(p string) (int, []byte) {
		t.Helper()
		resp, err := srv.Client().Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	payloadURL := "/targets/catalog/tool/1_2.0/" + list[0].SHA256 + ".tool_2.0_amd64.deb"
	tests := []struct {
		path string
		code int
	}{
		{"/metadata/timestamp.json", 200},
		{"/metadata/2.snapshot.json", 200},
		{"/metadata/1.root.json", 200},
		{payloadURL, 200},
		{"/metadata/", 404},
		{"/targets/", 404},
		{"/" + configFile, 404},
		{"/metadata/.tmp-x", 404},
		{"/", 404},
	}
	for _, tc := range tests {
		if code, _ := get(tc.path); code != tc.code {
			t.Errorf("GET %s = %d, want %d", tc.path, code, tc.code)
		}
	}
	if _, body := get(payloadURL); !bytes.Equal(body, payload) {
		t.Error("served payload differs")
	}
	for p, want := range map[string]string{
		"/metadata/timestamp.json":  "no-cache",
		"/metadata/1.root.json":     "no-cache",
		"/metadata/99.root.json":    "no-store", // a cached 404 would hide a rotation
		"/metadata/2.snapshot.json": "immutable",
		payloadURL:                  "immutable",
	} {
		resp, err := srv.Client().Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, want) {
			t.Errorf("GET %s: Cache-Control %q, want %s", p, cc, want)
		}
	}

	// Removing the target removes its payload once published.
	if err := r.RemoveTarget(name); err != nil {
		t.Fatal(err)
	}
	if err := r.RemoveTarget(name); !errors.Is(err, ErrNoSuchTarget) {
		t.Errorf("second RemoveTarget: err = %v", err)
	}
	if _, err := r.Publish(); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(payloadURL); code != 404 {
		t.Errorf("removed payload still served (%d)", code)
	}
	if len(r.ListTargets()) != 1 {
		t.Errorf("targets after removal = %+v", r.ListTargets())
	}
}

func TestRefreshResigns(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	r, _, _ := newRepo(t, Options{Now: clock})
	v, err := r.Refresh()
	if err != nil {
		t.Fatal(err)
	}
	if v != (Versions{Root: 1, Targets: 1, Snapshot: 2, Timestamp: 2}) {
		t.Errorf("plain refresh: versions %+v, want only snapshot and timestamp bumped", v)
	}
	// 60 days on, targets (90d) has less than half its life left.
	now = now.Add(60 * 24 * time.Hour)
	if v, err = r.Refresh(); err != nil {
		t.Fatal(err)
	}
	if v.Targets != 2 || v.Root != 1 {
		t.Errorf("refresh at 60 days: versions %+v, want targets bumped", v)
	}
	// 200 days on, root (365d) is past half its life: a new root version.
	now = now.Add(140 * 24 * time.Hour)
	if v, err = r.Refresh(); err != nil {
		t.Fatal(err)
	}
	if v.Root != 2 {
		t.Errorf("refresh at 200 days: versions %+v, want root 2", v)
	}
	st := r.Status(0)
	for _, rs := range st.Roles {
		if rs.Expired || !rs.Expires.After(now) {
			t.Errorf("%s expires %s, before the refresh time %s", rs.Role, rs.Expires, now)
		}
	}
}

func TestRotateRootKey(t *testing.T) {
	r, dir, keys := newRepo(t, Options{Thresholds: map[string]int{RoleRoot: 2}})
	old := readRoot(t, dir, 1)
	ids, err := r.RotateKey(RoleRoot)
	if err != nil {
		t.Fatalf("RotateKey: %v", err)
	}
	if len(ids) != 2 {
		t.Errorf("%d new root keys, want 2 (the threshold)", len(ids))
	}
	newRoot := readRoot(t, dir, 2)
	// Old agents check the new root against the old one, then itself.
	if err := old.VerifyDelegate(RoleRoot, newRoot); err != nil {
		t.Errorf("root 2 not signed by root 1's keys: %v", err)
	}
	if err := newRoot.VerifyDelegate(RoleRoot, newRoot); err != nil {
		t.Errorf("root 2 not signed by its own keys: %v", err)
	}
	for _, id := range old.Signed.Roles[RoleRoot].KeyIDs {
		if slices.Contains(newRoot.Signed.Roles[RoleRoot].KeyIDs, id) {
			t.Errorf("old key %s still trusted for root", id)
		}
		retired, _ := filepath.Glob(filepath.Join(keys, retiredDir, "root-"+id+".json"))
		if len(retired) != 1 {
			t.Errorf("old key %s not moved to retired/", id)
		}
	}
	if v := r.Versions(); v.Targets != 2 || v.Snapshot != 2 || v.Timestamp != 2 {
		t.Errorf("versions after rotation: %+v", v)
	}
	// The repository reopens with the new keys and can publish.
	r2, err := Open(dir, keys, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r2.Publish(); err != nil {
		t.Errorf("publish after rotation: %v", err)
	}
}

func TestAddRemoveKey(t *testing.T) {
	r, dir, _ := newRepo(t, Options{})
	targetsKey := readRoot(t, dir, 1).Signed.Roles[RoleTargets].KeyIDs[0]
	if err := r.RemoveKey(RoleTargets, targetsKey); !errors.Is(err, ErrThresholdTooHigh) {
		t.Errorf("removing the only key: err = %v, want ErrThresholdTooHigh", err)
	}
	id, err := r.AddKey(RoleTargets)
	if err != nil {
		t.Fatalf("AddKey: %v", err)
	}
	root := readRoot(t, dir, 2)
	if !slices.Contains(root.Signed.Roles[RoleTargets].KeyIDs, id) {
		t.Errorf("root 2 does not list the new key %s", id)
	}
	if err := r.RemoveKey(RoleTargets, targetsKey[:6]); !errors.Is(err, ErrNoSuchKey) {
		t.Errorf("removing by a 6-character prefix: err = %v, want ErrNoSuchKey", err)
	}
	if err := r.RemoveKey(RoleTargets, targetsKey[:16]); err != nil {
		t.Fatalf("RemoveKey: %v", err)
	}
	root = readRoot(t, dir, 3)
	if got := root.Signed.Roles[RoleTargets].KeyIDs; len(got) != 1 || got[0] != id {
		t.Errorf("targets keys after removal = %v, want [%s]", got, id)
	}
	if err := r.RemoveKey(RoleTargets, "nope"); !errors.Is(err, ErrNoSuchKey) {
		t.Errorf("removing an unknown key: err = %v", err)
	}
	if _, err := r.AddKey("mirror"); !errors.Is(err, ErrUnknownRole) {
		t.Errorf("AddKey(mirror): err = %v", err)
	}
}

func TestThresholdNeedsKeys(t *testing.T) {
	_, dir, keys := newRepo(t, Options{Thresholds: map[string]int{RoleTargets: 2}})
	files, _ := filepath.Glob(filepath.Join(keys, "targets-*.json"))
	if err := os.Rename(files[0], filepath.Join(t.TempDir(), "away.json")); err != nil {
		t.Fatal(err)
	}
	r, err := Open(dir, keys, "")
	if err != nil {
		t.Fatal(err)
	}
	before := r.Versions()
	if _, err := r.PublishPolicy([]byte(`{}`)); !errors.Is(err, ErrNotEnoughKeys) {
		t.Fatalf("publish with 1 of 2 targets keys: err = %v, want ErrNotEnoughKeys", err)
	}
	st := r.Status(0)
	for _, rs := range st.Roles {
		if rs.Role == RoleTargets && rs.Signable {
			t.Error("status says targets is signable with 1 of 2 keys")
		}
	}
	r2, _ := Open(dir, keys, "")
	if r2.Versions() != before {
		t.Errorf("failed publish changed versions %+v -> %+v", before, r2.Versions())
	}
}

func TestConcurrentAdmins(t *testing.T) {
	_, dir, keys := newRepo(t, Options{})
	a, err := Open(dir, keys, "")
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(dir, keys, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.PublishPolicy([]byte(`{"a":1}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.PublishPolicy([]byte(`{"b":1}`)); !errors.Is(err, ErrChanged) {
		t.Errorf("stale publish: err = %v, want ErrChanged", err)
	}
	if err := os.WriteFile(filepath.Join(dir, lockFile), []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, _ := Open(dir, keys, "")
	if _, err := c.Publish(); !errors.Is(err, ErrLocked) {
		t.Errorf("publish while locked: err = %v, want ErrLocked", err)
	}
}

func TestStatusExpiringSoon(t *testing.T) {
	r, _, _ := newRepo(t, Options{})
	st := r.Status(2 * 24 * time.Hour)
	if !slices.Equal(st.ExpiringSoon, []string{RoleTimestamp}) {
		t.Errorf("expiring within 2 days = %v, want [timestamp]", st.ExpiringSoon)
	}
	st = r.Status(10 * 24 * time.Hour)
	if !slices.Equal(st.ExpiringSoon, []string{RoleSnapshot, RoleTimestamp}) {
		t.Errorf("expiring within 10 days = %v, want [snapshot timestamp]", st.ExpiringSoon)
	}
	for _, rs := range st.Roles {
		if !rs.Signable || len(rs.Keys) != 1 || !rs.Keys[0].Present {
			t.Errorf("%s: %+v", rs.Role, rs)
		}
	}
}

func TestCatalogMetaValidate(t *testing.T) {
	tests := []struct {
		name string
		m    CatalogMeta
		want []string // substrings of the error; none means valid
	}{
		{"minimal", CatalogMeta{Package: "openssl", Version: "3.0.11-1~deb12u2"}, nil},
		{"full", CatalogMeta{Package: "zoom", Version: "1:6.1.0", AppliesTo: []string{"debian-12"}, Severity: "critical", Classification: "security", CVEs: []string{"CVE-2024-45678"}}, nil},
		{"all wrong at once", CatalogMeta{Package: "../x", Version: "", Severity: "urgent", Classification: "Security Updates", CVEs: []string{"cve-1"}, AppliesTo: []string{""}},
			[]string{"package", "version", "severity", "classification", "cves[0]", "applies_to[0]"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.m.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Errorf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate accepted bad metadata")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %s", err, w)
				}
			}
		})
	}
}

func TestHandlerMethods(t *testing.T) {
	_, dir, _ := newRepo(t, Options{})
	srv := httptest.NewServer(Handler(dir))
	t.Cleanup(srv.Close)
	resp, err := srv.Client().Post(srv.URL+"/metadata/timestamp.json", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST = %d, want 405", resp.StatusCode)
	}
}

func FuzzReadKeyFile(f *testing.F) {
	f.Add([]byte(`{"format":1,"role":"root","keyid":"x","keytype":"ed25519","scheme":"ed25519","public":"00"}`))
	f.Add([]byte(`{"format":1,"role":"root","encrypted":{"kdf":"scrypt","n":1048576,"r":8,"p":1}}`))
	f.Add([]byte(`not json`))
	k, err := generateKey(RoleRoot, time.Now())
	if err != nil {
		f.Fatal(err)
	}
	dir := f.TempDir()
	if err := writeKeyFile(dir, k, nil); err != nil {
		f.Fatal(err)
	}
	good, err := os.ReadFile(k.Path)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "k.json")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		key, err := ReadKeyFile(p, []byte("pass"), true)
		if err == nil && (key.Private == nil || !key.Private.Public().(ed25519.PublicKey).Equal(key.Public)) {
			t.Errorf("accepted a key file whose private key does not match")
		}
	})
}
