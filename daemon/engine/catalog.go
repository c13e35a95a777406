package engine

// The catalog backend: third-party payloads from the fleet's signed
// catalog (TUF targets catalog/<package>/<version>/<file>) that apply to
// this node. They are offered to the policy as updates with source
// "catalog", fetched into the content store against the length and SHA-256
// the targets metadata signed, and installed from the file by the package
// manager (apt installs a .deb file and resolves its dependencies from its
// sources). Transactions, journal, rollback and recovery are the same as
// for apt updates.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/patchring/patchring/policy"
)

// CatalogItem is one verified entry of the signed catalog.
type CatalogItem struct {
	// Target is the TUF target name of the payload.
	Target string
	// Entry is the entry's metadata. Its Scope is used when Scopes is
	// empty.
	Entry policy.CatalogEntry
	// Scopes are alternatives: the entry applies to a node when any of
	// them does (see ParseScopes).
	Scopes []policy.AppliesTo
	// Format is the payload's package format, "deb" or "rpm" (from the
	// entry, else the target's file name); "" when neither says. An agent
	// installs only its package manager's format (PayloadFormat).
	Format string
	// Arch is the package's architecture from the entry ("" when it does
	// not say); noarch and all fit every node.
	Arch string
	// Size and SHA256 are the payload's signed length and hash.
	Size   int64
	SHA256 string
	// Problem says why the entry cannot be acted on; "" when it can.
	Problem string
}

// AppliesTo reports whether the item applies to the node f describes, and
// if not, why (policy.CatalogEntry.AppliesTo for each scope).
func (it CatalogItem) AppliesTo(f policy.NodeFacts) (bool, string) {
	if it.Arch != "" && !policy.SameArch(it.Arch, "all") && !policy.SameArch(it.Arch, f.Arch) {
		return false, fmt.Sprintf("the package is built for %s, not the node's %q", it.Arch, f.Arch)
	}
	if len(it.Scopes) == 0 {
		return it.Entry.AppliesTo(f)
	}
	var whys []string
	for _, s := range it.Scopes {
		e := it.Entry
		e.Scope = s
		ok, why := e.AppliesTo(f)
		if ok {
			return true, why
		}
		if !slices.Contains(whys, why) {
			whys = append(whys, why)
		}
	}
	return false, strings.Join(whys, "; ")
}

// PayloadFormat is the catalog payload format the package manager of
// source (policy.SourceApt or SourceDnf) installs: "deb" or "rpm"; ""
// for any other.
func PayloadFormat(source string) string {
	switch source {
	case policy.SourceApt:
		return "deb"
	case policy.SourceDnf:
		return "rpm"
	}
	return ""
}

// formatFromName guesses a payload's format from its target name.
func formatFromName(target string) string {
	switch strings.ToLower(path.Ext(target)) {
	case ".deb":
		return "deb"
	case ".rpm":
		return "rpm"
	}
	return ""
}

// Catalog is the signed third-party catalog the engine offers updates
// from. TrustCatalog implements it over the fleet's TUF repository.
type Catalog interface {
	// Items returns the verified entries.
	Items() []CatalogItem
	// Payload returns where the payload of a verified target is served
	// and its signed length and SHA-256, from the current verified state.
	// It fails once that state has expired.
	Payload(target string) (Payload, error)
}

