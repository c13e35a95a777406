//go:build linux

package sitetest

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patchring/patchring/daemon/apitypes"
	"github.com/patchring/patchring/daemon/aptproxy"
	"github.com/patchring/patchring/platform/apt/apttest"
)

// uniformSizes is a batch of 30 packages of size bytes each.
func uniformSizes(size int) []int {
	sizes := make([]int, 30)
	for i := range sizes {
		sizes[i] = size
	}
	return sizes
}

// securityBatchSizes are the sizes of a realistic Debian security batch,
// rounded: about the sizes of bookworm's amd64 packages of an OpenSSL,
// glibc, curl, OpenSSH and Python update landing together (libssl3,
// openssl, libc6, libc-bin, locales, libc6-dev, linux-libc-dev, curl,
// libcurl4, openssh-client/-server, libpython3.11-stdlib ...), 33 MB in
// all, from 47 KB to 3.9 MB.
var securityBatchSizes = []int{
	2_050_000, 1_430_000, 2_420_000, 2_800_000, 600_000, 680_000, 3_900_000, 1_900_000, 47_000, 2_100_000,
	315_000, 390_000, 385_000, 980_000, 460_000, 65_000, 815_000, 600_000, 1_800_000, 2_000_000,
	100_000, 690_000, 1_900_000, 260_000, 1_400_000, 1_300_000, 835_000, 315_000, 285_000, 190_000,
}

// aptBatchNamed is a batch of len(sizes) packages named prefixNN, each
// with its size in random (incompressible) bytes.
func aptBatchNamed(t testing.TB, dir, prefix string, sizes []int) ([]string, []string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var names, debs []string
	for i, size := range sizes {
		blob := make([]byte, size)
		if _, err := rand.Read(blob); err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("%s%02d", prefix, i)
		names = append(names, name)
		debs = append(debs, apttest.MustBuildDeb(t, dir, apttest.Package{Name: name, Version: "1.0-1+deb12u1",
			Files: []apttest.File{{Path: "/usr/share/" + name + "/data", Body: blob}}}))
	}
	return names, debs
}

