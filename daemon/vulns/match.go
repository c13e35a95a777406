package vulns

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync/atomic"

	"github.com/patchring/patchring/platform/vercmp"
	"github.com/patchring/patchring/policy/advisory"
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
	Package       string            `json:"package"`
	Version       string            `json:"version"`
	Source        string            `json:"source,omitempty"`
	SourceVersion string            `json:"source_version,omitempty"`
	ID            string            `json:"id"` // the CVE, or the advisory's ID when it names none
	Advisories    []string          `json:"advisories"`
	Severity      advisory.Severity `json:"severity"`
	Score         float64           `json:"score,omitempty"`
	KEV           bool              `json:"kev,omitempty"`
	// FixedIn is the first fixed version the advisories give for the node's
	// release (a source version for Debian), empty when there is none.
	FixedIn string   `json:"fixed_in,omitempty"`
	Fix     FixState `json:"fix"`
	// Update is the candidate version that fixes it, when one is offered.
	Update  string `json:"update,omitempty"`
	Summary string `json:"summary,omitempty"`
}

// pver is a version parsed once for its scheme.
type pver struct {
	deb vercmp.DebVersion
	rpm vercmp.RPMVersion
	ok  bool
}

type cevent struct {
	kind advisory.EventKind
	zero bool // introduced "0"
	v    pver
	str  string
}

// compiled is one Affect of the node's ecosystems with its versions parsed.
type compiled struct {
	entry    int32
	affect   int32
	ranges   [][]cevent
	versions []pver
}