// ParseScopes reads the applies_to list of a catalog entry as the admin
// tools write it (`patchring catalog add --applies-to`) into alternative
// scopes. Each item is one of:
//
//	debian, debian-12, ubuntu-22.*   an OS: os-release ID, optionally "-" and VERSION_ID (globs allowed)
//	os:ID[-VERSION]                  the same, explicitly
//	arch:amd64                       a dpkg architecture
//	requires:PACKAGE                 a package that must be installed
//
// The entry applies when the node runs any of the OSes listed (any OS when
// none is), has any of the architectures listed (any when none is) and has
// every required package installed. An OS item is split at its last "-"
// that is followed by a digit or a glob character, so "opensuse-leap-15.*"
// is ID opensuse-leap, version 15.*. An empty list applies everywhere.
func ParseScopes(items []string) ([]policy.AppliesTo, error) {
	var base policy.AppliesTo
	type osItem struct{ id, version string }
	var oses []osItem
	var errs []error
	for i, raw := range items {
		kind, val, ok := strings.Cut(raw, ":")
		if !ok {
			kind, val = "os", raw
		}
		if val == "" {
			errs = append(errs, fmt.Errorf("applies_to[%d] %q: empty value", i, raw))
			continue
		}
		switch kind {
		case "os":
			id, version := splitOS(val)
			oses = append(oses, osItem{id, version})
		case "arch":
			base.Arch = append(base.Arch, val)
		case "requires":
			base.RequiresPackage = append(base.RequiresPackage, val)
		default:
			errs = append(errs, fmt.Errorf("applies_to[%d] %q: unknown kind %q; use an OS such as debian-12, or os:ID, arch:ARCH, requires:PACKAGE", i, raw, kind))
		}
	}
	var scopes []policy.AppliesTo
	if len(oses) == 0 {
		scopes = []policy.AppliesTo{base}
	}
	for _, o := range oses {
		s := base
		s.OSID = []string{o.id}
		if o.version != "" {
			s.OSVersion = []string{o.version}
		}
		scopes = append(scopes, s)
	}
	// The policy's own rules for patterns, architectures and names.
	for _, s := range scopes {
		if err := (policy.CatalogEntry{Package: "x", Version: "0", Scope: s}).Validate(); err != nil {
			errs = append(errs, fmt.Errorf("applies_to: %w", err))
			break
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return scopes, nil
}

// splitOS splits "debian-12" into "debian" and "12": at the last "-"
// followed by a digit or a glob character.
func splitOS(s string) (id, version string) {
	for i := len(s) - 2; i > 0; i-- {
		if s[i] == '-' && strings.ContainsRune("0123456789*?[", rune(s[i+1])) {
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}

// catalogKey identifies an entry among the plan's catalog updates.
func catalogKey(pkg, version string) string { return pkg + "=" + version }

// catalogUpdates lists the catalog's updates for this node: the newest
// entry of each package that applies to the node and is newer than the
// installed version (or not installed). aptOffers holds the apt
// candidates by package=version; an entry apt offers at the same version
// is left to apt.
func (e *Engine) catalogUpdates(ctx context.Context, now time.Time, aptOffers map[string]Candidate) ([]policy.Update, map[string]CatalogItem, error) {
	if e.cfg.Catalog == nil {
		return nil, nil, nil
	}
	f := e.cfg.Facts()
	f.Installed = maps.Clone(f.Installed)
	if f.Installed == nil {
		f.Installed = map[string]string{}
	}
	installed := func(pkg string) (string, error) {
		v, err := e.cfg.Packages.InstalledVersion(ctx, pkg)
		if v != "" {
			err = nil // unpacked or half-configured still counts as installed at v
		}
		return v, err
	}
	best := map[string]CatalogItem{} // by package
	problems := map[string]string{}
	format := PayloadFormat(e.cfg.Packages.Source())
	for _, it := range e.cfg.Catalog.Items() {
		if it.Problem != "" {
			problems[it.Target] = it.Problem
			continue
		}
		if it.Format != "" && format != "" && it.Format != format {
			e.cfg.Log.Debug("engine: catalog entry is for another package manager", "target", it.Target, "format", it.Format, "ours", format)
			continue
		}
		pkg := it.Entry.Package
		// The node's packages the entry asks about, live from dpkg.
		for _, name := range append(requiredPackages(it), pkg) {
			if _, known := f.Installed[name]; known && name != pkg {
				continue
			}
			v, err := installed(name)
			if err != nil {
				return nil, nil, fmt.Errorf("plan: catalog %s: installed version of %s: %w", it.Target, name, err)
			}
			if v == "" {
				delete(f.Installed, name)
			} else {
				f.Installed[name] = v
			}
		}
		if ok, why := it.AppliesTo(f); !ok {
			e.cfg.Log.Debug("engine: catalog entry does not apply to this node", "target", it.Target, "why", why)
			continue
		}
		if cur := f.Installed[pkg]; cur != "" {
			c, err := e.cfg.Packages.CompareVersions(it.Entry.Version, cur)
			if err != nil {
				problems[it.Target] = fmt.Sprintf("version %q cannot be compared with the installed %q: %v", it.Entry.Version, cur, err)
				continue
			}
			if c <= 0 {
				continue // installed at this version or a newer one
			}
		}
		if _, ok := aptOffers[catalogKey(pkg, it.Entry.Version)]; ok {
			continue // the vendor's repository offers the same version
		}
		if prev, ok := best[pkg]; ok {
			if c, err := e.cfg.Packages.CompareVersions(it.Entry.Version, prev.Entry.Version); err != nil || c <= 0 {
				continue
			}
		}
		best[pkg] = it
	}
	e.noteCatalogProblems(problems)

	items := make(map[string]CatalogItem, len(best))
	updates := make([]policy.Update, 0, len(best))
	for _, pkg := range slices.Sorted(maps.Keys(best)) {
		it := best[pkg]
		u := it.Entry.Update(f.Installed[pkg], time.Time{})
		if u.Classification == "" {
			u.Classification = policy.ClassOther
		}
		first, err := e.firstSeen(u, now)
		if err != nil {
			return nil, nil, err
		}
		u.FirstSeen = first
		updates = append(updates, u)
		items[catalogKey(pkg, it.Entry.Version)] = it
	}
	return updates, items, nil
}

func requiredPackages(it CatalogItem) []string {
	var out []string
	for _, s := range append([]policy.AppliesTo{it.Entry.Scope}, it.Scopes...) {
		out = append(out, s.RequiresPackage...)
	}
	return out
}

// noteCatalogProblems logs entries that cannot be acted on, once per
// problem rather than at every plan.
func (e *Engine) noteCatalogProblems(problems map[string]string) {
	e.mu.Lock()
	var fresh []string
	for target, p := range problems {
		if e.catalogProblems[target] != p {
			fresh = append(fresh, target)
		}
	}
	e.catalogProblems = problems
	e.mu.Unlock()
	slices.Sort(fresh)
	for _, target := range fresh {
		e.cfg.Log.Warn("engine: catalog entry ignored", "target", target, "problem", problems[target])
	}
}

// catalogProblemsText lists ignored catalog entries for the status.
func catalogProblemsText(problems map[string]string) string {
	var parts []string
	for _, target := range slices.Sorted(maps.Keys(problems)) {
		parts = append(parts, target+": "+problems[target])
	}
	return strings.Join(parts, "; ")
}

// catalogTxItem builds the transaction item of catalog update u: the
// payload as signed now and, for a rollback, the previous version's
// payload when one is known.
func (e *Engine) catalogTxItem(ctx context.Context, u policy.Update) (Item, error) {
	if e.cfg.Catalog == nil {
		return Item{}, errors.New("no catalog is configured")
	}
	e.mu.Lock()
	it, ok := e.catalog[catalogKey(u.Package, u.Version)]
	e.mu.Unlock()
	if !ok {
		return Item{}, fmt.Errorf("the catalog offers no %s %s for this node (plan again)", u.Package, u.Version)
	}
	cur, err := e.cfg.Packages.InstalledVersion(ctx, u.Package)
	if err != nil && cur == "" {
		return Item{}, fmt.Errorf("installed version: %w", err)
	}
	if cur != u.InstalledVersion {
		return Item{}, fmt.Errorf("%s is at %q now, not %q as planned (plan again)", u.Package, cur, u.InstalledVersion)
	}
	p, err := e.cfg.Catalog.Payload(it.Target)
	if err != nil {
		return Item{}, fmt.Errorf("payload %s: %w", it.Target, err)
	}
	item := Item{Source: policy.SourceCatalog, Package: u.Package, From: cur, To: u.Version, Payload: &p}
	if cur != "" {
		item.FromPayload = e.previousPayload(ctx, u.Package, cur)
	}
	return item, nil
}

// previousPayload finds a payload of pkg at version for a rollback: the
// catalog's entry if it still lists that version, else the payload an
// earlier transaction installed it from (kept in the content store for
// the rollback window), else the package manager's repositories. nil when
// none is known.
func (e *Engine) previousPayload(ctx context.Context, pkg, version string) *Payload {
	for _, it := range e.cfg.Catalog.Items() {
		if it.Problem == "" && it.Entry.Package == pkg && it.Entry.Version == version {
			if p, err := e.cfg.Catalog.Payload(it.Target); err == nil {
				return &p
			}
		}
	}
	if txs, err := e.j.list(0); err == nil {
		for _, tx := range txs {
			for _, it := range tx.Items {
				if it.Package == pkg && it.To == version && it.Payload != nil && it.Payload.SHA256 != "" {
					p := *it.Payload
					return &p
				}
			}
		}
	}
	if c, err := e.cfg.Packages.Candidate(ctx, pkg, version); err == nil && c.SHA256 != "" {
		return &Payload{URI: c.URI, Size: c.Size, SHA256: c.SHA256}
	}
	return nil
}

// placeFile puts a verified payload where InstallFiles installs it from,
// after the package manager confirmed it is pkg at version.
func (e *Engine) placeFile(ctx context.Context, pkg, version string, p *Payload) error {
	r, err := e.cfg.Content.Open(p.SHA256)
	if err != nil {
		return fmt.Errorf("place %s %s: %w", pkg, version, err)
	}
	defer r.Close()
	if err := e.cfg.Packages.PlaceFile(ctx, r, pkg, version); err != nil {
		return fmt.Errorf("place %s %s: %w", pkg, version, err)
	}
	return nil
}

// installVersions installs exact versions: named ones through the package
// manager's sources (with the payloads placed for them), files ones from
// their placed payload files (catalog packages).
func (e *Engine) installVersions(ctx context.Context, named, files []PkgVersion, allowDowngrades bool) error {
	if len(named) > 0 {
		if err := e.cfg.Packages.Install(ctx, named, allowDowngrades); err != nil {
			return err
		}
	}
	if len(files) > 0 {
		if err := e.cfg.Packages.InstallFiles(ctx, files, allowDowngrades); err != nil {
			return err
		}
	}
	return nil
}

// itemVersions splits the items' target versions (version(it)) into those
// installed from placed files (catalog items with a payload) and those
// installed by name.
func itemVersions(items []Item, version func(Item) string, payload func(Item) *Payload) (named, files []PkgVersion) {
	for _, it := range items {
		pv := PkgVersion{it.Package, version(it)}
		if it.Source == policy.SourceCatalog && payload(it) != nil {
			files = append(files, pv)
		} else {
			named = append(named, pv)
		}
	}
	return named, files
}
