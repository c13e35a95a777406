package main

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchring/patchring/daemon/client"
	"github.com/patchring/patchring/internal/testutil"
	"github.com/patchring/patchring/policy/advisory"
	"github.com/patchring/patchring/policy/tufrepo"
)

// TestOfflineBundle: a site without WAN gets the signed policy and a
// catalog payload from a bundle the admin carried there; a tampered
// bundle and a bundle with a path escaping its directory are refused and
// change nothing.
func TestOfflineBundle(t *testing.T) {
	dir := t.TempDir()
	cli := filepath.Join(dir, "patchring")
	if out, err := exec.Command("go", "build", "-o", cli, "../patchring").CombinedOutput(); err != nil {
		t.Fatalf("build patchring: %v\n%s", err, out)
	}
	repo := newSignedRepo(t, dir, agentPolicy, tufrepo.Options{})
	payload := filepath.Join(dir, "acme-agent_2.1_amd64.deb")
	os.WriteFile(payload, []byte("a catalog payload, verified by its signed hash\n"), 0o644)
	if _, err := repo.AddCatalogFile(payload, tufrepo.CatalogMeta{Package: "acme-agent", Version: "2.1", Severity: "high"}); err != nil {
		t.Fatal(err)
	}
	// Signed advisory data: it reaches the offline agent in the bundle.
	db, _, err := advisory.Build([]*advisory.OSV{{ID: "DSA-9100-1", Modified: "2026-12-01T00:00:00Z", Upstream: []string{"CVE-2026-1000"},
		Affected: []advisory.OSVAffected{{Package: advisory.OSVPackage{Ecosystem: "Debian:12", Name: "acme-tool"},
			Ranges: []advisory.OSVRange{{Type: "ECOSYSTEM", Events: []advisory.OSVEvent{{Introduced: "0"}, {Fixed: "1.1"}}}}}}}},
		advisory.BuildOptions{Version: 3})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.PublishAdvisories(db); err != nil {
		t.Fatal(err)
	}
	repo.publish(t, "offline-kit")

	bundle := filepath.Join(dir, "site-kit.tar.gz")
	if out, err := exec.Command(cli, "bundle", "create", "--repo", repo.dir, "--out", bundle).CombinedOutput(); err != nil {
		t.Fatalf("bundle create: %v\n%s", err, out)
	}

	// The agent's origin is unreachable: it has never verified anything.
	keyFile := filepath.Join(dir, "gossip.key")
	k, _ := newKey(t)
	os.WriteFile(keyFile, []byte(k+"\n"), 0o600)
	agent := startDaemon(t, filepath.Join(dir, "agent"), "--policy-origin", "http://127.0.0.1:1", "--policy-root", repo.rootFile,
		"--gossip", "--gossip-listen", freeGossipAddr(t), "--gossip-key-file", keyFile, "--p2p", "--p2p-listen", "/ip4/127.0.0.1/tcp/0")
	agent.waitReady(t)
	c := &client.Client{Socket: agent.sock}

	// A tampered bundle: the policy's bytes changed after signing.
	tampered := filepath.Join(dir, "tampered.tar.gz")
	rewriteBundle(t, bundle, tampered, func(name string, data []byte) (string, []byte) {
		if strings.HasSuffix(name, "policy.json") {
			data = []byte(strings.Replace(string(data), "offline-kit", "evil-kit!!!", 1))
		}
		return name, data
	})
	if _, err := c.ImportBundle(context.Background(), tampered); err == nil || !strings.Contains(err.Error(), "does not verify") {
		t.Fatalf("tampered bundle: %v", err)
	}
	// A bundle whose entry leaves its directory.
	escape := filepath.Join(dir, "escape.tar.gz")
	rewriteBundle(t, bundle, escape, func(name string, data []byte) (string, []byte) {
		if strings.HasSuffix(name, "timestamp.json") {
			name = "metadata/../../escaped"
		}
		return name, data
	})
	if _, err := c.ImportBundle(context.Background(), escape); err == nil || !strings.Contains(err.Error(), "only metadata/ and targets/") {
		t.Fatalf("escaping bundle: %v", err)
	}
	if ep, _ := c.Policy(context.Background()); ep.Name != "" {
		t.Fatalf("a refused bundle changed the policy: %+v", ep)
	}

	out, err := exec.Command(cli, "--socket", agent.sock, "bundle", "import", bundle).CombinedOutput()
	if err != nil {
		t.Fatalf("bundle import: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), `"offline-kit" verified, 1 payloads`) || !strings.Contains(string(out), "signed advisory database into the content store") {
		t.Errorf("import output: %s", out)
	}
	ep, err := c.Policy(context.Background())
	if err != nil || ep.Name != "offline-kit" {
		t.Fatalf("policy after import: %+v %v", ep, err)
	}
	// The origin is unreachable: the advisory part took the database
	// from the content store.
	testutil.WaitFor(t, 90*time.Second, "the bundle's advisory database adopted", func() error {
		v, err := c.Vulns(context.Background())
		if err != nil {
			return err
		}
		if v.Advisories.Version != 3 {
			return fmt.Errorf("advisory database %+v\n%s", v.Advisories, agent.stderr)
		}
		return nil
	})
	agent.stop(t)
}

// rewriteBundle copies a bundle, passing each file through edit.
func rewriteBundle(t *testing.T, src, dst string, edit func(name string, data []byte) (string, []byte)) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	zr, err := gzip.NewReader(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	zw := gzip.NewWriter(out)
	tw := tar.NewWriter(zw)
	tr := tar.NewReader(zr)
	for {
		hdr, err := tr.Next()
		if err != nil {
			break
		}
		var data []byte
		if hdr.Typeflag == tar.TypeReg {
			buf := new(strings.Builder)
			if _, err := io.Copy(buf, tr); err != nil {
				t.Fatal(err)
			}
			hdr.Name, data = edit(hdr.Name, []byte(buf.String()))
			hdr.Size = int64(len(data))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		tw.Write(data)
	}
	tw.Close()
	zw.Close()
}
