package inventory

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/patchring/patchring/platform/dpkgstatus"
	"github.com/patchring/patchring/platform/vercmp"
)

// fromDpkg converts the dpkg database, skipping records dpkg-query -W does
// not list (not-installed).
func fromDpkg(pkgs []dpkgstatus.Package) []Package {
	out := make([]Package, 0, len(pkgs))
	for i := range pkgs {
		p := &pkgs[i]
		if !p.Listed() {
			continue
		}
		out = append(out, Package{
			Manager:       "dpkg",
			Name:          p.Name,
			Version:       p.Version,
			Architecture:  p.Architecture,
			Source:        p.Source,
			SourceVersion: p.SourceVersion,
			Status:        string(p.State),
			Want:          string(p.Want),
			Broken:        p.Flag == "reinstreq",
		})
	}
	return out
}

// rpmQueryFormat is the --queryformat patchring asks rpm for: one package
// a line, tab-separated name, [epoch:]version-release, arch, source rpm and
// install time (Unix seconds).
const rpmQueryFormat = `%{NAME}\t%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\t%{ARCH}\t%{SOURCERPM}\t%{INSTALLTIME}\n`

// parseRPMQuery reads `rpm -qa --queryformat rpmQueryFormat` output.
// gpg-pubkey pseudo packages are skipped (they are keys, not software).
func parseRPMQuery(data []byte) ([]Package, error) {
	var out []Package
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "" {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 5 || f[0] == "" || f[1] == "" {
			return nil, fmt.Errorf("rpm output line %d: want 5 tab-separated fields (name, evr, arch, sourcerpm, installtime), got %q", i+1, line)
		}
		if f[0] == "gpg-pubkey" {
			continue
		}
		p := Package{Manager: "rpm", Name: f[0], Version: f[1], Architecture: f[2], Status: "installed"}
		if p.Architecture == "(none)" {
			p.Architecture = ""
		}
		if src, ver, ok := splitSourceRPM(f[3]); ok {
			p.Source, p.SourceVersion = src, ver
		} else {
			p.Source, p.SourceVersion = p.Name, p.Version
		}
		if n, err := strconv.ParseInt(f[4], 10, 64); err == nil && n > 0 {
			p.InstalledAt = time.Unix(n, 0).UTC()
		}
		out = append(out, p)
	}
	return out, nil
}

// splitSourceRPM splits "bash-5.1.8-6.el9.src.rpm" into "bash" and
// "5.1.8-6.el9".
func splitSourceRPM(s string) (name, version string, ok bool) {
	base, found := strings.CutSuffix(s, ".src.rpm")
	if !found {
		if base, found = strings.CutSuffix(s, ".nosrc.rpm"); !found {
			return "", "", false
		}
	}
	r := strings.LastIndexByte(base, '-')
	if r <= 0 {
		return "", "", false
	}
	v := strings.LastIndexByte(base[:r], '-')
	if v <= 0 {
		return "", "", false
	}
	return base[:v], base[v+1:], true
}

// counts summarises a package list.
func counts(items []Package) Counts {
	c := Counts{Total: len(items), ByManager: map[string]int{}}
	for i := range items {
		p := &items[i]
		c.ByManager[p.Manager]++
		if p.Present() {
			c.Present++
		}
		switch p.Status {
		case "config-files":
			c.ConfigFiles++
		case "half-installed", "half-configured":
			c.Broken++
			continue
		}
		if p.Broken {
			c.Broken++
		}
	}
	return c
}

// kernelRelease tells whether p is a kernel image package and which
// `uname -r` it boots as.
func kernelRelease(p *Package) (string, bool) {
	switch p.Manager {
	case "dpkg":
		rel, ok := strings.CutPrefix(p.Name, "linux-image-")
		if !ok {
			return "", false
		}
		rel = strings.TrimPrefix(rel, "unsigned-")
		if rel == "" || rel[0] < '0' || rel[0] > '9' {
			return "", false // a meta package such as linux-image-amd64
		}
		return rel, true
	case "rpm":
		switch p.Name {
		case "kernel", "kernel-core", "kernel-uek", "kernel-rt-core", "kernel-default", "kernel-64k-core":
		default:
			return "", false
		}
		evr, err := vercmp.ParseRPM(p.Version)
		if err != nil || evr.Release == "" {
			return "", false
		}
		if p.Name == "kernel-default" {
			// SUSE: 5.14.21-150500.55.39.1 boots as 5.14.21-150500.55.39-default.
			rel := evr.Release
			if i := strings.LastIndexByte(rel, '.'); i > 0 {
				rel = rel[:i]
			}
			return evr.Version + "-" + rel + "-default", true
		}
		return evr.Version + "-" + evr.Release + "." + p.Architecture, true
	}
	return "", false
}

// compareVersions orders two versions of one package manager's scheme;
// versions that do not parse compare as strings.
func compareVersions(manager, a, b string) (int, bool) {
	var c int
	var err error
	switch manager {
	case "dpkg":
		va, errA := vercmp.ParseDeb(a)
		vb, errB := vercmp.ParseDeb(b)
		if lenient(errA) && lenient(errB) {
			return vercmp.CompareDeb(va, vb), true
		}
		err = fmt.Errorf("unparsable")
	case "rpm":
		c, err = vercmp.RPM(a, b)
	default:
		err = fmt.Errorf("no scheme")
	}
	if err != nil {
		return strings.Compare(a, b), false
	}
	return c, true
}

// lenient accepts the versions dpkg itself still compares (syntax
// warnings).
func lenient(err error) bool {
	if err == nil {
		return true
	}
	se, ok := err.(*vercmp.SyntaxError)
	return ok && se.Warning
}

// kernels finds the installed kernel images and compares them with the
// running kernel.
func kernels(items []Package, running string) Kernels {
	k := Kernels{Running: running}
	type kernel struct {
		KernelPackage
		manager string
	}
	var found []kernel
	for i := range items {
		p := &items[i]
		if !p.Present() {
			continue
		}
		rel, ok := kernelRelease(p)
		if !ok {
			continue
		}
		found = append(found, kernel{KernelPackage{Package: p.Name, Version: p.Version, Release: rel, Running: rel == running}, p.Manager})
		if rel == running {
			k.RunningInstalled = true
		}
	}
	// The newest first: by package version, then by release (which holds
	// the ABI number in Debian's per-ABI package names).
	slices.SortStableFunc(found, func(a, b kernel) int {
		if a.manager == b.manager {
			if c, _ := compareVersions(a.manager, b.Version, a.Version); c != 0 {
				return c
			}
		}
		c, _ := compareVersions("dpkg", b.Release, a.Release)
		return c
	})
	for _, f := range found {
		k.Installed = append(k.Installed, f.KernelPackage)
	}
	if len(found) > 0 {
		k.Manager = found[0].manager
	}
	if len(k.Installed) > 0 {
		k.Newest = k.Installed[0].Release
	}
	return k
}
