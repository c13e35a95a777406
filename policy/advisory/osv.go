package advisory

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// MaxRecordBytes caps one OSV record (one JSON file); osv.dev's largest
// Debian records (kernel CVEs with long version lists) are well below it.
const MaxRecordBytes = 4 << 20

// OSV is one record of the OSV schema, with the fields patchring reads.
// Unknown fields are ignored, as the schema asks of consumers.
type OSV struct {
	SchemaVersion string        `json:"schema_version,omitempty"`
	ID            string        `json:"id"`
	Modified      string        `json:"modified"`
	Published     string        `json:"published,omitempty"`
	Withdrawn     string        `json:"withdrawn,omitempty"`
	Aliases       []string      `json:"aliases,omitempty"`
	Upstream      []string      `json:"upstream,omitempty"`
	Related       []string      `json:"related,omitempty"`
	Summary       string        `json:"summary,omitempty"`
	Details       string        `json:"details,omitempty"`
	Severity      []OSVSeverity `json:"severity,omitempty"`
	Affected      []OSVAffected `json:"affected,omitempty"`
	// DatabaseSpecific may carry {"severity": "HIGH"} (GitHub, some
	// distributions) when no CVSS vector is given.
	DatabaseSpecific json.RawMessage `json:"database_specific,omitempty"`
}

// OSVSeverity is a severity score: type CVSS_V2, CVSS_V3, CVSS_V4 (a
// vector string), Ubuntu (a word) or another ecosystem's own scale.
type OSVSeverity struct {
	Type  string `json:"type"`
	Score string `json:"score"`
}

// OSVPackage names a package in an ecosystem ("Debian:12", "Ubuntu:22.04",
// "Red Hat", "AlmaLinux:9", ...). For Debian the name is the source package.
type OSVPackage struct {
	Ecosystem string `json:"ecosystem"`
	Name      string `json:"name"`
	PURL      string `json:"purl,omitempty"`
}

// OSVAffected is one affected package with its ranges and versions.
type OSVAffected struct {
	Package           OSVPackage      `json:"package"`
	Severity          []OSVSeverity   `json:"severity,omitempty"`
	Ranges            []OSVRange      `json:"ranges,omitempty"`
	Versions          []string        `json:"versions,omitempty"`
	EcosystemSpecific json.RawMessage `json:"ecosystem_specific,omitempty"`
	DatabaseSpecific  json.RawMessage `json:"database_specific,omitempty"`
}

// OSVRange is a range of affected versions: type ECOSYSTEM, SEMVER or GIT,
// and its events.
type OSVRange struct {
	Type   string     `json:"type"`
	Repo   string     `json:"repo,omitempty"`
	Events []OSVEvent `json:"events"`
}

// OSVEvent is one event of a range; exactly one field is set.
type OSVEvent struct {
	Introduced   string `json:"introduced,omitempty"`
	Fixed        string `json:"fixed,omitempty"`
	LastAffected string `json:"last_affected,omitempty"`
	Limit        string `json:"limit,omitempty"`
}

// kind returns the event's type and version, or an error when not exactly
// one field is set.
func (e OSVEvent) kind() (EventKind, string, error) {
	var k EventKind
	var v string
	n := 0
	for _, c := range []struct {
		k EventKind
		v string
	}{{Introduced, e.Introduced}, {Fixed, e.Fixed}, {LastAffected, e.LastAffected}, {Limit, e.Limit}} {
		if c.v != "" {
			k, v = c.k, c.v
			n++
		}
	}
	if n != 1 {
		return 0, "", fmt.Errorf("an event must have exactly one of introduced, fixed, last_affected, limit (has %d)", n)
	}
	return k, v, nil
}

// ParseError names the record (file, and ID when known) and what is wrong.
type ParseError struct {
	File  string
	ID    string
	Field string
	Err   error
}

func (e *ParseError) Error() string {
	var b strings.Builder
	b.WriteString("advisory")
	if e.File != "" {
		b.WriteString(" " + e.File)
	}
	if e.ID != "" {
		b.WriteString(" (" + e.ID + ")")
	}
	if e.Field != "" {
		b.WriteString(": " + e.Field)
	}
	b.WriteString(": " + e.Err.Error())
	return b.String()
}

func (e *ParseError) Unwrap() error { return e.Err }

// ParseOSV parses and checks one OSV record. file names it in errors.
func ParseOSV(data []byte, file string) (*OSV, error) {
	if len(data) > MaxRecordBytes {
		return nil, &ParseError{File: file, Err: fmt.Errorf("record of %d bytes exceeds %d", len(data), MaxRecordBytes)}
	}
	var r OSV
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&r); err != nil {
		return nil, &ParseError{File: file, Err: fmt.Errorf("not an OSV JSON object: %w", err)}
	}
	if dec.More() {
		return nil, &ParseError{File: file, ID: r.ID, Err: errors.New("data after the JSON object")}
	}
	if err := r.check(); err != nil {
		var pe *ParseError
		if errors.As(err, &pe) {
			pe.File = file
		}
		return nil, err
	}
	return &r, nil
}

