package inventory

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
)

// ChangeKind names what changed between two snapshots.
type ChangeKind string

// The changes Diff reports.
const (
	PackageAdded         ChangeKind = "package-added"
	PackageRemoved       ChangeKind = "package-removed"
	PackageUpgraded      ChangeKind = "package-upgraded"
	PackageDowngraded    ChangeKind = "package-downgraded"
	PackageStatusChanged ChangeKind = "package-status-changed" // same version, e.g. installed -> half-configured
	// PackageChanged is a version change Diff cannot order (a version the
	// scheme rejects, or a manager without a scheme).
	PackageChanged ChangeKind = "package-changed"
	KernelChanged  ChangeKind = "kernel-changed" // the running kernel
	RebootRequired ChangeKind = "reboot-required"
	RebootCleared  ChangeKind = "reboot-cleared"
)

// Change is one difference between two snapshots.
type Change struct {
	Kind         ChangeKind `json:"kind"`
	Manager      string     `json:"manager,omitempty"`
	Package      string     `json:"package,omitempty"`
	Architecture string     `json:"architecture,omitempty"`
	// From and To are versions for package changes, statuses for
	// PackageStatusChanged, kernel releases for KernelChanged.
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
	// Detail explains reboot changes (the reasons).
	Detail string `json:"detail,omitempty"`
}

func (c Change) String() string {
	switch c.Kind {
	case PackageAdded:
		return fmt.Sprintf("%s %s %s", c.Kind, c.pkgName(), c.To)
	case PackageRemoved:
		return fmt.Sprintf("%s %s %s", c.Kind, c.pkgName(), c.From)
	case RebootRequired, RebootCleared:
		return strings.TrimSpace(fmt.Sprintf("%s %s", c.Kind, c.Detail))
	case KernelChanged:
		return fmt.Sprintf("%s %s -> %s", c.Kind, c.From, c.To)
	}
	return fmt.Sprintf("%s %s %s -> %s", c.Kind, c.pkgName(), c.From, c.To)
}

func (c Change) pkgName() string {
	if c.Architecture == "" {
		return c.Package
	}
	return c.Package + ":" + c.Architecture
}

type pkgKey struct{ manager, name, arch string }

// Diff lists what changed from old to new: packages added (now present,
// before absent or only config-files), removed, upgraded or downgraded
// (ordered with the manager's version scheme), status changes, a changed
// running kernel and reboot need appearing or clearing. Sections missing
// from either snapshot, and package managers not read in both, are not
// compared; a nil old snapshot (the first
// scan) has no changes. The result is sorted: system changes first, then
// packages by name.
func Diff(old, new *Snapshot) []Change {
	if old == nil || new == nil {
		return nil
	}
	var out []Change
	if old.OS != nil && new.OS != nil && old.OS.KernelRelease != new.OS.KernelRelease && old.OS.KernelRelease != "" && new.OS.KernelRelease != "" {
		out = append(out, Change{Kind: KernelChanged, From: old.OS.KernelRelease, To: new.OS.KernelRelease})
	}
	if old.Reboot != nil && new.Reboot != nil && old.Reboot.Required != new.Reboot.Required {
		if new.Reboot.Required {
			out = append(out, Change{Kind: RebootRequired, Detail: strings.Join(new.Reboot.Reasons, "; ")})
		} else {
			out = append(out, Change{Kind: RebootCleared, Detail: strings.Join(old.Reboot.Reasons, "; ")})
		}
	}
	if old.Packages != nil && new.Packages != nil {
		// Only managers read in both scans are compared: a database that
		// could not be read this time must not look like every package
		// removed.
		both := map[string]bool{}
		for _, m := range old.Packages.Managers {
			if slices.Contains(new.Packages.Managers, m) {
				both[m] = true
			}
		}
		keep := func(items []Package) []Package {
			return slices.DeleteFunc(slices.Clone(items), func(p Package) bool { return !both[p.Manager] })
		}
		out = append(out, diffPackages(keep(old.Packages.Items), keep(new.Packages.Items))...)
	}
	return out
}