// Index is a database prepared for matching one node's ecosystems, with
// every version parsed once. It is read-only and safe for concurrent use.
type Index struct {
	db      *advisory.DB
	scheme  advisory.Scheme
	affects []compiled
	byPkg   map[string][]int32
	// lastFindings is the size of the last Match's result.
	lastFindings atomic.Int64
	// Skipped lists the affected packages left out of the index.
	Skipped []advisory.Skipped
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
// (all of one version scheme): every version parsed once with the package
// manager's rules and every range's events sorted by them. An affected
// package with a version the package manager would refuse cannot be
// judged: it is left out and listed in Skipped.
func NewIndex(db *advisory.DB, ecosystems []string) *Index {
	ix := &Index{db: db, scheme: advisory.SchemeDeb, byPkg: map[string][]int32{}}
	if len(ecosystems) > 0 {
		if s, ok := advisory.SchemeOf(ecosystems[0]); ok {
			ix.scheme = s
		}
	}
	want := map[string]bool{}
	for _, e := range ecosystems {
		want[e] = true
	}
	for i := range db.Entries {
		for j, a := range db.Entries[i].Affected {
			if !want[a.Ecosystem] {
				continue
			}
			c, bad := ix.compile(a)
			if bad != "" {
				ix.Skipped = append(ix.Skipped, advisory.Skipped{ID: db.Entries[i].ID, Reason: fmt.Sprintf("%s/%s: version %q does not parse", a.Ecosystem, a.Package, bad)})
				continue
			}
			c.entry, c.affect = int32(i), int32(j)
			ix.byPkg[a.Package] = append(ix.byPkg[a.Package], int32(len(ix.affects)))
			ix.affects = append(ix.affects, c)
		}
	}
	return ix
}

// compile parses an Affect's versions and sorts its ranges' events:
// introduced "0" first, then by version, introduced before fixed at the
// same version. bad is a version that does not parse.
func (ix *Index) compile(a advisory.Affect) (c compiled, bad string) {
	for _, rg := range a.Ranges {
		evs := make([]cevent, len(rg))
		for k, e := range rg {
			evs[k] = cevent{kind: e.Kind, zero: e.Kind == advisory.Introduced && e.Version == "0", str: e.Version}
			if !evs[k].zero {
				if evs[k].v = ix.parse(e.Version); !evs[k].v.ok {
					return compiled{}, e.Version
				}
			}
		}
		sort.SliceStable(evs, func(x, y int) bool {
			a, b := evs[x], evs[y]
			if a.zero || b.zero {
				return a.zero && !b.zero
			}
			if r, _ := ix.cmp(a.v, b.v); r != 0 {
				return r < 0
			}
			return a.kind < b.kind
		})
		c.ranges = append(c.ranges, evs)
	}
	for _, v := range a.Versions {
		pv := ix.parse(v)
		if !pv.ok {
			return compiled{}, v
		}
		c.versions = append(c.versions, pv)
	}
	return c, ""
}

// DB returns the database the index was built from.
func (ix *Index) DB() *advisory.DB { return ix.db }

func (ix *Index) parse(v string) pver {
	if ix.scheme == advisory.SchemeRPM {
		r, err := vercmp.ParseRPM(v)
		return pver{rpm: r, ok: err == nil}
	}
	d, err := vercmp.ParseDeb(v)
	var se *vercmp.SyntaxError
	ok := err == nil || (errors.As(err, &se) && se.Warning)
	return pver{deb: d, ok: ok}
}

// cmp orders two parsed versions; ok is false when either did not parse.
func (ix *Index) cmp(a, b pver) (int, bool) {
	if !a.ok || !b.ok {
		return 0, false
	}
	if ix.scheme == advisory.SchemeRPM {
		return vercmp.CompareRPM(a.rpm, b.rpm), true
	}
	return vercmp.CompareDeb(a.deb, b.deb), true
}

// affected reports whether version v is affected, and the fixed version
// after v in the range that affects it ("" when none).
func (ix *Index) affected(c *compiled, v pver) (bool, string) {
	for _, lv := range c.versions {
		if r, ok := ix.cmp(v, lv); ok && r == 0 {
			return true, ""
		}
	}
	for _, rg := range c.ranges {
		if ok, k := ix.inRange(rg, v); ok {
			if k < 0 {
				return true, ""
			}
			return true, rg[k].str
		}
	}
	return false, ""
}

// inRange evaluates one range as the OSV schema specifies: walking the
// sorted events, introduced <= v makes v affected, fixed <= v unaffected,
// last_affected < v unaffected; with limits, v must be below one of them.
// fixed is the index of the fix that ends v's affected interval: the first
// event above v when it is a fixed event (-1 when it is last_affected: no
// fix known).
func (ix *Index) inRange(rg []cevent, v pver) (bool, int) {
	vuln := false
	hasLimit, belowLimit := false, false
	fixed, settled := -1, false
	for i, e := range rg {
		if e.zero {
			vuln = true
			continue
		}
		c, ok := ix.cmp(v, e.v)
		if !ok {
			continue
		}
		if e.kind == advisory.Limit {
			hasLimit = true
			belowLimit = belowLimit || c < 0
			continue
		}
		if c < 0 {
			// The first event above v closes v's interval.
			if !settled {
				settled = true
				if e.kind == advisory.Fixed {
					fixed = i
				}
			}
			continue
		}
		switch e.kind {
		case advisory.Introduced:
			vuln = true
		case advisory.Fixed:
			vuln = false // v >= fixed
		case advisory.LastAffected:
			if c > 0 {
				vuln = false
			}
		}
	}
	if !vuln || (hasLimit && !belowLimit) {
		return false, -1
	}
	return true, fixed
}

// Match returns the findings for the installed packages, one per
// (package, vulnerability): records naming the same CVE are merged (the
// worst severity, KEV from any, the lowest fixed version). candidates maps
// a binary package name to the update the node sees for it. Findings are
// sorted by severity (worst first), then package and ID.
func (ix *Index) Match(pkgs []Installed, candidates map[string]Candidate) []Finding {
	// Sized like the last match's result: the agent matches again on
	// every inventory change, and growing a slice of 40,000 findings by
	// doubling copied and cleared it several times.
	out := make([]Finding, 0, max(len(pkgs), int(ix.lastFindings.Load())))
	byID := map[string]int{}
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
		pv := ix.parse(sv)
		clear(byID)
		start := len(out)
		for _, r := range refs {
			c := &ix.affects[r]
			e := &ix.db.Entries[c.entry]
			hit, fixed := ix.affected(c, pv)
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
					out = append(out, Finding{Package: p.Name, Version: p.Version, Source: src, SourceVersion: sv, ID: id, Severity: advisory.SeverityUnknown})
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
		var cv pver
		if hasCand && cand.Version != "" {
			cv = ix.parse(cand.Version)
		}
		for k := start; k < len(out); k++ {
			f := &out[k]
			sort.Strings(f.Advisories)
			f.Fix = FixNone
			if f.FixedIn == "" {
				continue
			}
			f.Fix = FixNotAvailable
			if hasCand && cand.Version != "" && !ix.stillAffected(refs, f.ID, cv) {
				f.Fix, f.Update = cand.State, cand.Version
				if f.Fix == "" {
					f.Fix = FixAvailable
				}
			}
		}
	}
	ix.lastFindings.Store(int64(len(out)))
	// A new slice of the result's size: out has the last match's
	// capacity, which the caller would keep holding.
	return sortedFindings(out)
}

// stillAffected reports whether version v of the package is still affected
// by any advisory naming id.
func (ix *Index) stillAffected(refs []int32, id string, v pver) bool {
	for _, r := range refs {
		c := &ix.affects[r]
		if !containsID(&ix.db.Entries[c.entry], id) {
			continue
		}
		if hit, _ := ix.affected(c, v); hit {
			return true
		}
	}
	return false
}

func containsID(e *advisory.Entry, id string) bool {
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
	c, ok := ix.cmp(ix.parse(a), ix.parse(b))
	return ok && c < 0
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
//
// It sorts indexes and moves each finding once: a finding is a large
// struct, and sorting the slice itself copied two of them into every
// comparison and moved them on every swap (a match of 5,000 packages has
// 40,000 findings and more).
func SortFindings(fs []Finding) { copy(fs, sortedFindings(fs)) }

// sortedFindings returns fs in SortFindings' order in a new slice of
// exactly len(fs).
func sortedFindings(fs []Finding) []Finding {
	idx := make([]int32, len(fs))
	for i := range idx {
		idx[i] = int32(i)
	}
	slices.SortFunc(idx, func(i, j int32) int { return compareFindings(&fs[i], &fs[j]) })
	sorted := make([]Finding, len(fs))
	for k, i := range idx {
		sorted[k] = fs[i]
	}
	return sorted
}

func compareFindings(a, b *Finding) int {
	if a.KEV != b.KEV {
		if a.KEV {
			return -1
		}
		return 1
	}
	if c := cmp.Compare(b.Severity.Rank(), a.Severity.Rank()); c != 0 {
		return c
	}
	if c := cmp.Compare(b.Score, a.Score); c != 0 {
		return c
	}
	if c := strings.Compare(a.Package, b.Package); c != 0 {
		return c
	}
	return strings.Compare(a.ID, b.ID)
}

// Summary counts findings: by severity, KEV, and without a fix.
type Summary struct {
	BySeverity map[advisory.Severity]int `json:"by_severity"`
	KEV        int                       `json:"kev"`
	NoFix      int                       `json:"no_fix"`
	Total      int                       `json:"total"`
}

// Summarize counts the findings.
func Summarize(fs []Finding) Summary {
	s := Summary{BySeverity: map[advisory.Severity]int{}}
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
