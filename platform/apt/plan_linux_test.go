package apt_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/patchring/patchring/platform/apt"
	"github.com/patchring/patchring/platform/apt/apttest"
)

func pkg(name, version string, depends ...string) apttest.Package {
	return apttest.Package{Name: name, Version: version, Depends: depends,
		Files: []apttest.File{{Path: "/usr/share/" + name + "/VERSION", Body: []byte(version + "\n")}}}
}

// TestSimulateApplyTightPair: footool 1.1 depends on libfoo (= 1.1) and a
// new libbar. The simulation of the one requested package names all three
// changes; Apply with --no-download installs them from placed payloads;
// Apply with downgrades and a removal puts the old set back in one run.
func TestSimulateApplyTightPair(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, apttest.RepoConfig{}, pkg("libfoo", "1.0"), pkg("footool", "1.0", "libfoo (= 1.0)"))
	e.refresh(t)
	if err := e.sb.DpkgInstall(ctx, e.debs["libfoo=1.0"], e.debs["footool=1.0"]); err != nil {
		t.Fatal(err)
	}
	e.add(t, e.repo, pkg("libbar", "2.0"))
	e.add(t, e.repo, pkg("libfoo", "1.1", "libbar"))
	e.add(t, e.repo, pkg("footool", "1.1", "libfoo (= 1.1)"))
	e.refresh(t)

	plan, err := e.b.Simulate(ctx, []apt.PkgVersion{{Name: "footool", Version: "1.1"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]apt.Change{}
	for _, c := range plan.Changes {
		got[c.Package] = c
	}
	want := map[string]apt.Change{
		"footool": {Package: "footool", Arch: "amd64", From: "1.0", To: "1.1"},
		"libfoo":  {Package: "libfoo", Arch: "amd64", From: "1.0", To: "1.1"},
		"libbar":  {Package: "libbar", Arch: "amd64", To: "2.0"},
	}
	if len(got) != 3 || got["footool"] != want["footool"] || got["libfoo"] != want["libfoo"] || got["libbar"] != want["libbar"] {
		t.Fatalf("simulation = %+v, want %+v", plan.Changes, want)
	}

	var pvs []apt.PkgVersion
	for _, c := range plan.Changes {
		pvs = append(pvs, apt.PkgVersion{Name: c.Package, Version: c.To})
	}
	cands, err := e.b.Payloads(ctx, pvs)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cands {
		if len(c.SHA256) != 64 || c.Size <= 0 || c.URI == "" {
			t.Errorf("payload of %s: %+v", c.Package, c)
		}
		if c.Package == "footool" && !slices.Equal(c.Depends, []string{"libfoo"}) {
			t.Errorf("footool depends = %q, want [libfoo]", c.Depends)
		}
		if _, err := e.b.Place(ctx, e.debs[c.Package+"="+c.Version], c.Package, c.Version, c.Arch); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.b.Payloads(ctx, []apt.PkgVersion{{Name: "footool", Version: "9.9"}}); !errors.Is(err, apt.ErrNotAvailable) {
		t.Errorf("payload of a version no source has: %v, want ErrNotAvailable", err)
	}

	// The installed versions a rollback needs, in the same apt run:
	// libfoo 1.0 is still offered; footool 0.9 and nosuch 1.0 never were,
	// and are left out without an error.
	prevAsked := []apt.PkgVersion{{Name: "libfoo", Version: "1.0"}, {Name: "footool", Version: "0.9"}, {Name: "nosuch", Version: "1.0"}}
	cur, prev, err := e.b.PayloadsAndPrevious(ctx, pvs, prevAsked)
	if err != nil {
		t.Fatalf("payloads with previous versions: %v", err)
	}
	if len(cur) != len(cands) {
		t.Errorf("payloads with previous versions: %d new payloads, want %d", len(cur), len(cands))
	}
	deb, err := os.ReadFile(e.debs["libfoo=1.0"])
	if err != nil {
		t.Fatal(err)
	}
	if len(prev) != 1 || prev[0].Package != "libfoo" || prev[0].Version != "1.0" || prev[0].SHA256 != fmt.Sprintf("%x", sha256.Sum256(deb)) {
		t.Errorf("previous payloads = %+v, want libfoo 1.0 with the SHA-256 of its .deb", prev)
	}
	if _, _, err := e.b.PayloadsAndPrevious(ctx, []apt.PkgVersion{{Name: "footool", Version: "9.9"}}, prevAsked); !errors.Is(err, apt.ErrNotAvailable) {
		t.Errorf("a new version no source has, asked with previous versions: %v, want ErrNotAvailable", err)
	}

	// --no-download: stop the origin; the placed files are enough.
	if err := e.repo.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := e.b.Apply(ctx, pvs, nil, apt.ApplyOptions{NoDownload: true}); err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]string{"footool": "1.1", "libfoo": "1.1", "libbar": "2.0"} {
		if got, _ := e.b.InstalledVersion(ctx, name); got != v {
			t.Errorf("%s = %q after apply, want %s", name, got, v)
		}
	}

	// The rollback in one run: downgrades and the new dependency removed.
	for _, name := range []string{"footool", "libfoo"} {
		if _, err := e.b.Place(ctx, e.debs[name+"=1.0"], name, "1.0", "amd64"); err != nil {
			t.Fatal(err)
		}
	}
	back := []apt.PkgVersion{{Name: "footool", Version: "1.0"}, {Name: "libfoo", Version: "1.0"}}
	rplan, err := e.b.Simulate(ctx, back, []string{"libbar"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rplan.Changes) != 3 || len(rplan.Removals()) != 1 || rplan.Removals()[0].Package != "libbar" {
		t.Errorf("rollback simulation = %+v", rplan.Changes)
	}
	if err := e.b.Apply(ctx, back, []string{"libbar"}, apt.ApplyOptions{NoDownload: true, AllowDowngrades: true}); err != nil {
		t.Fatal(err)
	}
	inst, err := e.b.Installed(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if inst["footool"] != "1.0" || inst["libfoo"] != "1.0" || inst["libbar"] != "" {
		t.Errorf("after the rollback: %v", inst)
	}
}

// TestSimulateRemovalAndNoRemove: a new version that conflicts with an
// installed package makes apt plan a removal; Apply (--no-remove) refuses
// it without naming the package, and removes it when named.
func TestSimulateRemovalAndNoRemove(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, apttest.RepoConfig{}, pkg("oldplugin", "1.0"), pkg("host", "1.0"))
	e.refresh(t)
	if err := e.sb.DpkgInstall(ctx, e.debs["oldplugin=1.0"], e.debs["host=1.0"]); err != nil {
		t.Fatal(err)
	}
	h2 := pkg("host", "2.0")
	h2.Conflicts = []string{"oldplugin"}
	e.add(t, e.repo, h2)
	e.refresh(t)
	want := []apt.PkgVersion{{Name: "host", Version: "2.0"}}
	plan, err := e.b.Simulate(ctx, want, nil)
	if err != nil {
		t.Fatal(err)
	}
	rm := plan.Removals()
	if len(rm) != 1 || rm[0].Package != "oldplugin" || rm[0].From != "1.0" {
		t.Fatalf("simulation = %+v, want oldplugin removed", plan.Changes)
	}
	err = e.b.Apply(ctx, want, nil, apt.ApplyOptions{})
	if err == nil || !strings.Contains(err.Error(), "install") {
		t.Fatalf("apply without naming the removal: %v, want a refusal", err)
	}
	if v, _ := e.b.InstalledVersion(ctx, "oldplugin"); v != "1.0" {
		t.Fatalf("oldplugin = %q after a refused apply", v)
	}
	if err := e.b.Apply(ctx, want, []string{"oldplugin"}, apt.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	if v, _ := e.b.InstalledVersion(ctx, "oldplugin"); v != "" {
		t.Errorf("oldplugin = %q after a named removal", v)
	}
}
