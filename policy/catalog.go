package policy

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"
)

// CatalogEntry is the metadata of a third-party payload, stored as the
// custom metadata of its TUF target.
type CatalogEntry struct {
	Package string `json:"package"`
	Version string `json:"version"`
	// Scope limits the nodes the entry applies to (JSON "applies_to"; the
	// Go name differs because AppliesTo is the method that checks it).
	Scope          AppliesTo `json:"applies_to,omitzero"`
	Reboot         bool      `json:"reboot,omitempty"`
	Severity       string    `json:"severity,omitempty"`       // low, medium, high, critical (empty: unknown)
	Classification string    `json:"classification,omitempty"` // security, bugfix, enhancement, other
	CVEs           []string  `json:"cves,omitempty"`           // CVE-YYYY-NNNN...
}

// AppliesTo limits an entry to matching nodes; every list that is set must
// match (any of its items). Empty means every node.
type AppliesTo struct {
	OSID            []string `json:"os_id,omitempty"`            // globs of os-release ID: "debian", "ubuntu"
	OSVersion       []string `json:"os_version,omitempty"`       // globs of VERSION_ID: "12", "22.*"
	Arch            []string `json:"arch,omitempty"`             // dpkg or rpm architectures: "amd64" or "x86_64" (the same, see SameArch)
	RequiresPackage []string `json:"requires_package,omitempty"` // packages that must be installed (all of them)
}

var (
	packageRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9+._~-]{0,127}$`)
	versionRE = regexp.MustCompile(`^[A-Za-z0-9.+~:_-]{1,128}$`)
	archRE    = regexp.MustCompile(`^[a-z0-9_-]{1,32}$`)
	cveRE     = regexp.MustCompile(`^CVE-[0-9]{4}-[0-9]{4,}$`)
)

// ParseCatalogEntry reads catalog metadata (JSON, unknown fields rejected)
// and validates it.
func ParseCatalogEntry(data []byte) (CatalogEntry, error) {
	var e CatalogEntry
	if len(data) > 1<<20 {
		return CatalogEntry{}, &ValidationError{Problems: []Problem{{Msg: fmt.Sprintf("catalog entry is %d bytes; at most 1 MiB", len(data))}}}
	}
	if err := decodeStrictJSON(data, &e); err != nil {
		ps := &problems{}
		jsonProblem(data, err, ps)
		return CatalogEntry{}, ps.err("")
	}
	if err := e.Validate(); err != nil {
		return CatalogEntry{}, err
	}
	return e, nil
}

// Validate checks every field and returns a *ValidationError listing all
// problems, or nil.
func (e CatalogEntry) Validate() error {
	ps := &problems{}
	switch {
	case e.Package == "":
		ps.at("package", "is required")
	case !packageRE.MatchString(e.Package):
		ps.at("package", "%q is not a package name; use letters, digits and + . _ ~ - (up to 128)", e.Package)
	}
	switch {
	case e.Version == "":
		ps.at("version", "is required")
	case !versionRE.MatchString(e.Version):
		ps.at("version", "%q is not a version; use letters, digits and . + ~ : _ - (up to 128)", e.Version)
	}
	if e.Severity != "" && !slices.Contains(severities, e.Severity) {
		ps.at("severity", "'%s' is not a severity; use one of %s", e.Severity, strings.Join(severities[1:], ", "))
	}
	if e.Classification != "" && !slices.Contains(classifications, e.Classification) {
		ps.at("classification", "'%s' is not a classification; use one of %s", e.Classification, strings.Join(classifications, ", "))
	}
	for i, c := range e.CVEs {
		if !cveRE.MatchString(c) {
			ps.at(indexPath("cves", i), "%q is not a CVE ID; use e.g. CVE-2024-6387", c)
		}
	}
	a := e.Scope
	for _, l := range []struct {
		name  string
		items []string
	}{{"os_id", a.OSID}, {"os_version", a.OSVersion}} {
		for i, g := range l.items {
			if _, err := path.Match(g, ""); err != nil || g == "" || strings.ContainsAny(g, " \t\n") {
				ps.at(indexPath("applies_to."+l.name, i), "'%s' is not a valid pattern; use * ? and [...]", g)
			}
		}
	}
	for i, arch := range a.Arch {
		if !archRE.MatchString(arch) {
			ps.at(indexPath("applies_to.arch", i), "%q is not an architecture; use dpkg or rpm names like amd64, x86_64, arm64, aarch64", arch)
		}
	}
	for i, pkg := range a.RequiresPackage {
		if !packageRE.MatchString(pkg) {
			ps.at(indexPath("applies_to.requires_package", i), "%q is not a package name", pkg)
		}
	}
	return ps.err("")
}

// AppliesTo reports whether the entry applies to the node, and if not, why.
func (e CatalogEntry) AppliesTo(f NodeFacts) (bool, string) {
	a := e.Scope
	anyGlob := func(globs []string, s string) bool {
		return slices.ContainsFunc(globs, func(g string) bool { ok, _ := path.Match(g, s); return ok })
	}
	if len(a.OSID) > 0 && !anyGlob(a.OSID, f.OSID) {
		return false, fmt.Sprintf("OS %q is not one of %s", f.OSID, strings.Join(a.OSID, ", "))
	}
	if len(a.OSVersion) > 0 && !anyGlob(a.OSVersion, f.OSVersion) {
		return false, fmt.Sprintf("OS version %q is not one of %s", f.OSVersion, strings.Join(a.OSVersion, ", "))
	}
	if len(a.Arch) > 0 && !slices.ContainsFunc(a.Arch, func(x string) bool { return SameArch(x, f.Arch) }) {
		return false, fmt.Sprintf("architecture %q is not one of %s", f.Arch, strings.Join(a.Arch, ", "))
	}
	for _, pkg := range a.RequiresPackage {
		if _, ok := f.Installed[pkg]; !ok {
			return false, fmt.Sprintf("requires package %s, which is not installed", pkg)
		}
	}
	return true, "applies"
}

// Update returns the update this entry offers a node, given the installed
// version (if any) and when the fleet first saw it.
func (e CatalogEntry) Update(installed string, firstSeen time.Time) Update {
	return Update{Source: SourceCatalog, Package: e.Package, Version: e.Version, InstalledVersion: installed,
		Classification: e.Classification, Severity: e.Severity, FirstSeen: firstSeen, Reboot: e.Reboot}
}

// archAliases maps rpm architecture names to dpkg's, so a scope written
// for one package manager matches nodes of the other.
var archAliases = map[string]string{
	"x86_64": "amd64", "aarch64": "arm64", "i686": "i386", "i586": "i386",
	"ppc64le": "ppc64el", "armv7hl": "armhf", "noarch": "all",
}

// SameArch reports whether two architecture names (dpkg's or rpm's) name
// the same architecture: x86_64 is amd64, aarch64 is arm64, and so on.
func SameArch(a, b string) bool {
	if v, ok := archAliases[a]; ok {
		a = v
	}
	if v, ok := archAliases[b]; ok {
		b = v
	}
	return a == b
}
