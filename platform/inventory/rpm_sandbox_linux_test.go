package inventory

import (
	"context"
	"testing"
	"time"

	"github.com/patchring/patchring/platform/dnf/dnftest"
)

// TestRPMInventoryAndChangesFromRealDnf reads the rpm database of a root
// the real dnf manages, before and after an upgrade, and finds the change
// the same way it does for dpkg.
func TestRPMInventoryAndChangesFromRealDnf(t *testing.T) {
	if err := dnftest.CheckTools(); err != nil {
		t.Skipf("dnf tools missing: %v", err)
	}
	dnftest.GuardHost(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	v1 := dnftest.Package{Name: "acme", Version: "1.0"}
	v2 := dnftest.Package{Name: "acme", Version: "1.1"}
	repo := dnftest.MustStartRepo(t, dnftest.RepoConfig{})
	repo.MustAdd(t, dnftest.MustBuildRPM(t, dir, v1))
	sb := dnftest.MustSandbox(t, dnftest.SandboxOptions{})
	sb.MustAddRepo(t, "test", repo, dnftest.RepoOptions{Unsigned: true})
	if out, err := sb.Run(ctx, "dnf", "install", v1.NEVRA()); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	opts := Options{Root: sb.Root, Sections: []Section{SectionPackages}, DpkgStatus: sb.Path("var/lib/dpkg/status")}
	before, err := Collect(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	p := before.Packages
	if p == nil || len(p.Items) != 1 || p.Items[0].Manager != "rpm" || p.Items[0].Name != "acme" || p.Items[0].Version != "1.0-1" || p.Items[0].Architecture != "x86_64" {
		t.Fatalf("rpm inventory: %+v", p)
	}
	repo.MustAdd(t, dnftest.MustBuildRPM(t, dir, v2))
	if out, err := sb.Run(ctx, "dnf", "upgrade", "acme"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	after, err := Collect(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	changes := Diff(before, after)
	if len(changes) != 1 || changes[0].Kind != PackageUpgraded || changes[0].Manager != "rpm" || changes[0].From != "1.0-1" || changes[0].To != "1.1-1" {
		t.Fatalf("changes: %+v", changes)
	}
}
