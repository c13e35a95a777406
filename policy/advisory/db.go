package advisory

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// Format is the version of the database and delta layout.
const Format = 1

// MaxDBBytes caps a database or delta once decompressed, so a hostile
// file cannot exhaust memory (osv.dev's whole Debian set compacts to a
// few tens of MB).
const MaxDBBytes = 512 << 20

// maxSummary is how much of an advisory's summary the database keeps.
const maxSummary = 160

// EventKind is the type of a range event.
type EventKind uint8

// Range event types of the OSV schema.
const (
	Introduced EventKind = iota + 1
	Fixed
	LastAffected
	Limit
)

var eventPrefix = map[EventKind]string{Introduced: "i", Fixed: "f", LastAffected: "l", Limit: "m"}

// Event is one range event. In the database it is written "i:0",
// "f:1.2-1", "l:2.0", "m:3.0" (introduced, fixed, last_affected, limit).
type Event struct {
	Kind    EventKind
	Version string
}

// MarshalText writes the compact form.
func (e Event) MarshalText() ([]byte, error) {
	p, ok := eventPrefix[e.Kind]
	if !ok {
		return nil, fmt.Errorf("event kind %d", e.Kind)
	}
	return []byte(p + ":" + e.Version), nil
}

// UnmarshalText reads the compact form.
func (e *Event) UnmarshalText(b []byte) error {
	p, v, ok := strings.Cut(string(b), ":")
	if !ok || v == "" {
		return fmt.Errorf("event %q: want KIND:VERSION", b)
	}
	for k, s := range eventPrefix {
		if s == p {
			*e = Event{Kind: k, Version: v}
			return nil
		}
	}
	return fmt.Errorf("event %q: unknown kind %q", b, p)
}

// Affect is one package an entry affects in one ecosystem release: the
// source package for Debian and Ubuntu, with its ranges (events in the
// record's order) and, for a package without ranges, the versions listed
// one by one.
type Affect struct {
	Ecosystem string    `json:"eco"`
	Package   string    `json:"pkg"`
	Ranges    [][]Event `json:"ranges,omitempty"`
	Versions  []string  `json:"versions,omitempty"`
}

// Entry is one advisory record in the database.
type Entry struct {
	ID string `json:"id"`
	// CVEs are the CVE IDs the record is about: its own ID, its aliases and
	// upstream IDs, and for a Debian DSA/DLA/DTSA the CVEs it lists as
	// related (how Debian names the CVEs an advisory fixes).
	CVEs []string `json:"cves,omitempty"`
	// Aliases are the record's other non-CVE names (e.g. a DSA for a GHSA).
	Aliases  []string `json:"aliases,omitempty"`
	Modified string   `json:"modified"`
	Summary  string   `json:"summary,omitempty"`
	Severity Severity `json:"severity"`
	// Score is the CVSS base score, 0 when the record has none.
	Score float64 `json:"score,omitempty"`
	// KEV is set when one of CVEs is in CISA's KEV catalog.
	KEV      bool     `json:"kev,omitempty"`
	Affected []Affect `json:"affected"`
}

// DB is the compact advisory database the admin publishes and the agent
// matches against. Entries are sorted by ID.
type DB struct {
	Format  int   `json:"format"`
	Version int64 `json:"version"`
	// Built is when the database was built (RFC 3339, UTC).
	Built string `json:"built"`
	// KEVCatalog is the KEV catalog's catalogVersion, empty without KEV.
	KEVCatalog string   `json:"kev_catalog,omitempty"`
	Ecosystems []string `json:"ecosystems"`
	Entries    []Entry  `json:"entries"`
}

// Scheme is a version ordering.
type Scheme string

// The version schemes the matcher knows.
const (
	SchemeDeb Scheme = "deb"
	SchemeRPM Scheme = "rpm"
)

// SchemeOf returns the version scheme of an OSV ecosystem ("Debian:12",
// "Ubuntu:22.04:LTS", "Red Hat", "AlmaLinux:9", ...), false when patchring
// cannot match packages of it.
func SchemeOf(ecosystem string) (Scheme, bool) {
	base, _, _ := strings.Cut(ecosystem, ":")
	switch base {
	case "Debian", "Ubuntu":
		return SchemeDeb, true
	case "Red Hat", "AlmaLinux", "Rocky Linux", "openSUSE", "SUSE", "Mageia", "openEuler", "Azure Linux":
		return SchemeRPM, true
	}
	return "", false
}

// BuildOptions selects what Build keeps.
type BuildOptions struct {
	// Ecosystems limits the database to these ecosystems: "Debian:12"
	// exactly, or "Debian" for every release of it. Empty keeps all that
	// patchring can match.
	Ecosystems []string
	// KEV is the KEV catalog, nil for none.
	KEV *KEVCatalog
	// Version is the database version (the previous one plus one).
	Version int64
	// Now stamps Built.
	Now time.Time
}

