package apt

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// Simulate asks apt's solver what installing exactly pkgs would change
// (apt-get install -s, with the options Install uses): upgrades, new
// packages and removals, in apt's order. A request the solver cannot
// satisfy is an *InstallError with apt's explanation.
func (b *Backend) Simulate(ctx context.Context, pkgs []PkgVersion, remove []string) (Plan, error) {
	if len(pkgs) == 0 && len(remove) == 0 {
		return Plan{}, nil
	}
	args := []string{"install", "-s", "-q", "--no-install-recommends", "--allow-downgrades", "--"}
	for _, p := range pkgs {
		if err := p.Validate(); err != nil {
			return Plan{}, fmt.Errorf("simulate: %w", err)
		}
		args = append(args, b.aptSpec(p))
	}
	for _, r := range remove {
		if !validPackageName(r) {
			return Plan{}, fmt.Errorf("simulate: invalid package name %q", r)
		}
		args = append(args, r+"-")
	}
	res, err := b.run(ctx, "apt-get install -s", "apt-get", args...)
	if err != nil {
		return Plan{}, &InstallError{Op: "simulate", Packages: pkgs, Unmet: parseUnmet(res.combined), Output: res.combined, Err: err}
	}
	plan, err := parseSimulation(res.stdout)
	if err != nil {
		return Plan{}, fmt.Errorf("simulate: %w", err)
	}
	return plan, nil
}

// Payloads returns the payload of each exact version (URI, size and
// SHA-256 from the indices apt verified) with the names its Depends and
// Pre-Depends fields name, in one apt call per chunk. Every version must
// be offered by a configured source (ErrNotAvailable otherwise).
func (b *Backend) Payloads(ctx context.Context, pkgs []PkgVersion) ([]Candidate, error) {
	cur, _, err := b.PayloadsAndPrevious(ctx, pkgs, nil)
	return cur, err
}

// PayloadsAndPrevious is Payloads for pkgs that also looks up, in the same
// apt runs, the payloads of previous: the installed versions a rollback
// would reinstall. A previous version no source offers any more (the
// common case for an archive that keeps only the newest version) is left
// out of prev without an error; prev carries no Depends.
func (b *Backend) PayloadsAndPrevious(ctx context.Context, pkgs, previous []PkgVersion) (cur, prev []Candidate, err error) {
	if len(pkgs) == 0 && len(previous) == 0 {
		return nil, nil, nil
	}
	specs := make([]string, 0, len(pkgs)+len(previous))
	optional := map[string]bool{}
	for i, p := range append(slices.Clip(pkgs), previous...) {
		if err := p.Validate(); err != nil {
			return nil, nil, fmt.Errorf("payloads: %w", err)
		}
		s := b.aptSpec(p)
		specs = append(specs, s)
		if i >= len(pkgs) {
			optional[s] = true
		}
	}
	uris, err := b.printURIsOptional(ctx, specs, optional)
	if err != nil {
		if strings.Contains(err.Error(), "was not found") {
			return nil, nil, fmt.Errorf("payloads: %w: %v", ErrNotAvailable, err)
		}
		return nil, nil, fmt.Errorf("payloads: %w", err)
	}
	find := func(p PkgVersion) (Candidate, bool) {
		name := p.Name
		if p.Arch != "" {
			name += ":" + p.Arch
		}
		u, ok := findURI(uris, name, p.Version, b.paths.Arch)
		if !ok {
			return Candidate{}, false
		}
		c := Candidate{Package: p.Name, Arch: u.Arch, Version: p.Version, URI: u.URI, Filename: u.Filename, Size: u.Size, Hash: u.Hash}
		c.SHA256, _ = hashSHA256(u.Hash)
		return c, true
	}
	out := make([]Candidate, 0, len(pkgs))
	for _, p := range pkgs {
		c, ok := find(p)
		if !ok {
			return nil, nil, fmt.Errorf("payloads: %s: apt printed no payload URI: %w", p, ErrNotAvailable)
		}
		out = append(out, c)
	}
	for _, p := range previous {
		if c, ok := find(p); ok {
			prev = append(prev, c)
		}
	}
	if err := b.fillSHA256(ctx, out); err != nil {
		return nil, nil, fmt.Errorf("payloads: %w", err)
	}
	if err := b.fillSHA256(ctx, prev); err != nil {
		return nil, nil, fmt.Errorf("payloads: %w", err)
	}
	// Dependencies, for splitting a batch along dependency lines.
	showSpecs := make([]string, len(out))
	for i, c := range out {
		showSpecs[i] = b.aptSpec(c.PkgVersion())
	}
	for _, ch := range chunks(showSpecs) {
		o, err := b.output(ctx, "apt-cache show", "apt-cache", append([]string{"show", "--"}, ch...)...)
		if err != nil {
			return nil, nil, fmt.Errorf("payloads: %w", err)
		}
		st, err := parseStanzas(o)
		if err != nil {
			return nil, nil, fmt.Errorf("payloads: apt-cache show: %w", err)
		}
		for _, s := range st {
			for i := range out {
				c := &out[i]
				if s["Package"] == c.Package && s["Version"] == c.Version && s["Architecture"] == c.Arch && c.Depends == nil {
					c.Depends = append(parseDependsNames(s["Pre-Depends"]), parseDependsNames(s["Depends"])...)
					if c.Depends == nil {
						c.Depends = []string{}
					}
				}
			}
		}
	}
	return out, prev, nil
}

