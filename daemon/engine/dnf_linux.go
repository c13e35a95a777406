package engine

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/patchring/patchring/platform/dnf"
	"github.com/patchring/patchring/platform/vercmp"
	"github.com/patchring/patchring/policy"
)

// dnfPackages adapts the dnf backend to the engine. Versions are rpm's
// [epoch:]version-release; a package is named by its name (one
// architecture per name: multilib pairs are not managed).
type dnfPackages struct {
	b *dnf.Backend
}

var _ Packages = (*dnfPackages)(nil)

// DnfPackages returns the engine's view of a dnf backend.
func DnfPackages(b *dnf.Backend) Packages { return &dnfPackages{b: b} }

func (d *dnfPackages) Source() string { return policy.SourceDnf }

func (d *dnfPackages) CompareVersions(a, b string) (int, error) { return vercmp.RPM(a, b) }

func (d *dnfPackages) Refresh(ctx context.Context) error { return d.b.Refresh(ctx) }

// dnfSeverity maps updateinfo severities to the policy's.
func dnfSeverity(s string) string {
	switch s {
	case "Critical":
		return policy.SeverityCritical
	case "Important":
		return policy.SeverityHigh
	case "Moderate":
		return policy.SeverityMedium
	case "Low":
		return policy.SeverityLow
	}
	return ""
}

func fromDnfPayload(p dnf.Payload) Candidate {
	return Candidate{Package: p.Name, Arch: p.Arch, Version: p.EVR.String(), Archive: p.Repo, URI: p.URL, Size: p.Size, SHA256: p.SHA256}
}

// Upgradable lists dnf's updates with their security advisories and the
// payload each would install, from the metadata dnf verified.
func (d *dnfPackages) Upgradable(ctx context.Context) ([]Candidate, error) {
	ups, err := d.b.Upgradable(ctx)
	if err != nil || len(ups) == 0 {
		return nil, err
	}
	specs := make([]string, len(ups))
	for i, u := range ups {
		specs[i] = u.NEVRA().String()
	}
	pays, err := d.b.Payloads(ctx, specs)
	if err != nil {
		return nil, fmt.Errorf("upgradable: %w", err)
	}
	installed, err := d.Installed(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Candidate, len(ups))
	for i, u := range ups {
		c := fromDnfPayload(pays[i])
		c.Installed = installed[u.Name]
		c.Security, c.Severity, c.Advisories = u.Security, dnfSeverity(u.Severity), u.Advisories
		out[i] = c
	}
	return out, nil
}

func (d *dnfPackages) Candidate(ctx context.Context, pkg, version string) (Candidate, error) {
	ps, err := d.b.Payloads(ctx, []string{pkg + "-" + version})
	if err != nil {
		return Candidate{}, err
	}
	return fromDnfPayload(ps[0]), nil
}

