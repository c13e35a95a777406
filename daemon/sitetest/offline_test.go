//go:build linux

package sitetest

import (
	"context"
	"crypto/rand"
	"fmt"
	"github.com/patchring/patchring/internal/testutil"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/patchring/patchring/platform/apt/apttest"
)

// TestOfflineSiteAptFromBundle: a site whose WAN is down gets its Debian
// security update as an offline bundle (`patchring bundle create
// --apt-source`) imported on one node. The other nodes get the newer
// signed metadata from that node (verified from their own root), follow
// the apt snapshot it pins (the Release file from their peers), and their
// apt, typed by hand, updates its indices and installs the update with the
// indices and .debs from their peers: no byte crosses the WAN, and it
// works after the archive's Valid-Until has passed, while the admin's
// metadata holds. An older bundle replayed on the importing node is
// refused.
//
// PATCHRING_SITETEST_OFFLINE_NODES sets the number of agents (default 4;
// at least 3: a node refreshing from a peer ahead of it needs a second
// peer to confirm the root probe without the origin, docs/TRUST.md).
func TestOfflineSiteAptFromBundle(t *testing.T) {
	// Mostly waits (the archive's Valid-Until passing, peers following the
	// bundle), and its figure (no WAN byte) does not depend on load: runs
	// beside the other waiting tests once the WAN-measuring ones are done.
	t.Parallel()
	nodes := envInt(t, "PATCHRING_SITETEST_OFFLINE_NODES", 4)
	if nodes < 3 {
		t.Fatal("PATCHRING_SITETEST_OFFLINE_NODES: at least 3")
	}
	// The archive's Release is valid for validFor after the update is
	// published; the test passes that before apt runs.
	const validFor = 75 * time.Second
	signer := apttest.MustSigner(t)
	names := []string{"sec-tool", "sec-lib", "sec-data"}
	var installed []apttest.Package
	for _, n := range names {
		installed = append(installed, secPackage(t, n, "1.0-1"))
	}
	s := newSite(t, siteConfig{
		Nodes: nodes, AptProxy: true, AptCheck: time.Hour, AptRefresh: time.Hour,
		Installed: installed,
		Repo: apttest.RepoConfig{Origin: "Debian", Label: "Debian-Security", Suite: "stable-security", Codename: "bookworm-security",
			Signer: signer, ByHash: true, ValidFor: validFor, Filler: 5000},
	})
	s.origin.publishPolicy(t, policyHold)
	s.startNodes(t)
	s.waitConverged(t, 2*time.Minute, "hold")

	// The admin, on a machine that reaches the archive (the origin's
	// side of the WAN, so the pinned URLs are the site's), makes a bundle
	// of the archive as it is, then, after Debian's security update, a
	// newer one with it.
	bundleCreate := func(out string, what ...string) {
		t.Helper()
		args := append([]string{"bundle", "create", "--repo", s.origin.tufDir, "--keys", filepath.Join(s.dir, "tuf-keys"), "--out", out,
			"--apt-source", "http://" + originIP + "/", "--apt-suite", "bookworm-security", "--apt-keyring", signer.Keyring}, what...)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", s.net.origin, patchringCLI.Path(t)}, args...)...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if o, err := testutil.CombinedOutput(cmd); err != nil {
			t.Fatalf("patchring %s: %v\n%s", strings.Join(args, " "), err, o)
		}
	}
	// The archive re-signs its Release (as Debian's security archive does
	// several times a day): the site's start may have outlasted the short
	// Valid-Until, and an expired snapshot cannot be pinned.
	s.origin.apt.MustAdd(t)
	older := filepath.Join(s.dir, "site-older.tar.gz")
	var named []string
	for _, n := range names {
		named = append(named, "--apt-package", n)
	}
	bundleCreate(older, named...)
	// The update is built first: the newer bundle follows its publication
	// well inside the short Valid-Until.
	update := filepath.Join(s.dir, "update")
	if err := os.MkdirAll(update, 0o755); err != nil {
		t.Fatal(err)
	}
	var debs []string
	for _, n := range names {
		debs = append(debs, apttest.MustBuildDeb(t, update, secPackage(t, n, "1.0-1+deb12u1")))
	}
	s.origin.apt.MustAdd(t, debs...)
	validUntil := time.Now().Add(validFor)
	// The newer bundle carries what the site's inventory needs: the admin
	// has the site's reports (exported on one of its nodes) and names no
	// package.
	reports := filepath.Join(s.dir, "site-reports.json")
	if out, err := exec.Command(patchringCLI.Path(t), "--socket", s.nodes[0].sock, "bundle", "export-reports", "--out", reports).CombinedOutput(); err != nil {
		t.Fatalf("export the site's reports: %v\n%s", err, out)
	}
	newer := filepath.Join(s.dir, "site-newer.tar.gz")
	bundleCreate(newer, "--apt-inventory", reports)

	// The WAN goes down for the rest of the test.
	s.net.cutWAN(t)
	wanBefore := s.net.counters(t)
	poolBefore := len(s.origin.pool.transfersAll())

	// Debian's Valid-Until passes.
	s.waitFor(t, validFor+time.Minute, "the archive's Valid-Until to pass", func(context.Context) (bool, string) {
		return time.Now().After(validUntil.Add(2 * time.Second)), "now " + time.Now().Format(time.RFC3339)
	})

	first := s.nodes[0]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := first.c.ImportBundle(ctx, newer)
	if err != nil {
		t.Fatalf("%s: import %s: %v", first.hostname, newer, err)
	}
	if res.AptReleases != 1 || res.AptFiles < 1+len(names) {
		t.Fatalf("%s: import took %d apt files and %d releases: %+v", first.hostname, res.AptFiles, res.AptReleases, res)
	}
	t.Logf("%s imported the bundle: %d apt files, %d release, policy %s", first.hostname, res.AptFiles, res.AptReleases, res.PolicyVersion)
	if _, err := first.c.ImportBundle(ctx, older); err == nil {
		t.Fatalf("%s: the older bundle was imported after the newer one", first.hostname)
	} else {
		t.Logf("the older bundle replayed: %v", err)
	}

	// The other nodes follow the newer metadata from their peers.
	want := res.PolicyVersion
	s.waitFor(t, 3*time.Minute, "every node on the bundle's metadata", func(ctx context.Context) (bool, string) {
		for _, n := range s.nodes {
			p, err := n.c.Policy(ctx)
			if err != nil {
				return false, fmt.Sprintf("%s: %v", n.hostname, err)
			}
			if p.Version != want {
				return false, fmt.Sprintf("%s holds %q (last error %q), want %q", n.hostname, p.Version, p.LastError, want)
			}
		}
		return true, ""
	})

	// Each node's proxy takes the pinned Release from its peers once it
	// holds the metadata (at once, then every 30 s until it has it): until
	// then apt-get update fails on the expired vendor Release, as an admin
	// would see; poll it.
	updated := make(map[string]bool)
	if err := testutil.PollEvery(3*time.Minute, 5*time.Second, func() error {
		for _, n := range s.nodes {
			if updated[n.hostname] {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			out, err := aptIn(ctx, n, "update", "--error-on=any")
			cancel()
			if err != nil {
				return fmt.Errorf("%s: apt-get update: %w: %s", n.hostname, err, tail(out, 3))
			}
			updated[n.hostname] = true
		}
		return nil
	}); err != nil {
		t.Fatalf("apt-get update on every node of the offline site: %v", err)
	}

	// Every node's apt, typed by hand, updates and installs the update.
	aptEverywhere(t, s.nodes, names)

	var vendor, peers int64
	for _, n := range s.nodes[1:] {
		p, err := n.c.Peers(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range p.Apt {
			vendor += k.FromVendor
			if k.Kind == "package" || k.Kind == "index" {
				peers += k.FromPeers
			}
		}
	}
	if peers == 0 {
		t.Error("the nodes that did not import report no apt bytes from their peers")
	}
	after := s.net.counters(t)
	if d := after.sub(wanBefore); d.Up != 0 || d.Down != 0 {
		t.Errorf("the WAN moved %d bytes up and %d down while it was down", d.Up, d.Down)
	}
	if got := len(s.origin.pool.transfersAll()); got != poolBefore {
		t.Errorf("the archive's pool served %d transfers while the site was offline", got-poolBefore)
	}
	t.Logf("%d nodes installed %v from the bundle with the WAN down, past Valid-Until; the others got %d apt bytes from peers (%d counted from the vendor)",
		len(s.nodes), names, peers, vendor)
}

// secPackage is a package of the security archive, with 32 KiB of random
// content.
func secPackage(t testing.TB, name, version string) apttest.Package {
	t.Helper()
	blob := make([]byte, 32<<10)
	if _, err := rand.Read(blob); err != nil {
		t.Fatal(err)
	}
	return apttest.Package{Name: name, Version: version, Files: []apttest.File{{Path: "/usr/share/" + name + "/data", Body: blob}}}
}