func (r *OSV) check() error {
	bad := func(field string, err error) error { return &ParseError{ID: r.ID, Field: field, Err: err} }
	if strings.TrimSpace(r.ID) == "" {
		return bad("id", errors.New("missing"))
	}
	if r.Modified == "" {
		return bad("modified", errors.New("missing"))
	}
	for i, a := range r.Affected {
		if a.Package.Ecosystem == "" || a.Package.Name == "" {
			if a.Package.PURL == "" {
				return bad(fmt.Sprintf("affected[%d].package", i), errors.New("needs ecosystem and name"))
			}
			continue // purl-only packages are valid OSV; patchring does not match them
		}
		for j, rg := range a.Ranges {
			field := fmt.Sprintf("affected[%d].ranges[%d]", i, j)
			switch rg.Type {
			case "ECOSYSTEM", "SEMVER", "GIT":
			default:
				return bad(field+".type", fmt.Errorf("unknown range type %q", rg.Type))
			}
			if len(rg.Events) == 0 {
				return bad(field+".events", errors.New("empty"))
			}
			intro := false
			for k, e := range rg.Events {
				kind, _, err := e.kind()
				if err != nil {
					return bad(fmt.Sprintf("%s.events[%d]", field, k), err)
				}
				intro = intro || kind == Introduced
			}
			if !intro {
				return bad(field+".events", errors.New("no introduced event"))
			}
		}
	}
	return nil
}

// Withdrawn reports whether the record has been withdrawn.
func (r *OSV) IsWithdrawn() bool { return r.Withdrawn != "" }

// ReadOSVPaths reads OSV records from each path: a .json file (one record,
// or a JSON array of records as the osv.dev API returns), a .zip archive of
// .json records (osv.dev's per-ecosystem all.zip), or a directory of either.
func ReadOSVPaths(paths ...string) ([]*OSV, error) {
	var out []*OSV
	for _, p := range paths {
		recs, err := readOSVPath(p)
		if err != nil {
			return nil, err
		}
		out = append(out, recs...)
	}
	return out, nil
}

func readOSVPath(p string) ([]*OSV, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("read advisories: %w", err)
	}
	if fi.IsDir() {
		ents, err := os.ReadDir(p)
		if err != nil {
			return nil, fmt.Errorf("read advisories: %w", err)
		}
		var out []*OSV
		for _, e := range ents {
			n := e.Name()
			if e.IsDir() || !(strings.HasSuffix(n, ".json") || strings.HasSuffix(n, ".zip")) {
				continue
			}
			recs, err := readOSVPath(filepath.Join(p, n))
			if err != nil {
				return nil, err
			}
			out = append(out, recs...)
		}
		return out, nil
	}
	if strings.HasSuffix(p, ".zip") {
		return readOSVZip(p)
	}
	data, err := readCapped(p, MaxRecordBytes*64)
	if err != nil {
		return nil, err
	}
	return ParseOSVFile(data, p)
}

// ParseOSVFile parses a file holding one OSV record or a JSON array of them.
func ParseOSVFile(data []byte, file string) ([]*OSV, error) {
	if t := bytes.TrimLeft(data, " \t\r\n"); len(t) > 0 && t[0] == '[' {
		var raws []json.RawMessage
		if err := json.Unmarshal(data, &raws); err != nil {
			return nil, &ParseError{File: file, Err: fmt.Errorf("not a JSON array of OSV records: %w", err)}
		}
		out := make([]*OSV, 0, len(raws))
		for i, raw := range raws {
			r, err := ParseOSV(raw, fmt.Sprintf("%s[%d]", file, i))
			if err != nil {
				return nil, err
			}
			out = append(out, r)
		}
		return out, nil
	}
	r, err := ParseOSV(data, file)
	if err != nil {
		return nil, err
	}
	return []*OSV{r}, nil
}

func readCapped(p string, limit int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("read advisories: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read advisories %s: %w", p, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("read advisories %s: larger than %d bytes", p, limit)
	}
	return data, nil
}

func readOSVZip(p string) ([]*OSV, error) {
	zr, err := zip.OpenReader(p)
	if err != nil {
		return nil, fmt.Errorf("read advisories %s: %w", p, err)
	}
	defer zr.Close()
	files := make([]*zip.File, 0, len(zr.File))
	for _, f := range zr.File {
		if !f.FileInfo().IsDir() && strings.HasSuffix(f.Name, ".json") {
			files = append(files, f)
		}
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	out := make([]*OSV, 0, len(files))
	for _, f := range files {
		name := p + ":" + f.Name
		if f.UncompressedSize64 > MaxRecordBytes {
			return nil, &ParseError{File: name, Err: fmt.Errorf("record of %d bytes exceeds %d", f.UncompressedSize64, MaxRecordBytes)}
		}
		rc, err := f.Open()
		if err != nil {
			return nil, fmt.Errorf("read advisories %s: %w", name, err)
		}
		data, err := io.ReadAll(io.LimitReader(rc, MaxRecordBytes+1))
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("read advisories %s: %w", name, err)
		}
		r, err := ParseOSV(data, name)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}
