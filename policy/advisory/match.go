package advisory

import (
	"sort"
	"strings"
)

// FixState says whether and how a fix reaches a node.
type FixState string

// Fix states, from worst to best for the node.
const (
	// FixNone: no fixed version is published for the node's release
	// (exposed without a fix).
	FixNone FixState = "none"
	// FixNotAvailable: the advisory names a fixed version, but the node's
	// package sources do not offer it yet.
	FixNotAvailable FixState = "not-available"
	// FixAvailable: an update that fixes it is available, not approved.
	FixAvailable FixState = "available"
	// FixApproved: the update is approved and waits for its ring's time.
	FixApproved FixState = "approved"
	// FixPending: the update is approved and due (installing now or at the
	// next window).
	FixPending FixState = "pending"
)

// Installed is one installed binary package as the matcher needs it.
type Installed struct {
	Name          string
	Version       string
	Source        string // source package, Name when empty
	SourceVersion string // Version when empty
}

// Candidate is the update the node sees for a binary package.
type Candidate struct {
	Version string
	// State is FixAvailable, FixApproved or FixPending.
	State FixState
}

// Finding is one vulnerability one installed package is exposed to.
type Finding struct {
	Package       string   `json:"package"`
	Version       string   `json:"version"`
	Source        string   `json:"source,omitempty"`
	SourceVersion string   `json:"source_version,omitempty"`
	ID            string   `json:"id"` // the CVE, or the advisory's ID when it names none
	Advisories    []string `json:"advisories"`
	Severity      Severity `json:"severity"`
	Score         float64  `json:"score,omitempty"`
	KEV           bool     `json:"kev,omitempty"`
	// FixedIn is the first fixed version the advisories give for the node's
	// release (a source version for Debian), empty when there is none.
	FixedIn string   `json:"fixed_in,omitempty"`
	Fix     FixState `json:"fix"`
	// Update is the candidate version that fixes it, when one is offered.
	Update  string `json:"update,omitempty"`
	Summary string `json:"summary,omitempty"`
}

type ref struct {
	entry  int32
	affect int32
}

// Index is a database prepared for matching one node's ecosystems.
// It is read-only and safe for concurrent use.
type Index struct {
	db     *DB
	scheme Scheme
	byPkg  map[string][]ref
}

// EcosystemsFor returns the OSV ecosystem names of an OS from its
// os-release ID and VERSION_ID ("debian", "12" -> "Debian:12"), nil when
// patchring does not know it.
func EcosystemsFor(osID, versionID string) []string {
	major, _, _ := strings.Cut(versionID, ".")
	switch osID {
	case "debian":
		return []string{"Debian:" + major}
	case "ubuntu":
		return []string{"Ubuntu:" + versionID, "Ubuntu:" + versionID + ":LTS"}
	case "almalinux":
		return []string{"AlmaLinux:" + major}
	case "rocky":
		return []string{"Rocky Linux:" + major}
	case "rhel":
		return []string{"Red Hat"}
	}
	return nil
}

// NewIndex indexes the entries of db that concern the given ecosystems
// (all of one version scheme).
func NewIndex(db *DB, ecosystems []string) *Index {
	ix := &Index{db: db, scheme: SchemeDeb, byPkg: map[string][]ref{}}
	if len(ecosystems) > 0 {
		if s, ok := SchemeOf(ecosystems[0]); ok {
			ix.scheme = s
		}
	}
	want := map[string]bool{}
	for _, e := range ecosystems {
		want[e] = true
	}
	for i := range db.Entries {
		for j, a := range db.Entries[i].Affected {
			if want[a.Ecosystem] {
				ix.byPkg[a.Package] = append(ix.byPkg[a.Package], ref{int32(i), int32(j)})
			}
		}
	}
	return ix
}

// DB returns the database the index was built from.
func (ix *Index) DB() *DB { return ix.db }

// affected reports whether version v is affected, and the fixed version
// after v in the range that affects it ("" when none).
func (ix *Index) affected(a *Affect, v string) (bool, string) {
	for _, lv := range a.Versions {
		if c, err := ix.scheme.Compare(v, lv); err == nil && c == 0 {
			return true, ""
		}
	}
	for _, rg := range a.Ranges {
		if ok, fixed := ix.inRange(rg, v); ok {
			return true, fixed
		}
	}
	return false, ""
}

// inRange evaluates one range as the OSV schema specifies: walking the
// sorted events, introduced <= v makes v affected, fixed <= v unaffected,
// last_affected < v unaffected; with limits, v must be below one of them.
// fixed is the fix that ends v's affected interval: the first event above v
// when it is a fixed event ("" when it is last_affected: no fix known).
func (ix *Index) inRange(rg []Event, v string) (bool, string) {
	vuln := false
	hasLimit, belowLimit := false, false
	fixed, settled := "", false
	for _, e := range rg {
		if e.Kind == Introduced && e.Version == "0" {
			vuln = true
			continue
		}
		c, err := ix.scheme.Compare(v, e.Version)
		if err != nil {
			continue
		}
		if e.Kind == Limit {
			hasLimit = true
			belowLimit = belowLimit || c < 0
			continue
		}
		if c < 0 {
			// The first event above v closes v's interval.
			if !settled {
				settled = true
				if e.Kind == Fixed {
					fixed = e.Version
				}
			}
			continue
		}
		switch e.Kind {
		case Introduced:
			vuln = true
		case Fixed:
			vuln = false // v >= fixed
		case LastAffected:
			if c > 0 {
				vuln = false
			}
		}
	}
	if !vuln || (hasLimit && !belowLimit) {
		return false, ""
	}
	return true, fixed
}

