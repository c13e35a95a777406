//go:build linux

package sitetest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchring/patchring/platform/apt/apttest"
)

// A point release: batchSize upgrades appear at once; one of them
// (brokenPkg) fails in its postinst.
const (
	batchSize = 40
	brokenPkg = "batch-broken"
)

// policyRings has three rings gated one after the other by hostname:
// desk-00/01 lab, desk-02..04 pilot, the rest broad.
const policyRings = `schema: 1
name: rings
expires: 2035-01-01T00:00:00Z
rings:
  - name: lab
    select: [{hostname: desk-00}, {hostname: desk-01}]
    defer: 0s
  - name: pilot
    select: [{hostname: desk-02}, {hostname: desk-03}, {hostname: desk-04}]
    defer: 0s
    gates: [{ring: lab, min_success: 100%, min_nodes: 2}]
  - name: broad
    default: true
    defer: 0s
    gates: [{ring: pilot, min_success: 100%, min_nodes: 3}]
auto_approve:
  - name: vendor updates
    sources: [apt]
`

func batchPkg(i int) string {
	if i == batchSize-1 {
		return brokenPkg
	}
	return fmt.Sprintf("batch-lib%02d", i)
}

func batchDeb(t testing.TB, dir string, i int, version string) string {
	t.Helper()
	p := apttest.Package{Name: batchPkg(i), Version: version,
		Files: []apttest.File{{Path: "/usr/share/" + batchPkg(i) + "/VERSION", Body: []byte(version + "\n")}}}
	if p.Name == brokenPkg && version == "2.0" {
		p.Postinst = "echo 'batch-broken 2.0: configuration failed' >&2\nexit 1\n"
	}
	return apttest.MustBuildDeb(t, dir, p)
}

// TestSiteGatesOpenForABatch: a site of 10 agents in three rings (lab ->
// pilot -> broad). A batch of 40 upgrades is released at once (one of them
// fails to configure). Every gate of the 39 good upgrades opens ring after
// ring and every node ends with them installed; the failing upgrade is
// rolled back in the lab and holds only its own gates: pilot and broad
// never install it and say why.
//
// Before gossip carried whole batches, a node announced its last 8
// outcomes only, so the pilot's gates for the other 31 upgrades never
// opened.
func TestSiteGatesOpenForABatch(t *testing.T) {
	const nodes = 10
	dir := t.TempDir()
	for _, sub := range []string{"v1", "v2"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var v1, v2 []string
	for i := range batchSize {
		v1 = append(v1, batchDeb(t, filepath.Join(dir, "v1"), i, "1.0"))
		v2 = append(v2, batchDeb(t, filepath.Join(dir, "v2"), i, "2.0"))
	}
	s := newSite(t, siteConfig{Nodes: nodes, Preinstall: v1})
	s.origin.apt.MustAdd(t, v1...)
	s.origin.publishPolicy(t, policyRings)
	s.startNodes(t)
	s.waitConverged(t, 3*time.Minute, "rings")

	// The release.
	s.origin.apt.MustAdd(t, v2...)
	ringOf := func(i int) string {
		switch {
		case i < 2:
			return "lab"
		case i < 5:
			return "pilot"
		}
		return "broad"
	}
	installTimeout := 15 * time.Minute
	if v := os.Getenv("PATCHRING_SITETEST_BATCH_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatal(err)
		}
		installTimeout = d
	}
	start := time.Now()
	s.waitFor(t, installTimeout, "every good upgrade installed on every node, the broken one held", func(ctx context.Context) (bool, string) {
		for i, n := range s.nodes {
			u, err := n.c.Updates(ctx)
			if err != nil {
				return false, fmt.Sprintf("%s: updates: %v", n.hostname, err)
			}
			found := false
			for _, d := range u.Updates {
				if !strings.HasPrefix(d.Package, "batch-") || d.Version != "2.0" {
					continue
				}
				found = true
				if d.Package != brokenPkg {
					return false, fmt.Sprintf("%s (%s) still plans %s 2.0: %s (%s)", n.hostname, ringOf(i), d.Package, d.Action, d.Reason)
				}
				switch want := map[string]string{"lab": "denied", "pilot": "wait-gate", "broad": "wait-gate"}[ringOf(i)]; {
				case d.Action != want:
					return false, fmt.Sprintf("%s (%s) plans %s 2.0 as %s (%s), want %s", n.hostname, ringOf(i), d.Package, d.Action, d.Reason, want)
				}
			}
			if !found {
				return false, fmt.Sprintf("%s does not see the release yet", n.hostname)
			}
		}
		return true, ""
	})
	t.Logf("%d nodes, %d upgrades: every gate of the good ones open and every node up to date %.1fs after the release", nodes, batchSize, time.Since(start).Seconds())

	// What dpkg says, and why the broken one waits.
	ctx := context.Background()
	for i, n := range s.nodes {
		for j := range batchSize {
			want := "2.0"
			if batchPkg(j) == brokenPkg {
				want = "1.0"
			}
			v, st, err := n.sb.InstalledVersion(ctx, batchPkg(j))
			if err != nil || v != want || st != "ii " {
				t.Fatalf("%s: dpkg reports %s %q %q (%v), want %s installed", n.hostname, batchPkg(j), v, st, err, want)
			}
		}
		u, err := n.c.Updates(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range u.Updates {
			if d.Package != brokenPkg {
				continue
			}
			var want string
			switch ringOf(i) {
			case "lab":
				want = "rolled back on this node"
			case "pilot":
				want = "waiting for ring lab: 2 of 2 nodes reported (0 succeeded, 2 failed"
			case "broad":
				want = "waiting for ring pilot: 0 of 3 nodes reported"
			}
			if !strings.Contains(d.Reason, want) {
				t.Errorf("%s (%s): %s 2.0 is %s because %q; want the reason to say %q", n.hostname, ringOf(i), brokenPkg, d.Action, d.Reason, want)
			}
		}
	}
}
