package enroll

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/patchring/patchring/daemon/config"
	"github.com/patchring/patchring/policy/credential"
	penroll "github.com/patchring/patchring/policy/enroll"
)

func TestJoin(t *testing.T) {
	f := newFleet(t, 30*24*time.Hour)
	tok := f.token(t, "berlin", []string{"lab"}, 1)
	dir := t.TempDir()
	state, cfgFile := filepath.Join(dir, "state"), filepath.Join(dir, "etc", "patchringd.yaml")
	os.MkdirAll(filepath.Dir(cfgFile), 0o755)
	// An existing config keeps its settings; a self-declared site is replaced.
	os.WriteFile(cfgFile, []byte("log_level: debug\nsite: wrong\n"), 0o644)
	node := newTestNode(t)
	j, err := Join(context.Background(), JoinConfig{Token: tok, Node: node, StateDir: state, ConfigFile: cfgFile})
	if err != nil {
		t.Fatal(err)
	}
	if j.Credential.Site != "berlin" || !slices.Equal(j.Credential.Tags, []string{"lab"}) || j.RootFile != filepath.Join(dir, "etc", "root.json") {
		t.Fatalf("joined %+v %s", j, j.Credential)
	}
	conf := config.Default()
	if err := config.Load(cfgFile, &conf); err != nil {
		t.Fatal(err)
	}
	if conf.Policy.Origin != f.origin || conf.Policy.RootFile != j.RootFile || conf.Site != "berlin" || conf.LogLevel != "debug" {
		t.Fatalf("config %+v", conf)
	}
	if root, _ := os.ReadFile(j.RootFile); string(root) != string(f.root) {
		t.Fatal("root.json differs")
	}
	cred, _, err := ReadCredential(state)
	if err != nil || cred.Serial != j.Credential.Serial {
		t.Fatalf("node.credential: %v", err)
	}
	st, err := ReadState(state)
	if err != nil || st.Service != f.service || st.TokenID != tok.ID {
		t.Fatalf("state %+v %v", st, err)
	}
	assertNoLeftovers(t, dir)
}

// TestJoinFailsLeavingNothing: a service that is down, a refused token, a
// write that fails: no file of the enrollment appears.
func TestJoinFailsLeavingNothing(t *testing.T) {
	f := newFleet(t, 30*24*time.Hour)
	used := f.token(t, "berlin", nil, 1)
	if _, err := Join(context.Background(), JoinConfig{Token: used, Node: newTestNode(t), StateDir: t.TempDir(), ConfigFile: filepath.Join(t.TempDir(), "c.yaml")}); err != nil {
		t.Fatal(err)
	}
	down := *f.token(t, "berlin", nil, 1)
	down.Service = "http://127.0.0.1:1"
	other := newFleet(t, time.Hour) // a service of another fleet
	foreign := *f.token(t, "berlin", nil, 1)
	foreign.Service = other.service
	// A service of another fleet that takes a token naming this fleet's
	// root and origin (a mistake or an impostor): its credential does not
	// verify in this fleet's document.
	impostor := newFleet(t, time.Hour)
	wrongOrigin := *impostor.token(t, "berlin", nil, 1)
	wrongOrigin.Origin, wrongOrigin.Root = f.origin, f.root
	wrongOrigin.ID = "00000000000000aa"
	if err := impostor.store.Add(penroll.TokenRecord{ID: wrongOrigin.ID, SecretHash: penroll.HashSecret(wrongOrigin.Secret), Fleet: wrongOrigin.FleetID(),
		Site: "berlin", Uses: 1, UsesLeft: 1, Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name    string
		tok     *penroll.Token
		cfgFile func(dir string) string
		want    string
		is      error
	}{
		{"service down", &down, nil, "connection refused", nil},
		{"token used up", used, nil, "used up", penroll.ErrTokenUsedUp},
		{"token of another fleet", &foreign, nil, "another fleet", penroll.ErrTokenForeign},
		{"credential of another fleet", &wrongOrigin, nil, "does not verify", nil},
		{"config cannot be written", f.token(t, "berlin", nil, 1), func(dir string) string {
			blocker := filepath.Join(dir, "etc")
			os.WriteFile(blocker, []byte("a file where the config dir should be"), 0o644)
			return filepath.Join(blocker, "patchringd.yaml")
		}, "not a directory", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfgFile := filepath.Join(dir, "patchringd.yaml")
			if tc.cfgFile != nil {
				cfgFile = tc.cfgFile(dir)
			}
			state := filepath.Join(dir, "state")
			_, err := Join(context.Background(), JoinConfig{Token: tc.tok, Node: newTestNode(t), StateDir: state, ConfigFile: cfgFile})
			if err == nil || !strings.Contains(err.Error(), tc.want) || (tc.is != nil && !errors.Is(err, tc.is)) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			for _, name := range []string{credential.FileName, StateFile} {
				if _, err := os.Stat(filepath.Join(state, name)); err == nil {
					t.Errorf("%s written after a failed enrollment", name)
				}
			}
			if _, err := os.Stat(filepath.Join(dir, "patchringd.yaml")); err == nil {
				t.Error("config written after a failed enrollment")
			}
			if _, err := os.Stat(filepath.Join(dir, "root.json")); err == nil {
				t.Error("root.json written after a failed enrollment")
			}
			assertNoLeftovers(t, dir)
		})
	}
}

