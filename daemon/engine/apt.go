package engine

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/patchring/patchring/platform/apt"
	"github.com/patchring/patchring/platform/vercmp"
	"github.com/patchring/patchring/policy"
)

// aptPackages adapts the apt backend to the engine.
type aptPackages struct {
	b *apt.Backend
}

var _ Packages = (*aptPackages)(nil)

// AptPackages returns the engine's view of an apt backend.
func AptPackages(b *apt.Backend) Packages { return &aptPackages{b: b} }

func fromApt(c apt.Candidate) Candidate {
	return Candidate{
		Package: c.Package, Arch: c.Arch, Installed: c.Installed, Version: c.Version,
		Security: c.Security, Archive: c.Archive, URI: c.URI, Size: c.Size, SHA256: c.SHA256,
	}
}

func (a *aptPackages) Source() string { return policy.SourceApt }

func (a *aptPackages) CompareVersions(x, y string) (int, error) { return vercmp.Deb(x, y) }

func (a *aptPackages) Refresh(ctx context.Context) error { return a.b.Refresh(ctx) }

func (a *aptPackages) Upgradable(ctx context.Context) ([]Candidate, error) {
	cs, err := a.b.Upgradable(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Candidate, len(cs))
	for i, c := range cs {
		out[i] = fromApt(c)
	}
	return out, nil
}

func (a *aptPackages) Candidate(ctx context.Context, pkg, version string) (Candidate, error) {
	c, err := a.b.Candidate(ctx, pkg, version)
	return fromApt(c), err
}

// Place lets the backend write the verified payload beside apt's
// archives, check its control fields and move it into place.
func (a *aptPackages) Place(ctx context.Context, r io.Reader, c Candidate) error {
	_, err := a.b.PlaceFrom(ctx, r, c.Package, c.Version, c.Arch)
	return err
}

// stage copies a verified payload into a file in apt's partial directory
// (same file system as the archives); done removes it.
func (a *aptPackages) stage(r io.Reader) (path string, done func(), err error) {
	partial := filepath.Join(a.b.Paths().Archives, "partial")
	if err := os.MkdirAll(partial, 0o755); err != nil {
		return "", nil, err
	}
	f, err := os.CreateTemp(partial, ".patchring-stage-*.deb")
	if err != nil {
		return "", nil, err
	}
	done = func() { os.Remove(f.Name()) }
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		done()
		return "", nil, fmt.Errorf("stage payload: %w", err)
	}
	if err := f.Close(); err != nil {
		done()
		return "", nil, err
	}
	return f.Name(), done, nil
}

// Install installs exact versions. Payloads the engine placed are used as
// they are; anything else apt needs (a new dependency) it downloads and
// verifies against the same signed indices.
func (a *aptPackages) Install(ctx context.Context, pkgs []PkgVersion, allowDowngrades bool) error {
	pv := make([]apt.PkgVersion, len(pkgs))
	for i, p := range pkgs {
		pv[i] = apt.PkgVersion{Name: p.Package, Version: p.Version}
	}
	return a.b.Install(ctx, pv, apt.InstallOptions{AllowDowngrades: allowDowngrades})
}

func (a *aptPackages) InstalledVersion(ctx context.Context, pkg string) (string, error) {
	return a.b.InstalledVersion(ctx, pkg)
}

func (a *aptPackages) ConfigurePending(ctx context.Context) error { return a.b.ConfigurePending(ctx) }

func (a *aptPackages) Audit(ctx context.Context) ([]string, error) { return a.b.Audit(ctx) }

func (a *aptPackages) WaitLock(ctx context.Context, timeout time.Duration) error {
	return a.b.WaitLock(ctx, timeout)
}

func (a *aptPackages) FreeSpace(ctx context.Context) (uint64, error) {
	return apt.FreeSpace(a.b.Paths().Archives)
}

func (a *aptPackages) RebootRequired() (bool, []string) { return a.b.RebootRequired() }

func (a *aptPackages) Files(ctx context.Context, pkgs ...string) ([]string, error) {
	return a.b.Files(ctx, pkgs...)
}

func toApt(pkgs []PkgVersion) []apt.PkgVersion {
	pv := make([]apt.PkgVersion, len(pkgs))
	for i, p := range pkgs {
		pv[i] = apt.PkgVersion{Name: p.Package, Version: p.Version}
	}
	return pv
}

func (a *aptPackages) Simulate(ctx context.Context, pkgs []PkgVersion, remove []string) ([]Change, error) {
	plan, err := a.b.Simulate(ctx, toApt(pkgs), remove)
	if err != nil {
		return nil, err
	}
	out := make([]Change, len(plan.Changes))
	for i, c := range plan.Changes {
		out[i] = Change{Package: c.Package, Arch: c.Arch, From: c.From, To: c.To}
	}
	return out, nil
}

func (a *aptPackages) Payloads(ctx context.Context, pkgs, previous []PkgVersion) (cur, prev []Candidate, err error) {
	cs, ps, err := a.b.PayloadsAndPrevious(ctx, toApt(pkgs), toApt(previous))
	if err != nil {
		return nil, nil, err
	}
	for _, c := range cs {
		cand := fromApt(c)
		cand.Depends = c.Depends
		cur = append(cur, cand)
	}
	for _, c := range ps {
		prev = append(prev, fromApt(c))
	}
	return cur, prev, nil
}

func (a *aptPackages) Apply(ctx context.Context, pkgs []PkgVersion, remove []string, allowDowngrades, noDownload bool) error {
	return a.b.Apply(ctx, toApt(pkgs), remove, apt.ApplyOptions{AllowDowngrades: allowDowngrades, NoDownload: noDownload})
}

func (a *aptPackages) Installed(ctx context.Context) (map[string]string, error) {
	return a.b.Installed(ctx)
}