// Skipped is a record or part of one that Build left out, and why.
type Skipped struct {
	ID     string `json:"id"`
	Reason string `json:"reason"`
}

// Build turns OSV records into a database: withdrawn records and
// ecosystems patchring cannot match are dropped, ranges other than
// ECOSYSTEM are dropped, and records with the same ID keep the latest
// modified. Versions are kept as the records give them: ordering them is
// the matcher's job on the node, with the package manager's rules
// (daemon/vulns), so this package stays free of platform code.
func Build(records []*OSV, opts BuildOptions) (*DB, []Skipped, error) {
	if opts.Version <= 0 {
		return nil, nil, errors.New("build advisories: version must be positive")
	}
	kev := map[string]string{}
	db := &DB{Format: Format, Version: opts.Version, Built: opts.Now.UTC().Format(time.RFC3339)}
	if opts.KEV != nil {
		kev = opts.KEV.Set()
		db.KEVCatalog = opts.KEV.CatalogVersion
	}
	byID := map[string]*Entry{}
	var skipped []Skipped
	ecos := map[string]bool{}
	for _, r := range records {
		if r.IsWithdrawn() {
			skipped = append(skipped, Skipped{ID: r.ID, Reason: "withdrawn " + r.Withdrawn})
			delete(byID, r.ID)
			continue
		}
		e, sk := entryOf(r, opts.Ecosystems, kev)
		skipped = append(skipped, sk...)
		if e == nil {
			continue
		}
		if old, ok := byID[e.ID]; ok && old.Modified > e.Modified {
			continue
		}
		byID[e.ID] = e
	}
	// A withdrawn copy of a record wins over an older live copy.
	for _, r := range records {
		if r.IsWithdrawn() {
			delete(byID, r.ID)
		}
	}
	db.Entries = make([]Entry, 0, len(byID))
	for _, e := range byID {
		for _, a := range e.Affected {
			ecos[a.Ecosystem] = true
		}
		db.Entries = append(db.Entries, *e)
	}
	sort.Slice(db.Entries, func(i, j int) bool { return db.Entries[i].ID < db.Entries[j].ID })
	db.Ecosystems = sortedKeys(ecos)
	if db.Ecosystems == nil {
		db.Ecosystems = []string{}
	}
	return db, skipped, nil
}

func sortedKeys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func wantEcosystem(eco string, want []string) bool {
	if len(want) == 0 {
		return true
	}
	for _, w := range want {
		if eco == w || strings.HasPrefix(eco, w+":") {
			return true
		}
	}
	return false
}

func entryOf(r *OSV, ecos []string, kev map[string]string) (*Entry, []Skipped) {
	var skipped []Skipped
	e := &Entry{ID: r.ID, Modified: r.Modified, Summary: truncate(r.Summary, maxSummary)}
	cves := map[string]bool{}
	other := map[string]bool{}
	names := append(append([]string{r.ID}, r.Aliases...), r.Upstream...)
	if isDebianAdvisory(r.ID) {
		names = append(names, r.Related...)
	}
	for _, n := range names {
		switch {
		case cveRE.MatchString(n):
			cves[n] = true
		case n != r.ID:
			other[n] = true
		}
	}
	e.CVEs = sortedKeys(cves)
	e.Aliases = sortedKeys(other)
	for c := range cves {
		if _, ok := kev[c]; ok {
			e.KEV = true
		}
	}
	score, sev, _, ok := scoreOf(r.Severity)
	for _, a := range r.Affected {
		s2, sv2, _, ok2 := scoreOf(a.Severity)
		if ok2 && (!ok || sv2.Rank() > sev.Rank() || s2 > score) {
			score, sev, ok = s2, sv2, true
		}
	}
	if !ok {
		sev, ok = severityWord(r.DatabaseSpecific, "severity")
	}
	if !ok {
		for _, a := range r.Affected {
			for _, key := range []string{"severity", "urgency"} {
				if s, good := severityWord(a.EcosystemSpecific, key); good && s.Rank() > sev.Rank() {
					sev, ok = s, true
				}
			}
		}
	}
	e.Severity, e.Score = sev, score
	for i, a := range r.Affected {
		eco := a.Package.Ecosystem
		if eco == "" || a.Package.Name == "" || !wantEcosystem(eco, ecos) {
			continue
		}
		if _, ok := SchemeOf(eco); !ok {
			continue
		}
		af := Affect{Ecosystem: eco, Package: a.Package.Name}
		for _, rg := range a.Ranges {
			if rg.Type != "ECOSYSTEM" {
				continue
			}
			evs := make([]Event, 0, len(rg.Events))
			for _, e := range rg.Events {
				k, v, err := e.kind()
				if err != nil { // ParseOSV refuses these; records built by hand may not
					skipped = append(skipped, Skipped{ID: r.ID, Reason: fmt.Sprintf("affected[%d] %s/%s: %v", i, eco, a.Package.Name, err)})
					evs = nil
					break
				}
				evs = append(evs, Event{Kind: k, Version: v})
			}
			if len(evs) > 0 {
				af.Ranges = append(af.Ranges, evs)
			}
		}
		if len(af.Ranges) == 0 {
			// Without a range, the listed versions are the whole truth.
			af.Versions = dedupe(a.Versions)
		}
		if len(af.Ranges) == 0 && len(af.Versions) == 0 {
			continue
		}
		e.Affected = append(e.Affected, af)
	}
	if len(e.Affected) == 0 {
		return nil, skipped
	}
	sort.SliceStable(e.Affected, func(i, j int) bool {
		if e.Affected[i].Ecosystem != e.Affected[j].Ecosystem {
			return e.Affected[i].Ecosystem < e.Affected[j].Ecosystem
		}
		return e.Affected[i].Package < e.Affected[j].Package
	})
	return e, skipped
}