func assertNoLeftovers(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && (strings.HasSuffix(p, stageSuffix) || strings.HasPrefix(d.Name(), ".enroll-")) {
			t.Errorf("left over: %s", p)
		}
		return nil
	})
}

func TestOfflineRequestAndInstall(t *testing.T) {
	f := newFleet(t, time.Hour)
	node := newTestNode(t)
	dir := t.TempDir()
	reqFile := filepath.Join(dir, "req.json")
	if _, err := WriteRequest(reqFile, node, time.Now()); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(reqFile)
	req, err := credential.ParseRequest(raw)
	if err != nil || req.NodeID != node.ID || req.Nonce != "" {
		t.Fatalf("request %+v %v", req, err)
	}
	// The admin signs it offline with the CA key.
	ca, _ := f.repo.FleetKey("fleet-ca")
	sign := func(nodeID string, notAfter time.Time) []byte {
		c := &credential.Credential{NodeID: nodeID, Hostname: req.Hostname, Site: "depot", Tags: []string{"offline"}, Serial: 42,
			NotBefore: time.Now().Add(-time.Minute), NotAfter: notAfter}
		if err := c.Sign(ca); err != nil {
			t.Fatal(err)
		}
		b, err := c.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tr, err := repoFleet{f.repoDir}.Fleet(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	if _, _, err := InstallCredential(state, sign(newTestNode(t).ID, time.Now().Add(time.Hour)), node.ID, tr, time.Now()); !errors.Is(err, credential.ErrWrongNode) {
		t.Fatalf("another node's credential: %v", err)
	}
	if _, _, err := InstallCredential(state, sign(node.ID, time.Now().Add(-time.Second)), node.ID, nil, time.Now()); !errors.Is(err, credential.ErrExpired) {
		t.Fatalf("expired credential: %v", err)
	}
	if HasCredential(state) {
		t.Fatal("a refused credential was installed")
	}
	c, verified, err := InstallCredential(state, sign(node.ID, time.Now().Add(time.Hour)), node.ID, tr, time.Now())
	if err != nil || !verified || c.Site != "depot" {
		t.Fatalf("install: %v %v", c, err)
	}
	f.revoke(t, node.ID)
	tr, _ = repoFleet{f.repoDir}.Fleet(context.Background())
	if _, _, err := InstallCredential(state, sign(node.ID, time.Now().Add(2*time.Hour)), node.ID, tr, time.Now()); !errors.Is(err, credential.ErrRevoked) {
		t.Fatalf("revoked: %v", err)
	}
}