// Match returns the findings for the installed packages, one per
// (package, vulnerability): records naming the same CVE are merged (the
// worst severity, KEV from any, the lowest fixed version). candidates maps
// a binary package name to the update the node sees for it. Findings are
// sorted by severity (worst first), then package and ID.
func (ix *Index) Match(pkgs []Installed, candidates map[string]Candidate) []Finding {
	var out []Finding
	for _, p := range pkgs {
		src, sv := p.Source, p.SourceVersion
		if src == "" {
			src = p.Name
		}
		if sv == "" {
			sv = p.Version
		}
		refs := ix.byPkg[src]
		if len(refs) == 0 {
			continue
		}
		byID := map[string]int{}
		start := len(out)
		for _, r := range refs {
			e := &ix.db.Entries[r.entry]
			hit, fixed := ix.affected(&e.Affected[r.affect], sv)
			if !hit {
				continue
			}
			ids := e.CVEs
			if len(ids) == 0 {
				ids = []string{e.ID}
			}
			for _, id := range ids {
				k, ok := byID[id]
				if !ok {
					k = len(out)
					byID[id] = k
					out = append(out, Finding{Package: p.Name, Version: p.Version, Source: src, SourceVersion: sv, ID: id, Severity: SeverityUnknown})
				}
				f := &out[k]
				f.Advisories = appendUnique(f.Advisories, e.ID)
				if e.Severity.Rank() > f.Severity.Rank() {
					f.Severity = e.Severity
				}
				if e.Score > f.Score {
					f.Score = e.Score
				}
				f.KEV = f.KEV || e.KEV
				if f.Summary == "" {
					f.Summary = e.Summary
				}
				if fixed != "" && (f.FixedIn == "" || ix.less(fixed, f.FixedIn)) {
					f.FixedIn = fixed
				}
			}
		}
		cand, hasCand := candidates[p.Name]
		for k := start; k < len(out); k++ {
			f := &out[k]
			sort.Strings(f.Advisories)
			f.Fix = FixNone
			if f.FixedIn == "" {
				continue
			}
			f.Fix = FixNotAvailable
			if hasCand && cand.Version != "" && !ix.stillAffected(f, cand.Version) {
				f.Fix, f.Update = cand.State, cand.Version
				if f.Fix == "" {
					f.Fix = FixAvailable
				}
			}
		}
	}
	SortFindings(out)
	return out
}

// stillAffected reports whether version v of the package is still affected
// by any advisory behind the finding.
func (ix *Index) stillAffected(f *Finding, v string) bool {
	for _, r := range ix.byPkg[f.Source] {
		e := &ix.db.Entries[r.entry]
		if !containsID(e, f.ID) {
			continue
		}
		if hit, _ := ix.affected(&e.Affected[r.affect], v); hit {
			return true
		}
	}
	return false
}

func containsID(e *Entry, id string) bool {
	if e.ID == id {
		return true
	}
	for _, c := range e.CVEs {
		if c == id {
			return true
		}
	}
	return false
}

func (ix *Index) less(a, b string) bool {
	c, err := ix.scheme.Compare(a, b)
	return err == nil && c < 0
}

func appendUnique(s []string, v string) []string {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}

// SortFindings orders findings worst first: KEV, severity, score, then
// package and ID.
func SortFindings(fs []Finding) {
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := fs[i], fs[j]
		if a.KEV != b.KEV {
			return a.KEV
		}
		if a.Severity.Rank() != b.Severity.Rank() {
			return a.Severity.Rank() > b.Severity.Rank()
		}
		if a.Score != b.Score {
			return a.Score > b.Score
		}
		if a.Package != b.Package {
			return a.Package < b.Package
		}
		return a.ID < b.ID
	})
}

// Summary counts findings: by severity, KEV, and without a fix.
type Summary struct {
	BySeverity map[Severity]int `json:"by_severity"`
	KEV        int              `json:"kev"`
	NoFix      int              `json:"no_fix"`
	Total      int              `json:"total"`
}

// Summarize counts the findings.
func Summarize(fs []Finding) Summary {
	s := Summary{BySeverity: map[Severity]int{}}
	for _, f := range fs {
		s.BySeverity[f.Severity]++
		s.Total++
		if f.KEV {
			s.KEV++
		}
		if f.Fix == FixNone || f.Fix == FixNotAvailable {
			s.NoFix++
		}
	}
	return s
}