// isDebianAdvisory reports IDs whose "related" list is the CVEs they fix.
func isDebianAdvisory(id string) bool {
	for _, p := range []string{"DSA-", "DLA-", "DTSA-"} {
		if strings.HasPrefix(id, p) {
			return true
		}
	}
	return false
}

func severityWord(raw json.RawMessage, key string) (Severity, bool) {
	if len(raw) == 0 {
		return SeverityUnknown, false
	}
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil {
		return SeverityUnknown, false
	}
	s, _ := m[key].(string)
	return ParseSeverity(s)
}

func truncate(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && s[cut]&0xC0 == 0x80 { // do not split a UTF-8 sequence
		cut--
	}
	return s[:cut] + "…"
}

func dedupe(vs []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range vs {
		if v != "" && !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// Marshal returns the database's canonical JSON (what its hash is over).
func (db *DB) Marshal() ([]byte, error) {
	return json.Marshal(db)
}

// Encode returns the database as gzip-compressed canonical JSON and the
// SHA-256 of the uncompressed JSON.
func (db *DB) Encode() ([]byte, string, error) {
	raw, err := db.Marshal()
	if err != nil {
		return nil, "", fmt.Errorf("encode advisories: %w", err)
	}
	gz, err := gzipBytes(raw)
	if err != nil {
		return nil, "", fmt.Errorf("encode advisories: %w", err)
	}
	return gz, sha256Hex(raw), nil
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func gzipBytes(raw []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(raw); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func gunzip(data []byte, what string) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%s: not gzip: %w", what, err)
	}
	raw, err := io.ReadAll(io.LimitReader(zr, MaxDBBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if len(raw) > MaxDBBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes uncompressed", what, MaxDBBytes)
	}
	return raw, nil
}

// Decode reads a database written by Encode and checks it; it returns the
// SHA-256 of its uncompressed JSON too.
func Decode(data []byte) (*DB, string, error) {
	raw, err := gunzip(data, "decode advisories")
	if err != nil {
		return nil, "", err
	}
	db, err := decodeJSON(raw)
	if err != nil {
		return nil, "", err
	}
	return db, sha256Hex(raw), nil
}

func decodeJSON(raw []byte) (*DB, error) {
	var db DB
	if err := json.Unmarshal(raw, &db); err != nil {
		return nil, fmt.Errorf("decode advisories: %w", err)
	}
	if err := db.check(); err != nil {
		return nil, fmt.Errorf("decode advisories: %w", err)
	}
	return &db, nil
}

func (db *DB) check() error {
	if db.Format != Format {
		return fmt.Errorf("format %d, this agent reads %d", db.Format, Format)
	}
	if db.Version <= 0 {
		return fmt.Errorf("version %d", db.Version)
	}
	for i := range db.Entries {
		e := &db.Entries[i]
		if i > 0 && db.Entries[i-1].ID >= e.ID {
			return fmt.Errorf("entries not sorted by ID at %q", e.ID)
		}
		if err := e.check(); err != nil {
			return err
		}
	}
	return nil
}

func (e *Entry) check() error {
	if e.ID == "" {
		return errors.New("entry without id")
	}
	for _, a := range e.Affected {
		if _, ok := SchemeOf(a.Ecosystem); !ok || a.Package == "" {
			return fmt.Errorf("entry %s: affected %q/%q: unknown ecosystem or no package", e.ID, a.Ecosystem, a.Package)
		}
		for _, rg := range a.Ranges {
			if len(rg) == 0 {
				return fmt.Errorf("entry %s: empty range", e.ID)
			}
			for _, ev := range rg {
				if _, ok := eventPrefix[ev.Kind]; !ok {
					return fmt.Errorf("entry %s: bad event", e.ID)
				}
			}
		}
	}
	return nil
}
