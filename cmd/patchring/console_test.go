package main

import (
	"context"
	"crypto/ed25519"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchring/patchring/console/report"
	"github.com/patchring/patchring/console/server"
	"github.com/patchring/patchring/console/store"
	"github.com/patchring/patchring/internal/testutil"
)

func runCLIWithInput(t *testing.T, in string, args ...string) (string, error) {
	t.Helper()
	out := &testutil.SyncBuffer{}
	root := newRootCmd(&app{Out: out, Err: out, In: strings.NewReader(in)})
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

// TestConsoleCLI: an account and a token made with the CLI, a console on
// the same database, and `patchring fleet --console` reading its overview.
func TestConsoleCLI(t *testing.T) {
	data := t.TempDir()
	if out, err := runCLIWithInput(t, "a-long-password-1\n", "console", "account", "add", "ann", "--role", "operator", "--data", data); err != nil || !strings.Contains(out, "account ann (operator) saved") {
		t.Fatalf("account add: %v\n%s", err, out)
	}
	if _, err := runCLIWithInput(t, "short\n", "console", "account", "add", "bob", "--data", data); err == nil {
		t.Fatal("a short password was accepted")
	}
	if _, err := runCLIWithInput(t, "a-long-password-2\n", "console", "account", "add", "ann", "--data", data); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("second add: %v", err)
	}
	tok, err := runCLIWithInput(t, "", "console", "token", "add", "--account", "ann", "--data", data)
	if err != nil || !strings.HasPrefix(tok, "prc_") {
		t.Fatalf("token add: %v %q", err, tok)
	}
	tokFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokFile, []byte(tok), 0o600)
	if _, err := runCLIWithInput(t, "", "console", "serve", "--data", data, "--listen", "0.0.0.0:0"); err == nil || !strings.Contains(err.Error(), "not loopback") {
		t.Fatalf("serve beyond loopback without TLS: %v", err)
	}

	st, err := store.OpenSQLite(t.Context(), data)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv := httptest.NewServer(server.New(server.Config{Store: st, Logger: testutil.Logger(t)}))
	t.Cleanup(srv.Close)
	seed := make([]byte, ed25519.SeedSize)
	key := ed25519.NewKeyFromSeed(seed)
	pkgs := []report.Package{{Name: "bash", Version: "5.2", Arch: "amd64"}}
	env, err := report.Sign(report.Record{Node: report.NodeID(key.Public().(ed25519.PublicKey)), Seq: 1, Time: time.Now(), Site: "oslo", Hostname: "h1",
		Ring: "pilot", State: "idle", Reboot: report.Reboot{State: report.RebootNone}, Packages: pkgs, PackagesDigest: report.DigestPackages(pkgs)}, key)
	if err != nil {
		t.Fatal(err)
	}
	s := server.New(server.Config{Store: st})
	if res, err := s.Ingest(t.Context(), server.IngestRequest{Records: []report.Envelope{env}}); err != nil || res.Results[0].Status != "stored" {
		t.Fatalf("ingest: %+v %v", res, err)
	}

	out, err := runCLIWithInput(t, "", "fleet", "--console", srv.URL, "--console-token-file", tokFile)
	if err != nil || !strings.Contains(out, "pilot") || !strings.Contains(out, "oslo") || !strings.Contains(out, "100%") {
		t.Fatalf("fleet --console: %v\n%s", err, out)
	}
	t.Setenv("PATCHRING_CONSOLE_TOKEN", "")
	if _, err := runCLIWithInput(t, "", "fleet", "--console", srv.URL); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("fleet --console without a token: %v", err)
	}
}