func indexPackages(items []Package) map[pkgKey]*Package {
	m := make(map[pkgKey]*Package, len(items))
	for i := range items {
		p := &items[i]
		m[pkgKey{p.Manager, p.Name, p.Architecture}] = p
	}
	return m
}

func diffPackages(oldItems, newItems []Package) []Change {
	oldIdx, newIdx := indexPackages(oldItems), indexPackages(newItems)
	var out []Change
	for k, n := range newIdx {
		c := Change{Manager: k.manager, Package: k.name, Architecture: k.arch}
		o, had := oldIdx[k]
		switch {
		case (!had || !o.Present()) && n.Present():
			c.Kind, c.To = PackageAdded, n.Version
		case had && o.Present() && !n.Present():
			c.Kind, c.From = PackageRemoved, o.Version
		case had && o.Version != n.Version:
			c.From, c.To = o.Version, n.Version
			switch v, ok := compareVersions(k.manager, o.Version, n.Version); {
			case !ok:
				c.Kind = PackageChanged
			case v < 0:
				c.Kind = PackageUpgraded
			case v > 0:
				c.Kind = PackageDowngraded
			default:
				c.Kind = PackageChanged // equal but spelled differently ("1.0" vs "0:1.0")
			}
		case had && (o.Status != n.Status || o.Broken != n.Broken):
			c.Kind, c.From, c.To = PackageStatusChanged, statusText(o), statusText(n)
		default:
			continue
		}
		out = append(out, c)
	}
	for k, o := range oldIdx {
		if _, still := newIdx[k]; !still && o.Present() {
			out = append(out, Change{Kind: PackageRemoved, Manager: k.manager, Package: k.name, Architecture: k.arch, From: o.Version})
		}
	}
	slices.SortFunc(out, func(a, b Change) int {
		return cmp.Or(strings.Compare(a.Package, b.Package), strings.Compare(a.Architecture, b.Architecture),
			strings.Compare(a.Manager, b.Manager), strings.Compare(string(a.Kind), string(b.Kind)))
	})
	return out
}

func statusText(p *Package) string {
	if p.Broken {
		return p.Status + " (reinstreq)"
	}
	return p.Status
}

// Digest condenses a snapshot for gossip: a hash of the canonical package
// list and a few counts peers can compare without the whole snapshot.
type Digest struct {
	// Packages is the hex SHA-256 of the sorted lines
	// "manager\tname\tarch\tversion\tstatus\n" of every package.
	Packages       string `json:"packages"`
	PackageCount   int    `json:"package_count"`
	Kernel         string `json:"kernel,omitempty"`
	RebootRequired bool   `json:"reboot_required"`
	RestartUnits   int    `json:"restart_units"`
}

// Digest computes the snapshot's digest. Two snapshots with the same
// packages (in any order) have the same Packages hash.
func (s *Snapshot) Digest() Digest {
	var d Digest
	if s.OS != nil {
		d.Kernel = s.OS.KernelRelease
	}
	if s.Reboot != nil {
		d.RebootRequired = s.Reboot.Required
	}
	if s.Restart != nil {
		d.RestartUnits = len(s.Restart.Units)
	}
	var lines []string
	if s.Packages != nil {
		lines = make([]string, 0, len(s.Packages.Items))
		for i := range s.Packages.Items {
			p := &s.Packages.Items[i]
			lines = append(lines, p.Manager+"\t"+p.Name+"\t"+p.Architecture+"\t"+p.Version+"\t"+statusText(p)+"\n")
		}
		d.PackageCount = len(lines)
	}
	slices.Sort(lines)
	h := sha256.New()
	for _, l := range lines {
		h.Write([]byte(l))
	}
	d.Packages = hex.EncodeToString(h.Sum(nil))
	return d
}
