package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patchring/patchring/internal/testutil"
	"github.com/patchring/patchring/policy/trust"
	"github.com/patchring/patchring/policy/tufrepo"
)

// runCLI runs the patchring CLI with args and returns its output.
func runCLI(t testing.TB, ctx context.Context, args ...string) (string, error) {
	t.Helper()
	out := &testutil.SyncBuffer{}
	a := &app{Out: out, Err: out, In: strings.NewReader("")}
	root := newRootCmd(a)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	return out.String(), err
}

func mustCLI(t testing.TB, args ...string) string {
	t.Helper()
	out, err := runCLI(t, context.Background(), args...)
	if err != nil {
		t.Fatalf("patchring %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func TestRepoAndCatalogCLI(t *testing.T) {
	base := t.TempDir()
	dir, keys := filepath.Join(base, "repo"), filepath.Join(base, "keys")
	rk := []string{"--repo", dir, "--keys", keys}
	out := mustCLI(t, append([]string{"repo", "init", "--threshold", "root=2", "--expires", "timestamp=2d,snapshot=10d"}, rk...)...)
	if !strings.Contains(out, "1.root.json") {
		t.Errorf("init output does not say which root to install:\n%s", out)
	}
	// The fleet CA comes with the repository: fleet.json is a signed target
	// naming the CA key written beside the TUF keys.
	if !strings.Contains(out, "Fleet CA") {
		t.Errorf("init output does not mention the fleet CA:\n%s", out)
	}
	r, err := tufrepo.Open(dir, keys, "")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := r.FleetDocument()
	if err != nil {
		t.Fatalf("repo init published no fleet.json: %v", err)
	}
	caKey, err := r.FleetKey(tufrepo.RoleFleetCA)
	if err != nil || len(doc.CA) != 1 || !doc.CA[0].Equal(caKey.Public()) {
		t.Errorf("fleet.json CA %x does not match the CA key (%v)", doc.CA, err)
	}
	bare := filepath.Join(base, "bare")
	mustCLI(t, "repo", "init", "--repo", bare, "--keys", filepath.Join(base, "bare-keys"), "--no-fleet-ca")
	if r, err := tufrepo.Open(bare, "", ""); err != nil {
		t.Fatal(err)
	} else if _, err := r.FleetDocument(); err == nil {
		t.Error("--no-fleet-ca published a fleet.json")
	}

	var st tufrepo.Status
	out = mustCLI(t, "repo", "status", "--repo", dir, "--keys", keys, "-o", "json", "--within", "3d")
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status -o json: %v\n%s", err, out)
	}
	if len(st.Roles) != 4 || st.Roles[0].Role != "root" || st.Roles[0].Threshold != 2 || len(st.Roles[0].Keys) != 2 {
		t.Errorf("status roles = %+v", st.Roles)
	}
	if len(st.ExpiringSoon) != 1 || st.ExpiringSoon[0] != "timestamp" {
		t.Errorf("expiring within 3d = %v, want [timestamp]", st.ExpiringSoon)
	}

	payload := filepath.Join(base, "zoom_6.1.0_amd64.deb")
	if err := os.WriteFile(payload, bytes.Repeat([]byte("z"), 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	out = mustCLI(t, append([]string{"catalog", "add", payload, "--package", "zoom", "--version", "6.1.0", "--applies-to", "debian-12",
		"--reboot", "--severity", "high", "--classification", "security", "--cve", "CVE-2024-45678"}, rk...)...)
	if !strings.Contains(out, "catalog/zoom/6.1.0/zoom_6.1.0_amd64.deb") {
		t.Errorf("catalog add output:\n%s", out)
	}
	var list []tufrepo.Target
	out = mustCLI(t, "catalog", "list", "--repo", dir, "-o", "json")
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("catalog list -o json: %v\n%s", err, out)
	}
	if len(list) != 1 || list[0].Catalog == nil || list[0].Catalog.Severity != "high" || !list[0].Catalog.Reboot || list[0].Length != 4096 {
		t.Errorf("catalog list = %+v", list)
	}
	if out := mustCLI(t, "catalog", "list", "--repo", dir); !strings.Contains(out, "zoom") || !strings.Contains(out, "CVE-2024-45678") {
		t.Errorf("catalog list text:\n%s", out)
	}

	// Key management: each change is a new root version.
	out = mustCLI(t, append([]string{"repo", "add-key", "targets", "-o", "json"}, rk...)...)
	var added struct {
		KeyID    string           `json:"key_id"`
		Versions tufrepo.Versions `json:"versions"`
	}
	if err := json.Unmarshal([]byte(out), &added); err != nil || added.KeyID == "" || added.Versions.Root != 2 {
		t.Fatalf("add-key: %v %+v\n%s", err, added, out)
	}
	mustCLI(t, append([]string{"repo", "remove-key", "targets", added.KeyID}, rk...)...)
	mustCLI(t, append([]string{"repo", "rotate-key", "root"}, rk...)...)
	out = mustCLI(t, append([]string{"repo", "refresh"}, rk...)...)
	if !strings.Contains(out, "root 4") {
		t.Errorf("refresh output after three root changes:\n%s", out)
	}

	// Serve it and let an agent that was installed with root 1 follow.
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	a := &app{Out: pw, Err: pw, In: strings.NewReader("")}
	root := newRootCmd(a)
	root.SetArgs([]string{"repo", "serve", "--repo", dir, "--listen", "127.0.0.1:0"})
	done := make(chan error, 1)
	go func() {
		err := root.ExecuteContext(ctx)
		pw.CloseWithError(fmt.Errorf("serve returned: %v", err))
		done <- err
	}()
	var serveErr error
	var stopOnce sync.Once
	stop := func() error {
		stopOnce.Do(func() { cancel(); serveErr = <-done })
		return serveErr
	}
	t.Cleanup(func() { stop() })
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("serve: %v", err)
	}
	url := regexp.MustCompile(`http://[0-9.:]+`).FindString(line)
	if url == "" {
		t.Fatalf("serve printed no address: %s", line)
	}
	rootV1, err := os.ReadFile(filepath.Join(dir, "metadata", "1.root.json"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := trust.New(trust.Config{TrustedRoot: rootV1, StateDir: t.TempDir(), Sources: []trust.Source{trust.NewOriginSource(url)}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Refresh(ctx)
	if err != nil {
		t.Fatalf("agent refresh from repo serve: %v", err)
	}
	if res.Versions.Root != 4 || len(res.Catalog) != 1 || res.Catalog[0].Package != "zoom" {
		t.Errorf("agent sees root %d and catalog %+v", res.Versions.Root, res.Catalog)
	}
	if _, err := c.DownloadTarget(ctx, res.Catalog[0].Name, t.TempDir()); err != nil {
		t.Errorf("agent download: %v", err)
	}

	out = mustCLI(t, append([]string{"catalog", "remove", "--package", "zoom"}, rk...)...)
	if !strings.Contains(out, "Removed catalog/zoom/6.1.0/zoom_6.1.0_amd64.deb") {
		t.Errorf("catalog remove output:\n%s", out)
	}
	if out := mustCLI(t, "catalog", "list", "--repo", dir); !strings.Contains(out, "empty") {
		t.Errorf("catalog list after removal:\n%s", out)
	}
	if err := stop(); err != nil {
		t.Errorf("serve after interrupt: %v", err)
	}
}

func TestRepoCLIErrors(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "repo")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"init without keys", []string{"repo", "init", "--repo", dir}, "--keys"},
		{"keys inside repo", []string{"repo", "init", "--repo", dir, "--keys", filepath.Join(dir, "keys")}, "inside repository"},
		{"unknown role", []string{"repo", "init", "--repo", dir, "--keys", filepath.Join(base, "k"), "--threshold", "mirror=2"}, "unknown role"},
		{"bad threshold", []string{"repo", "init", "--repo", dir, "--keys", filepath.Join(base, "k"), "--threshold", "root=two"}, "root=two"},
		{"bad expiry", []string{"repo", "init", "--repo", dir, "--keys", filepath.Join(base, "k"), "--expires", "timestamp=7 days"}, "timestamp=7 days"},
		{"status of nothing", []string{"repo", "status", "--repo", base}, "not a patchring repository"},
		{"catalog add without package", []string{"catalog", "add", "x.deb", "--repo", dir, "--keys", filepath.Join(base, "k"), "--version", "1"}, "--package"},
		{"catalog add bad metadata", []string{"catalog", "add", "x.deb", "--repo", dir, "--keys", filepath.Join(base, "k"), "--package", "x", "--version", "1", "--severity", "urgent", "--cve", "nope"}, "severity"},
		{"catalog remove nothing", []string{"catalog", "remove", "--repo", dir}, "--package"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runCLI(t, context.Background(), tc.args...)
			if err == nil {
				t.Fatalf("succeeded:\n%s", out)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestRepoCLIPassphrase(t *testing.T) {
	base := t.TempDir()
	dir, keys := filepath.Join(base, "repo"), filepath.Join(base, "keys")
	t.Setenv("PR_TEST_PASSPHRASE", "s3cret passphrase")
	mustCLI(t, "repo", "init", "--repo", dir, "--keys", keys, "--passphrase-env", "PR_TEST_PASSPHRASE")
	files, _ := filepath.Glob(filepath.Join(keys, "*.json"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(data), `"encrypted"`) || strings.Contains(string(data), `"private"`) {
			t.Errorf("%s is not encrypted", f)
		}
	}
	// Without the variable and without a terminal, signing is refused with
	// a clear way out.
	t.Setenv("PR_TEST_PASSPHRASE", "")
	_, err := runCLI(t, context.Background(), "repo", "refresh", "--repo", dir, "--keys", keys, "--passphrase-env", "PR_TEST_PASSPHRASE")
	if err == nil || !strings.Contains(err.Error(), "PR_TEST_PASSPHRASE") {
		t.Errorf("refresh without passphrase: err = %v", err)
	}
}

// TestRepoKeeperCLI runs `patchring repo keeper` with only the online keys
// and a two-second timestamp: it keeps re-signing while status stays free
// of warnings; it refuses to set offline lifetimes.
func TestRepoKeeperCLI(t *testing.T) {
	base := t.TempDir()
	dir, keys, online := filepath.Join(base, "repo"), filepath.Join(base, "keys"), filepath.Join(base, "online")
	mustCLI(t, "repo", "init", "--repo", dir, "--keys", keys)
	if err := os.Mkdir(online, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, role := range []string{"snapshot", "timestamp"} {
		m, _ := filepath.Glob(filepath.Join(keys, role+"-*.json"))
		data, err := os.ReadFile(m[0])
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(online, filepath.Base(m[0])), data, 0o600)
	}
	if out, err := runCLI(t, context.Background(), "repo", "keeper", "--repo", dir, "--keys", online, "--expires", "targets=1d"); err == nil || !strings.Contains(err.Error(), "only snapshot and timestamp") {
		t.Errorf("keeper --expires targets=1d: err %v\n%s", err, out)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := runCLI(t, ctx, "repo", "keeper", "--repo", dir, "--keys", online, "--expires", "timestamp=2s,snapshot=4s")
		done <- err
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("keeper: %v", err)
		}
	})
	status := func() (tufrepo.Status, []tufrepo.Warning) {
		var st struct {
			tufrepo.Status
			Warnings []tufrepo.Warning `json:"warnings"`
		}
		out := mustCLI(t, "repo", "status", "--repo", dir, "-o", "json")
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			t.Fatalf("status: %v\n%s", err, out)
		}
		return st.Status, st.Warnings
	}
	// The offline roles as init left them (init also published fleet.json,
	// a new targets version).
	initial, _ := status()
	var (
		st       tufrepo.Status
		warnings []tufrepo.Warning
	)
	testutil.WaitFor(t, time.Minute, "the keeper re-signs timestamp and snapshot", func() error {
		if st, warnings = status(); st.Roles[3].Version < 5 || st.Roles[2].Version < 3 {
			return fmt.Errorf("roles %+v", st.Roles)
		}
		return nil
	})
	if st.Roles[0].Version != initial.Roles[0].Version || st.Roles[1].Version != initial.Roles[1].Version {
		t.Errorf("keeper re-signed offline roles: %+v", st.Roles)
	}
	for _, w := range warnings {
		if w.Expired {
			t.Errorf("with the keeper running, %s expired", w.Role)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("keeper: %v", err)
	}
	done <- nil
	// Stopped: status warns, then reports the timestamp expired.
	testutil.WaitFor(t, time.Minute, "status reports the expired timestamp", func() error {
		if out := mustCLI(t, "repo", "status", "--repo", dir); !strings.Contains(out, "WARNING: timestamp EXPIRED") {
			return errors.New(out)
		}
		return nil
	})
}
