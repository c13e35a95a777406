package engine_test

import (
	"context"
	"fmt"
	"maps"
	"os"
	"strings"
	"testing"

	"github.com/patchring/patchring/daemon/engine"
	"github.com/patchring/patchring/platform/apt/apttest"
)

// TestChrootDebianSecurityBatch runs the updates Debian's own
// bookworm-updates and bookworm-security archives have over the Debian 12
// root's point release: with a failing health check every package ends at
// its version from before, nothing removed or added, apt-get check and
// dpkg --audit clean; with a passing one, one transaction (or a few along
// dependency lines) installs all. It skips, saying why, when the mirror
// cannot be reached or has nothing pending.
func TestChrootDebianSecurityBatch(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: runs apt and dpkg in a Debian root and downloads from Debian's mirror")
	}
	ctx := context.Background()
	c := apttest.MustChroot(t, apttest.ChrootOptions{})
	mirror := os.Getenv(apttest.MirrorEnv)
	if mirror == "" {
		mirror = "http://deb.debian.org/debian"
	}
	security := strings.TrimSuffix(mirror, "/") + "-security"
	if err := c.AddSource("debian", "deb "+mirror+" bookworm bookworm-updates main"); err != nil {
		t.Fatal(err)
	}
	if err := c.AddSource("debian-security", "deb "+security+" bookworm-security main"); err != nil {
		t.Fatal(err)
	}
	health := fmt.Sprintf("health_check:\n  command: [sh, -c, \"test ! -e %s\"]\n  timeout: 60s\n", c.Path("broken"))
	n := newChrootNode(t, c, mustPolicy(t, health))
	if err := n.b.Refresh(ctx); err != nil {
		t.Skipf("Debian's mirror cannot be reached from the test (%s, %s): %v", mirror, security, err)
	}
	ups, err := n.b.Upgradable(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ups) == 0 {
		t.Skipf("the mirror has nothing pending over the root's point release (%s, %s)", mirror, security)
	}
	var names []string
	for _, u := range ups {
		names = append(names, u.Package+" "+u.Installed+" -> "+u.Version)
	}
	t.Logf("%d updates pending: %s", len(ups), strings.Join(names, ", "))
	installed := func() map[string]string {
		m, err := n.b.Installed(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	check := func() {
		t.Helper()
		if out, err := n.c.Audit(ctx); err != nil || strings.TrimSpace(out) != "" {
			t.Fatalf("dpkg --audit: %v\n%s", err, out)
		}
		if out, err := n.c.Run(ctx, "apt-get", "check", "-q"); err != nil {
			t.Fatalf("apt-get check: %v\n%s", err, out)
		}
	}
	before := installed()

	chrootStep(t, "failing health check: every package as before", func(t *testing.T) {
		if err := os.WriteFile(c.Path("broken"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		n.eng.Cycle(ctx)
		if got := installed(); !maps.Equal(got, before) {
			for pkg, v := range before {
				if got[pkg] != v {
					t.Errorf("%s: %q, was %q", pkg, got[pkg], v)
				}
			}
			for pkg, v := range got {
				if _, ok := before[pkg]; !ok {
					t.Errorf("%s %s added", pkg, v)
				}
			}
		}
		check()
		h, _ := n.eng.History(0)
		for _, tx := range h {
			if tx.Outcome != engine.OutcomeRolledBack {
				t.Errorf("tx %d %s: %s", tx.ID, tx.Outcome, tx.Error)
			}
		}
	})
	chrootStep(t, "passing health check: the batch installs all", func(t *testing.T) {
		os.Remove(c.Path("broken"))
		n.setPolicy(mustPolicy(t, health), "v2")
		hBefore, _ := n.eng.History(0)
		n.eng.Cycle(ctx)
		got := installed()
		for _, u := range ups {
			if got[u.Package] != u.Version {
				t.Errorf("%s = %q, want %s", u.Package, got[u.Package], u.Version)
			}
		}
		for pkg := range before {
			if got[pkg] == "" {
				t.Errorf("%s was removed", pkg)
			}
		}
		h, _ := n.eng.History(0)
		if len(h)-len(hBefore) < 1 || h[0].Outcome != engine.OutcomeInstalled {
			t.Errorf("latest transaction %+v", h[0])
		}
		t.Logf("%d transaction(s) for %d updates", len(h)-len(hBefore), len(ups))
		check()
	})
}
