package engine_test

import (
	"context"
	"maps"
	"os"
	"testing"

	"github.com/patchring/patchring/daemon/engine"
	"github.com/patchring/patchring/platform/apt/apttest"
)

// securityShapes returns the packages of a local repository shaped like
// Debian 12's security batch over its point release: an Essential package
// with "=" dependencies (perl-base, perl, libperl, perl-modules) and a
// package of the user's that depends on perl, a PAM-like set
// (libpam0g, libpam-modules, libpam-modules-bin, libpam-runtime) whose new
// version pulls in a new dependency, and independent libraries.
func securityShapes(v string, newDep bool) []apttest.Package {
	essential := vpkg("perl-base", v)
	essential.Fields = map[string]string{"Essential": "yes"}
	essential.Priority = "required"
	mods := vpkg("perl-modules", v)
	mods.Arch = "all"
	pamMods := vpkg("libpam-modules", v, "libpam0g (>= "+v+")", "libpam-modules-bin (= "+v+")")
	pamMods.PreDepends = []string{"libpam0g (>= " + v + ")"}
	if newDep {
		pamMods.Depends = append(pamMods.Depends, "usr-is-merged")
	}
	runtime := vpkg("libpam-runtime", v, "libpam-modules (>= "+v+")")
	runtime.Arch = "all"
	return []apttest.Package{
		essential, mods,
		vpkg("libperl", v, "perl-base (= "+v+")", "perl-modules (>= "+v+")"),
		vpkg("perl", v, "perl-base (= "+v+")", "perl-modules (>= "+v+")", "libperl (= "+v+")"),
		vpkg("libpam0g", v),
		vpkg("libpam-modules-bin", v, "libpam0g (>= "+v+")"),
		pamMods, runtime,
		vpkg("zlib1g", v),
		vpkg("liblzma5", v),
		vpkg("tzdata", v),
	}
}

// TestSecurityBatchShapes: with a failing health check every package ends
// at its version from before, nothing is removed or added (the user's
// libfile-find-rule-perl, which depends on perl, stays), apt-get check and
// dpkg --audit are clean. With a passing one, the batch installs all.
func TestSecurityBatchShapes(t *testing.T) {
	installed := append(securityShapes("5.36.0-7", false), vpkg("libfile-find-rule-perl", "0.34-3", "perl"))
	w := newBatchWorld(t, installed...)
	w.publish(t, append(securityShapes("5.36.0-7+deb12u1", true), vpkg("usr-is-merged", "37~deb12u1"))...)
	n := w.node(t, failingHealth)
	if err := os.WriteFile(n.sb.Path("broken"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	before := n.installed()
	n.eng.Cycle(context.Background())
	if got := n.installed(); !maps.Equal(got, before) {
		t.Fatalf("after the failed health check:\n got %v\nwant %v\nhistory %+v", got, before, n.history())
	}
	n.aptCheck()
	for _, tx := range n.history() {
		if tx.Outcome != engine.OutcomeRolledBack {
			t.Errorf("tx %d: %s: %s", tx.ID, tx.Outcome, tx.Error)
		}
	}
	batch := n.history()[len(n.history())-1]
	if len(batch.Items) != 12 || itemMap(batch)["usr-is-merged"].Action != engine.ActionInstall {
		t.Errorf("the batch holds %d items, want the 11 upgrades and usr-is-merged: %+v", len(batch.Items), batch.Items)
	}

	os.Remove(n.sb.Path("broken"))
	n.setPolicy(mustPolicy(t, failingHealth), "v2")
	txsBefore := len(n.history())
	n.cycle()
	got := n.installed()
	for pkg, v := range before {
		if pkg == "libfile-find-rule-perl" {
			if got[pkg] != v {
				t.Errorf("%s = %q, want %s", pkg, got[pkg], v)
			}
			continue
		}
		if got[pkg] != "5.36.0-7+deb12u1" {
			t.Errorf("%s = %q after the passing batch", pkg, got[pkg])
		}
	}
	if got["usr-is-merged"] == "" {
		t.Error("the new dependency was not installed")
	}
	if h := n.history(); len(h) != txsBefore+1 || h[0].Outcome != engine.OutcomeInstalled {
		t.Errorf("the passing batch took %d transactions: %+v", len(h)-txsBefore, h[0])
	}
	n.aptCheck()
}