// stage copies a verified payload into a file next to the placed ones
// (same file system, so placing is a rename); done removes it.
func (d *dnfPackages) stage(r io.Reader) (string, func(), error) {
	dir := filepath.Join(d.b.Paths().PlaceDir, ".partial")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", nil, err
	}
	f, err := os.CreateTemp(dir, ".patchring-stage-*.rpm")
	if err != nil {
		return "", nil, err
	}
	done := func() { os.Remove(f.Name()) }
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		done()
		return "", nil, fmt.Errorf("stage payload: %w", err)
	}
	if err := f.Sync(); err != nil {
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

func (d *dnfPackages) Place(ctx context.Context, r io.Reader, c Candidate) error {
	staged, done, err := d.stage(r)
	if err != nil {
		return err
	}
	defer done()
	_, err = d.b.Place(ctx, staged, c.Package, c.Version, c.Arch)
	return err
}

func (d *dnfPackages) PlaceFile(ctx context.Context, r io.Reader, pkg, version string) error {
	staged, done, err := d.stage(r)
	if err != nil {
		return err
	}
	defer done()
	_, err = d.b.Place(ctx, staged, pkg, version, "")
	return err
}

// targets turns exact versions into what dnf installs: the placed file,
// or (placedOnly false) the name-version spec dnf resolves from its
// repositories.
func (d *dnfPackages) targets(pkgs []PkgVersion, placedOnly bool) ([]string, error) {
	out := make([]string, 0, len(pkgs))
	for _, p := range pkgs {
		if path, ok := d.b.Placed(p.Package, p.Version); ok {
			out = append(out, path)
			continue
		}
		if placedOnly {
			return nil, fmt.Errorf("install %s %s: %w", p.Package, p.Version, dnf.ErrNotPlaced)
		}
		out = append(out, p.Package+"-"+p.Version)
	}
	return out, nil
}

// noDowngrade refuses a downgrade the caller did not allow (dnf install
// downgrades to an older file without asking).
func (d *dnfPackages) noDowngrade(ctx context.Context, pkgs []PkgVersion) error {
	for _, p := range pkgs {
		cur, err := d.b.InstalledVersion(ctx, p.Package)
		if err != nil {
			return err
		}
		if cur == "" {
			continue
		}
		if c, err := vercmp.RPM(p.Version, cur); err == nil && c < 0 {
			return fmt.Errorf("install %s %s would downgrade it from %s", p.Package, p.Version, cur)
		}
	}
	return nil
}

func (d *dnfPackages) Install(ctx context.Context, pkgs []PkgVersion, allowDowngrades bool) error {
	if !allowDowngrades {
		if err := d.noDowngrade(ctx, pkgs); err != nil {
			return err
		}
	}
	ts, err := d.targets(pkgs, false)
	if err != nil {
		return err
	}
	return d.b.Apply(ctx, ts, nil, false)
}

func (d *dnfPackages) InstallFiles(ctx context.Context, pkgs []PkgVersion, allowDowngrades bool) error {
	if !allowDowngrades {
		if err := d.noDowngrade(ctx, pkgs); err != nil {
			return err
		}
	}
	ts, err := d.targets(pkgs, true)
	if err != nil {
		return err
	}
	// Catalog payloads: the TUF targets signature over their hash is
	// their trust, not an rpm signature of a key the node knows.
	return d.b.InstallVerified(ctx, ts)
}

func (d *dnfPackages) InstalledVersion(ctx context.Context, pkg string) (string, error) {
	return d.b.InstalledVersion(ctx, pkg)
}

// ConfigurePending finishes a transaction rpm left half done: the older
// of two installed versions is removed.
func (d *dnfPackages) ConfigurePending(ctx context.Context) error { return d.b.RemoveDuplicates(ctx) }

// Audit lists what an interrupted rpm transaction left: packages
// installed at two versions.
func (d *dnfPackages) Audit(ctx context.Context) ([]string, error) { return d.b.Duplicates(ctx) }

func (d *dnfPackages) WaitLock(ctx context.Context, timeout time.Duration) error {
	return d.b.WaitLock(ctx, timeout)
}

func (d *dnfPackages) FreeSpace(ctx context.Context) (uint64, error) { return d.b.FreeSpace() }

// RebootRequired asks dnf needs-restarting -r; without the plugin it
// reports no reboot.
func (d *dnfPackages) RebootRequired() (bool, []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	req, pkgs, err := d.b.NeedsReboot(ctx)
	if err != nil {
		return false, nil
	}
	return req, pkgs
}

func (d *dnfPackages) Remove(ctx context.Context, pkgs ...string) error {
	return d.b.Apply(ctx, nil, pkgs, true)
}

func (d *dnfPackages) Simulate(ctx context.Context, pkgs []PkgVersion, remove []string) ([]Change, error) {
	ts, err := d.targets(pkgs, false)
	if err != nil {
		return nil, err
	}
	rows, err := d.b.Simulate(ctx, ts, remove)
	if err != nil {
		return nil, err
	}
	installed, err := d.Installed(ctx)
	if err != nil {
		return nil, err
	}
	var out []Change
	for _, r := range rows {
		switch r.Action {
		case dnf.TxReinstall:
			continue
		case dnf.TxRemove:
			out = append(out, Change{Package: r.Name, Arch: r.Arch, From: r.EVR.String()})
		default:
			out = append(out, Change{Package: r.Name, Arch: r.Arch, From: installed[r.Name], To: r.EVR.String()})
		}
	}
	// An upgrade's "replacing" row of the same package is not a removal.
	var res []Change
	for _, c := range out {
		if c.To == "" && strings.TrimSpace(c.From) != "" {
			dup := false
			for _, o := range out {
				if o.Package == c.Package && o.To != "" {
					dup = true
				}
			}
			if dup {
				continue
			}
		}
		res = append(res, c)
	}
	return res, nil
}

func (d *dnfPackages) Payloads(ctx context.Context, pkgs, previous []PkgVersion) (cur, prev []Candidate, err error) {
	specs := func(pvs []PkgVersion) []string {
		out := make([]string, len(pvs))
		for i, p := range pvs {
			out[i] = p.Package + "-" + p.Version
		}
		return out
	}
	cs, ps, err := d.b.PayloadsAndPrevious(ctx, specs(pkgs), specs(previous))
	if err != nil {
		return nil, nil, err
	}
	for _, p := range cs {
		cur = append(cur, fromDnfPayload(p))
	}
	for _, p := range ps {
		prev = append(prev, fromDnfPayload(p))
	}
	return cur, prev, nil
}

func (d *dnfPackages) Apply(ctx context.Context, pkgs []PkgVersion, remove []string, allowDowngrades, noDownload bool) error {
	if !allowDowngrades {
		if err := d.noDowngrade(ctx, pkgs); err != nil {
			return err
		}
	}
	ts, err := d.targets(pkgs, noDownload)
	if err != nil {
		return err
	}
	return d.b.Apply(ctx, ts, remove, noDownload)
}

func (d *dnfPackages) Installed(ctx context.Context) (map[string]string, error) {
	pkgs, err := d.b.Installed(ctx)
	if err != nil {
		return nil, err
	}
	m := make(map[string]string, len(pkgs))
	for _, p := range pkgs {
		if cur, ok := m[p.Name]; ok {
			if c, err := vercmp.RPM(cur, p.EVR.String()); err == nil && c >= 0 {
				continue
			}
		}
		m[p.Name] = p.EVR.String()
	}
	return m, nil
}

// Files lists the installed files of pkgs from the rpm database.
func (d *dnfPackages) Files(ctx context.Context, pkgs ...string) ([]string, error) {
	return d.b.Files(ctx, pkgs...)
}