// aptIn runs apt-get by hand inside node n's namespace, as an admin would:
// nothing on the command line says "proxy"; apt reads the agent's snippet
// from the node's apt.conf.d. (The sandbox's own 10 s timeout is raised to
// apt's default: a node waits while the site's fetcher downloads.)
func aptIn(ctx context.Context, n *node, args ...string) (string, error) {
	// The agent's engine runs apt-get too (its own refresh): wait for its
	// lock as an admin would.
	for {
		out, err := aptOnce(ctx, n, args...)
		if err == nil || !strings.Contains(out, "Could not get lock") || ctx.Err() != nil {
			return out, err
		}
		select {
		case <-ctx.Done():
			return out, err
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func aptOnce(ctx context.Context, n *node, args ...string) (string, error) {
	full := append([]string{"-q", "-o", "Acquire::http::Timeout=120"}, args...)
	cmd := nsCommand(n.ns, "apt-get", full...)
	cmd.Env = n.sb.Env()
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			_ = cmd.Process.Kill() // the process this test started
		case <-done:
		}
	}()
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// aptCycle is what one site-wide apt cycle measured.
type aptCycle struct {
	s        *testSite
	nodes    []*node // the nodes that ran the cycle
	late     *node   // kept out of the cycle, or nil
	names    []string
	entries  []apttest.PoolEntry
	debBytes int64
	// indexBytes are the new by-hash index files the cycle fetched, and
	// releaseBytes the InRelease file: with debBytes, the cycle's unique
	// bytes.
	indexBytes, releaseBytes int64
	newIndices               []string // their URL paths
	wan                      wanCounters
	elapsed                  time.Duration
}

// aptEverywhere runs apt-get update and install of the batch on nodes at
// once, by hand, and checks that apt reported nothing and installed it.
// extra are apt options given to every apt-get (e.g. another proxy).
func aptEverywhere(t testing.TB, nodes []*node, names []string, extra ...string) {
	t.Helper()
	aptEverywhereRetrying(t, nodes, names, 1, extra...)
}

// aptEverywhereRetrying is aptEverywhere where each apt-get may be tried
// attempts times, as an admin would run it again after a failure; it
// returns how many runs failed and were tried again.
func aptEverywhereRetrying(t testing.TB, nodes []*node, names []string, attempts int, extra ...string) int {
	t.Helper()
	var retries atomic.Int64
	try := func(ctx context.Context, n *node, args ...string) (string, error) {
		var all string
		for i := 1; ; i++ {
			out, err := aptIn(ctx, n, args...)
			all += out
			if err == nil || i >= attempts || ctx.Err() != nil {
				if err == nil {
					all = out // the output of the run that worked
				}
				return all, err
			}
			retries.Add(1)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	outs := make([]string, len(nodes))
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := try(ctx, n, append(slices.Clone(extra), "update", "--error-on=any")...)
			outs[i] = out
			if err != nil {
				errs[i] = fmt.Errorf("%s: apt-get update: %w", n.hostname, err)
				return
			}
			out, err = try(ctx, n, append(append(slices.Clone(extra), "install", "-y"), names...)...)
			outs[i] += out
			if err != nil {
				errs[i] = fmt.Errorf("%s: apt-get install: %w", n.hostname, err)
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("%v\n%s", err, outs[i])
		}
		for _, bad := range []string{"W: ", "E: ", "unauthenticated", "NO_PUBKEY", "not signed"} {
			if strings.Contains(outs[i], bad) {
				t.Fatalf("%s: apt reported %q:\n%s", nodes[i].hostname, bad, outs[i])
			}
		}
	}
	for _, n := range nodes {
		for _, name := range names {
			if v, _, err := n.sb.InstalledVersion(context.Background(), name); err != nil || v != "1.0-1+deb12u1" {
				t.Fatalf("%s: %s installed %q (%v)", n.hostname, name, v, err)
			}
		}
	}
	return int(retries.Load())
}

// runAptCycle starts a site of n agents with the apt proxy on and a
// signed Debian-style archive (Acquire-By-Hash, a 5,000-stanza Packages
// index, a week's Valid-Until) behind the shaped WAN; once the site has
// formed, the vendor publishes a 30-package batch and an admin types
// apt-get update and apt-get install of it on every node (but the last,
// when keepLate) at the same time. It checks that every node installed
// it, that apt reported nothing, and that the archive served each new
// index and each .deb once.
func runAptCycle(t testing.TB, n int, keepLate bool, sizes []int) *aptCycle {
	t.Helper()
	s := startAptSite(t, n)
	c := &aptCycle{s: s}
	var debs []string
	c.names, debs = aptBatchNamed(t, filepath.Join(s.dir, "batch"), "sec-fix", sizes)
	c.nodes = s.nodes
	if keepLate {
		c.nodes, c.late = s.nodes[:n-1], s.nodes[n-1]
	}

	// The batch is published once the site has formed (a node that starts
	// alone is its own WAN fetcher: the agents' first refresh at start is
	// not what this measures). Its new index must cross the WAN once.
	idxBefore := s.origin.IndexRequests()
	c.entries = s.origin.apt.MustAdd(t, debs...)
	for _, e := range c.entries {
		c.debBytes += e.Size
	}
	c.releaseBytes = releaseSize(t, s)
	before := s.net.counters(t)
	start := time.Now()
	aptEverywhere(t, c.nodes, c.names)
	c.elapsed = time.Since(start)
	c.wan = s.net.counters(t).sub(before)

	// The archive served each new by-hash index and each .deb once. A
	// node that sees no progress from the file's fetcher for the patience
	// (4 s) fetches it itself, which a loaded machine (make test on two
	// cores) can cause for a file or two: a second copy of at most 10% of
	// the bytes passes here and is logged; one copy per file is the
	// benchmark's target (apt_site_wan_ratio, BenchmarkAptSiteWAN), and
	// every node fetching for itself still fails.
	var served map[string]int
	c.newIndices, c.indexBytes, served = newIndices(t, s, idxBefore)
	var twice []string
	for p, k := range served {
		switch {
		case k == 2:
			twice = append(twice, p)
		case k != 1:
			t.Errorf("the archive served %s %d times, want once", p, k)
		}
	}
	for _, e := range c.entries {
		xs := s.origin.pool.Transfers(path.Base(e.Filename))
		switch got := len(xs); got {
		case 1:
		case 2:
			twice = append(twice, fmt.Sprintf("%s (by %s at +%s and %s at +%s, ranges %q %q)", e.Filename,
				xs[0].Client, xs[0].Start.Sub(start).Round(time.Millisecond), xs[1].Client, xs[1].Start.Sub(start).Round(time.Millisecond), xs[0].Range, xs[1].Range))
		default:
			t.Errorf("the archive served %s %d times, want once", e.Filename, got)
		}
	}
	if len(twice) > 0 {
		t.Logf("served twice (a fetcher idle longer than the patience): %v", twice)
	}
	// The InRelease crosses the WAN once per site: the fetcher for the
	// distribution reads it, the others take its copy. A node whose own
	// 6-hourly check of the vendor falls in the cycle reads it too (its
	// first check is at a random point of the first 6 hours).
	const inRelease = "/dists/bookworm-security/InRelease"
	if k := s.origin.IndexRequests()[inRelease] - idxBefore[inRelease]; k < 1 || k > 1+len(c.nodes)/10 {
		t.Errorf("the archive served InRelease %d times to a site of %d nodes running apt-get update, want once (at most %d)", k, len(c.nodes), 1+len(c.nodes)/10)
	} else {
		t.Logf("the archive served InRelease %d times to %d nodes", k, len(c.nodes))
	}
	// What the agents report: every .deb byte once from the vendor (at
	// most 10% twice, as above), the rest from peers, nothing refused.
	var vendor, peers int64
	for _, n := range c.nodes {
		p, err := n.c.Peers(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		pk := aptKind(p, "package")
		vendor += pk.FromVendor
		peers += pk.FromPeers
		for _, k := range p.Apt {
			if k.Refused != 0 {
				t.Errorf("%s: the proxy refused %d %s files from an honest archive", n.hostname, k.Refused, k.Kind)
			}
		}
	}
	extra := vendor - c.debBytes
	if extra < 0 || extra*10 > c.debBytes || peers+extra < int64(len(c.nodes)-1)*c.debBytes {
		t.Errorf(".deb bytes from the vendor %d (want %d, one copy, at most 10%% more), from peers %d (want >= %d less the extra)", vendor, c.debBytes, peers, int64(len(c.nodes)-1)*c.debBytes)
	}
	t.Logf("%d nodes: apt-get update + install of %d packages (%d bytes) in %s; WAN payload bytes %d (%.3f x one copy), other downstream %d; new indices %d bytes in %v",
		len(c.nodes), len(c.names), c.debBytes, c.elapsed.Round(time.Second), c.wan.Payload, float64(c.wan.Payload)/float64(c.debBytes), c.wan.Other, c.indexBytes, c.newIndices)
	return c
}

// releaseSize is the size of the archive's current InRelease.
func releaseSize(t testing.TB, s *testSite) int64 {
	t.Helper()
	in, err := s.origin.apt.ReadFile("dists/bookworm-security/InRelease")
	if err != nil {
		t.Fatal(err)
	}
	return int64(len(in))
}

// newIndices are the by-hash index files the archive served since
// idxBefore (with how often each), and the size of those the current
// Release lists: with the .debs and one InRelease, a cycle's unique bytes.
func newIndices(t testing.TB, s *testSite, idxBefore map[string]int) (paths []string, size int64, served map[string]int) {
	t.Helper()
	rel, err := s.origin.apt.ReadFile("dists/bookworm-security/Release")
	if err != nil {
		t.Fatal(err)
	}
	served = map[string]int{}
	idx := s.origin.IndexRequests()
	for p, k := range idx {
		if k -= idxBefore[p]; k > 0 && strings.Contains(p, "/by-hash/") {
			served[p] = k
			paths = append(paths, p)
			if !strings.Contains(string(rel), path.Base(p)) {
				continue
			}
			data, err := s.origin.apt.ReadFile(strings.TrimPrefix(p, "/"))
			if err != nil {
				t.Fatal(err)
			}
			size += int64(len(data))
		}
	}
	if len(paths) == 0 {
		t.Fatalf("no by-hash index was fetched; archive requests: %v", idx)
	}
	return paths, size, served
}

// startAptSite starts a site of n agents with the apt proxy on and a
// signed Debian-style archive (Acquire-By-Hash, a 5,000-stanza Packages
// index, a week's Valid-Until) behind the shaped WAN, and waits until the
// site has formed and every node's apt goes through its agent.
func startAptSite(t testing.TB, n int) *testSite {
	t.Helper()
	signer := apttest.MustSigner(t)
	s := newSite(t, siteConfig{
		Nodes: n, AptProxy: true, AptCheck: time.Hour, AptRefresh: time.Hour,
		// The policy is published before the agents start; polling it
		// often would only add TUF bytes to the WAN figures.
		PolicyRefresh: 10 * time.Minute,
		Repo: apttest.RepoConfig{Origin: "Debian", Label: "Debian-Security", Suite: "stable-security", Codename: "bookworm-security",
			Signer: signer, ByHash: true, ValidFor: 7 * 24 * time.Hour, Filler: 5000},
	})
	s.origin.publishPolicy(t, policyHold)
	s.startNodes(t)
	s.waitConverged(t, 2*time.Minute, "hold")
	for _, n := range s.nodes {
		snippet := filepath.Join(n.sb.Root, "etc/apt/apt.conf.d", aptproxy.SnippetName)
		s.waitFor(t, 30*time.Second, "the apt proxy snippet on "+n.hostname, func(context.Context) (bool, string) {
			_, err := os.Stat(snippet)
			return err == nil, fmt.Sprint(err)
		})
	}
	return s
}

// TestSiteAptThroughProxy: a site of agents with the apt proxy on behind
// the shaped WAN (runAptCycle): a hand-typed apt-get update and install of
// a 30-package batch on every node moves each new index and each .deb
// across the WAN once, the other nodes get them from their peers.
//
// Then the peers turn hostile: every node that holds the new index and
// the first .deb has them tampered in its content store, and serves the
// tampered bytes to its peers like any member. A node that did not take
// part updates and installs: its proxy refuses the peers' bytes (the
// exchange verifies every piece against the hash from the verified
// Release and Packages files and marks the peers), never hands them to
// apt, and completes from the honest archive.
//
// PATCHRING_SITETEST_APT_NODES sets the number of agents (default 6; the
// issue's 20 runs too, slowly, on a loaded machine).
func TestSiteAptThroughProxy(t *testing.T) {
	nodes := envInt(t, "PATCHRING_SITETEST_APT_NODES", 6)
	c := runAptCycle(t, nodes, true, uniformSizes(48<<10))
	// One copy plus headers (<= 1.10), plus the second copies of at most
	// 10% of the bytes runAptCycle lets pass under load (<= 1.20 in all).
	ratio := float64(c.wan.Payload) / float64(c.debBytes)
	if ratio < 1 || ratio > 1.20 {
		t.Errorf("WAN carried %.3f copies of the batch's .debs, want one (<= 1.10 with headers, 1.20 with the second copies a loaded machine causes)", ratio)
	}

	// Hostile peers: tamper with the stored index and first .deb.
	tampered := []string{c.entries[0].SHA256}
	for _, p := range c.newIndices {
		tampered = append(tampered, path.Base(p))
	}
	for _, n := range c.nodes {
		for _, h := range tampered {
			blob := filepath.Join(n.dir, "state", "content", "blobs", h)
			f, err := os.OpenFile(blob, os.O_RDWR, 0)
			if err != nil {
				continue // this node does not hold it
			}
			st, err := f.Stat()
			if err == nil {
				buf := make([]byte, 1)
				if _, err = f.ReadAt(buf, st.Size()/2); err == nil {
					buf[0] ^= 0x5a
					_, err = f.WriteAt(buf, st.Size()/2)
				}
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				t.Fatalf("tamper %s on %s: %v", blob, n.hostname, err)
			}
		}
	}
	aptEverywhere(t, []*node{c.late}, c.names)
	p, err := c.late.c.Peers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	bad := 0
	for _, pr := range p.Peers {
		bad += pr.BadData
	}
	if bad == 0 {
		t.Errorf("%s took data from hostile peers without marking any: %+v", c.late.hostname, p.Peers)
	}
	// The tampered files came from the archive again, once.
	if got := len(c.s.origin.pool.Transfers(path.Base(c.entries[0].Filename))); got != 2 {
		t.Errorf("the archive served the tampered .deb %d times in all, want 2 (the site's copy, then the late node's)", got)
	}
	if pk := aptKind(p, "package"); pk.FromVendor < c.entries[0].Size {
		t.Errorf("%s: .deb bytes from the vendor %d, want at least the tampered one's %d", c.late.hostname, pk.FromVendor, c.entries[0].Size)
	}
	t.Logf("%s completed from the honest archive; bad data marked from peers: %d", c.late.hostname, bad)
}

func aptKind(p apitypes.Peers, kind string) apitypes.AptTraffic {
	for _, k := range p.Apt {
		if k.Kind == kind {
			return k
		}
	}
	return apitypes.AptTraffic{}
}
