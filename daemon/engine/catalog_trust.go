package engine

import (
	"errors"
	"fmt"
	"slices"

	"github.com/patchring/patchring/policy"
	"github.com/patchring/patchring/policy/trust"
)

// trustCatalog is the catalog of the fleet's TUF repository.
type trustCatalog struct {
	entries func() []trust.CatalogEntry
	client  *trust.Client
}

var _ Catalog = (*trustCatalog)(nil)

// TrustCatalog returns the catalog of the fleet's TUF repository: the
// verified entries that entries returns (the policy service's Catalog)
// and, for payloads, the locations client finds in its last verified
// state.
func TrustCatalog(entries func() []trust.CatalogEntry, client *trust.Client) Catalog {
	return &trustCatalog{entries: entries, client: client}
}

func (c *trustCatalog) Items() []CatalogItem {
	es := c.entries()
	out := make([]CatalogItem, 0, len(es))
	for _, e := range es {
		out = append(out, CatalogItemFromTrust(e))
	}
	return out
}

// Payload locates target in the last verified state (ErrExpired once it
// has expired) and returns its first HTTP address with the signed length
// and SHA-256. The content store verifies every byte against them.
func (c *trustCatalog) Payload(target string) (Payload, error) {
	loc, err := c.client.LocateTarget(target)
	if err != nil {
		return Payload{}, err
	}
	sha := loc.Hashes["sha256"]
	if sha == "" {
		return Payload{}, fmt.Errorf("target %s has no signed sha256", target)
	}
	if len(loc.URLs) == 0 {
		return Payload{}, fmt.Errorf("target %s: no HTTP source serves the repository", target)
	}
	return Payload{URI: loc.URLs[0], Size: loc.Length, SHA256: sha}, nil
}

// CatalogItemFromTrust converts a verified catalog target. The custom
// metadata is read in the form the admin tools write (applies_to a list,
// see ParseScopes) or in the policy package's schema (applies_to an
// object, policy.ParseCatalogEntry). Severities the admin tools accept
// beyond the policy's are mapped (moderate: medium, important: high), and
// classifications the policy does not know count as "other" ("feature" as
// "enhancement"). Anything else wrong is the item's Problem.
func CatalogItemFromTrust(e trust.CatalogEntry) CatalogItem {
	it := CatalogItem{Target: e.Name, Size: e.Length, SHA256: e.Hashes["sha256"], Format: e.Format, Arch: e.Arch}
	if it.Format == "" {
		it.Format = formatFromName(e.Name)
	}
	var err error
	switch {
	case it.SHA256 == "":
		err = errors.New("the targets metadata signs no sha256 for it")
	case e.Problem != "":
		// Perhaps the policy package's schema.
		var perr error
		if it.Entry, perr = policy.ParseCatalogEntry(e.Custom); perr != nil {
			err = errors.New(e.Problem)
		}
	default:
		it.Entry = policy.CatalogEntry{Package: e.Package, Version: e.Version, Reboot: e.Reboot,
			Severity: catalogSeverity(e.Severity), Classification: catalogClass(e.Classification), CVEs: slices.Clone(e.CVEs)}
		if it.Scopes, err = ParseScopes(e.AppliesTo); err == nil {
			err = it.Entry.Validate()
		}
	}
	if err == nil && it.Arch != "" {
		if aerr := (policy.CatalogEntry{Package: "x", Version: "0", Scope: policy.AppliesTo{Arch: []string{it.Arch}}}).Validate(); aerr != nil {
			err = fmt.Errorf("arch: %w", aerr)
		}
	}
	if err != nil {
		it.Problem = err.Error()
	}
	return it
}

func catalogSeverity(s string) string {
	switch s {
	case "moderate":
		return policy.SeverityMedium
	case "important":
		return policy.SeverityHigh
	}
	return s
}

func catalogClass(c string) string {
	switch c {
	case "", policy.ClassSecurity, policy.ClassBugfix, policy.ClassEnhancement, policy.ClassOther:
		return c
	case "feature":
		return policy.ClassEnhancement
	}
	return policy.ClassOther
}