// Apply installs exactly the given versions and removes the named packages
// in one apt-get run, non-interactively, keeping locally changed
// configuration files, without recommends. apt-get runs with --no-remove
// unless remove names packages, so its solver can never remove a package
// the caller did not name. Errors are as Install's.
func (b *Backend) Apply(ctx context.Context, pkgs []PkgVersion, remove []string, opts ApplyOptions) error {
	if len(pkgs) == 0 && len(remove) == 0 {
		return nil
	}
	for _, p := range pkgs {
		if err := p.Validate(); err != nil {
			return fmt.Errorf("apply: %w", err)
		}
	}
	if opts.NoDownload {
		for _, p := range pkgs {
			if _, ok := b.Placed(p.Name, p.Version, p.Arch); !ok {
				return fmt.Errorf("apply %s: %w (expected %s)", p, ErrNotPlaced, b.ArchivePath(p.Name, p.Version, cmpOr(p.Arch, b.paths.Arch)))
			}
		}
	}
	args := append([]string{"install"}, b.changeArgs()...)
	args = append(args, "--no-install-recommends")
	if len(remove) == 0 {
		args = append(args, "--no-remove")
	}
	if opts.AllowDowngrades {
		args = append(args, "--allow-downgrades")
	}
	if opts.NoDownload {
		args = append(args, "--no-download")
	}
	args = append(args, "--")
	all := append([]PkgVersion(nil), pkgs...)
	for _, p := range pkgs {
		args = append(args, b.aptSpec(p))
	}
	for _, r := range remove {
		if !validPackageName(r) {
			return fmt.Errorf("apply: invalid package name %q", r)
		}
		args = append(args, r+"-")
		all = append(all, PkgVersion{Name: r, Version: "-"})
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	res, err := b.run(ctx, "apt-get install", "apt-get", args...)
	if err != nil {
		return b.changeError("install", all, res, err)
	}
	return nil
}

// Installed returns every package dpkg has installed (configured or not),
// by name, with its version. Packages of a foreign architecture are keyed
// "name:arch".
func (b *Backend) Installed(ctx context.Context) (map[string]string, error) {
	sts, err := b.statuses(ctx)
	if err != nil {
		return nil, fmt.Errorf("installed packages: %w", err)
	}
	m := make(map[string]string, len(sts))
	for _, s := range sts {
		if s.State == "not-installed" || s.State == "config-files" {
			continue
		}
		k := s.Name
		if s.Arch != "" && s.Arch != "all" && s.Arch != b.paths.Arch {
			k += ":" + s.Arch
		}
		m[k] = s.Version
	}
	return m, nil
}
