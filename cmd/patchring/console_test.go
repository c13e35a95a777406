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
	if _, err := runCLIWithInput(t, "", "console", "serve", "--data", data, "--issuer-key", filepath.Join(data, "none.json")); err == nil || !strings.Contains(err.Error(), "--issuer-key needs the fleet document") {
		t.Fatalf("serve with an issuing key but no fleet document: %v", err)
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
	nodeID := report.NodeID(key.Public().(ed25519.PublicKey))
	vulns := []report.Vuln{{ID: "CVE-2026-4242", Package: "bash", Version: "5.2", FixedIn: "5.2.1", Severity: report.SeverityCritical, KEV: true, Fix: "available"}}
	devs := []report.Device{{MAC: "00:1b:a9:00:00:01", Vendor: "Brother Industries, Ltd.", Addrs: []string{"10.1.2.3"}, Hostname: "printer",
		FirstSeen: time.Now().Add(-time.Hour), LastSeen: time.Now(), SeenBy: []string{nodeID}}}
	env, err := report.Sign(report.Record{Node: nodeID, Seq: 1, Time: time.Now(), Site: "oslo", Hostname: "h1",
		Ring: "pilot", State: "idle", Reboot: report.Reboot{State: report.RebootNone}, Packages: pkgs, PackagesDigest: report.DigestPackages(pkgs),
		Vulns: vulns, VulnsDigest: report.DigestVulns(vulns), Unmanaged: devs, UnmanagedDigest: report.DigestDevices(devs)}, key)
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
	out, err = runCLIWithInput(t, "", "fleet", "--console", srv.URL, "--console-token-file", tokFile, "vulns")
	if err != nil || !strings.Contains(out, "CVE-2026-4242") || !strings.Contains(out, "oslo (1)") || strings.Contains(out, "exposed node") {
		t.Fatalf("fleet --console vulns: %v\n%s", err, out)
	}
	out, err = runCLIWithInput(t, "", "fleet", "--console", srv.URL, "--console-token-file", tokFile, "vulns", "--cve", "cve-2026-4242")
	if err != nil || !strings.Contains(out, "1 exposed node(s)") || !strings.Contains(out, "h1") || !strings.Contains(out, "5.2.1") {
		t.Fatalf("fleet --console vulns --cve: %v\n%s", err, out)
	}
	if out, err = runCLIWithInput(t, "", "fleet", "--console", srv.URL, "--console-token-file", tokFile, "vulns", "--package", "zsh"); err != nil || strings.Contains(out, "CVE-2026-4242") {
		t.Fatalf("fleet --console vulns --package zsh: %v\n%s", err, out)
	}
	out, err = runCLIWithInput(t, "", "fleet", "--console", srv.URL, "--console-token-file", tokFile, "unmanaged")
	if err != nil || !strings.Contains(out, "00:1b:a9:00:00:01") || !strings.Contains(out, "oslo") || !strings.Contains(out, "h1") {
		t.Fatalf("fleet --console unmanaged: %v\n%s", err, out)
	}
	if _, err := runCLIWithInput(t, "", "fleet", "vulns"); err == nil || !strings.Contains(err.Error(), "--console") {
		t.Fatalf("fleet vulns without a console: %v", err)
	}
	t.Setenv("PATCHRING_CONSOLE_TOKEN", "")
	if _, err := runCLIWithInput(t, "", "fleet", "--console", srv.URL); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("fleet --console without a token: %v", err)
	}
}
