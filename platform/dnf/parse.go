package dnf

import (
	"bufio"
	"bytes"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/patchring/patchring/platform/vercmp"
)

// NEVRA names one RPM build: name-[epoch:]version-release.arch.
type NEVRA struct {
	Name string
	EVR  vercmp.RPMVersion
	Arch string
}

func (n NEVRA) String() string { return n.Name + "-" + n.EVR.String() + "." + n.Arch }

// validName reports whether s can be an RPM package name or architecture
// as dnf prints it (no spaces, no control characters, not empty).
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f || s[i] == '/' {
			return false
		}
	}
	return true
}

// ParseNEVRA splits "bind-libs-32:9.16.23-18.el9_4.6.x86_64".
func ParseNEVRA(s string) (NEVRA, error) {
	dot := strings.LastIndexByte(s, '.')
	if dot <= 0 || dot == len(s)-1 {
		return NEVRA{}, fmt.Errorf("nevra %q: no architecture", s)
	}
	arch := s[dot+1:]
	rest := s[:dot]
	r := strings.LastIndexByte(rest, '-')
	if r <= 0 {
		return NEVRA{}, fmt.Errorf("nevra %q: no release", s)
	}
	v := strings.LastIndexByte(rest[:r], '-')
	if v <= 0 {
		return NEVRA{}, fmt.Errorf("nevra %q: no version", s)
	}
	name := rest[:v]
	evr, err := vercmp.ParseRPM(rest[v+1:])
	if err != nil {
		return NEVRA{}, fmt.Errorf("nevra %q: %w", s, err)
	}
	if evr.Release == "" || !validName(name) || !validName(arch) {
		return NEVRA{}, fmt.Errorf("nevra %q: malformed", s)
	}
	return NEVRA{Name: name, EVR: evr, Arch: arch}, nil
}

// splitNameArch splits "bind-libs.x86_64".
func splitNameArch(s string) (string, string, bool) {
	dot := strings.LastIndexByte(s, '.')
	if dot <= 0 || dot == len(s)-1 {
		return "", "", false
	}
	name, arch := s[:dot], s[dot+1:]
	if !validName(name) || !validName(arch) || !archRE.MatchString(arch) {
		return "", "", false
	}
	return name, arch, true
}

// archRE matches RPM architectures (x86_64, noarch, i686, aarch64, ppc64le,
// s390x, armv7hl, src, …).
var archRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// Installed is a package installed on the system, as check-update prints
// it under an obsoleting update.
type Installed struct {
	Name string
	Arch string
	EVR  vercmp.RPMVersion
	Repo string // "@System" or "@<repo it came from>"
}

// Update is one package dnf can update (`dnf check-update`).
type Update struct {
	Name string
	Arch string
	EVR  vercmp.RPMVersion // the available version
	Repo string
	// Obsoletes lists the installed packages this update replaces
	// ("Obsoleting Packages").
	Obsoletes []Installed

	// Filled by Classify.
	Security   bool
	Severity   string   // highest severity of the security advisories, "" if unknown
	Advisories []string // IDs of the advisories the update fixes, in input order
}

// NEVRA returns the update's package as a NEVRA.
func (u Update) NEVRA() NEVRA { return NEVRA{Name: u.Name, EVR: u.EVR, Arch: u.Arch} }

// ParseCheckUpdate parses `dnf check-update` output (dnf 4, and dnf 5's
// check-upgrade, which prints the same three columns). A record is
// "name.arch  [epoch:]version-release  repo"; dnf wraps a value wider than
// its column onto an indented next line, which is joined back. Lines that
// do not start with a name.arch (metadata expiration notes, "Security: …
// is the currently running version", repository loading messages) are
// skipped.
func ParseCheckUpdate(out []byte) ([]Update, error) {
	var res []Update
	obsoleting := false
	var pending []string
	pendingLine, pendingInstalled := 0, false

	record := func(toks []string, n int, installed bool) error {
		na := strings.TrimSpace(toks[0])
		name, arch, ok := splitNameArch(na)
		if !ok {
			return fmt.Errorf("check-update line %d: bad name.arch %q", n, na)
		}
		evr, err := vercmp.ParseRPM(toks[1])
		if err != nil {
			return fmt.Errorf("check-update line %d: %w", n, err)
		}
		if !validName(toks[2]) {
			return fmt.Errorf("check-update line %d: bad repository %q", n, toks[2])
		}
		if installed {
			if len(res) == 0 {
				return fmt.Errorf("check-update line %d: obsoleted package without an obsoleting one", n)
			}
			last := &res[len(res)-1]
			last.Obsoletes = append(last.Obsoletes, Installed{Name: name, Arch: arch, EVR: evr, Repo: toks[2]})
			return nil
		}
		u := Update{Name: name, Arch: arch, EVR: evr, Repo: toks[2]}
		// An obsoleting package may also be listed as an update.
		for i := range res {
			if res[i].Name == u.Name && res[i].Arch == u.Arch && res[i].EVR == u.EVR {
				res = append(res[:i], res[i+1:]...)
				break
			}
		}
		res = append(res, u)
		return nil
	}

	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimRight(sc.Text(), " \r")
		if strings.TrimSpace(line) == "" {
			if pending != nil {
				return nil, fmt.Errorf("check-update line %d: record of line %d is incomplete", n, pendingLine)
			}
			continue
		}
		toks := strings.Fields(line)
		indented := line[0] == ' ' || line[0] == '\t'
		if pending != nil {
			if !indented {
				return nil, fmt.Errorf("check-update line %d: record of line %d is incomplete", n, pendingLine)
			}
			pending = append(pending, toks...)
			if len(pending) > 3 {
				return nil, fmt.Errorf("check-update line %d: record of line %d has %d columns", n, pendingLine, len(pending))
			}
			if len(pending) == 3 {
				if err := record(pending, pendingLine, pendingInstalled); err != nil {
					return nil, err
				}
				pending = nil
			}
			continue
		}
		if strings.EqualFold(strings.TrimSpace(line), "Obsoleting Packages") {
			obsoleting = true
			continue
		}
		installed := false
		if indented {
			// Only the installed packages under an obsoleting update are
			// indented at the start of a record.
			if !obsoleting {
				return nil, fmt.Errorf("check-update line %d: unexpected indented line %q", n, line)
			}
			if len(res) == 0 {
				return nil, fmt.Errorf("check-update line %d: obsoleted package without an obsoleting one", n)
			}
			installed = true
		}
		if _, _, ok := splitNameArch(toks[0]); !ok || len(toks) > 3 {
			if installed {
				return nil, fmt.Errorf("check-update line %d: bad obsoleted package line %q", n, line)
			}
			continue // a message
		}
		if len(toks) == 3 {
			if err := record(toks, n, installed); err != nil {
				return nil, err
			}
			continue
		}
		pending, pendingLine, pendingInstalled = toks, n, installed
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("check-update: %w", err)
	}
	if pending != nil {
		return nil, fmt.Errorf("check-update line %d: record is incomplete at end of output", pendingLine)
	}
	return res, nil
}

// AdvisoryPackage is one line of an advisory list: a package version that
// an advisory covers.
type AdvisoryPackage struct {
	// ID is the advisory's ID (e.g. "RHSA-2024:9185"), or the CVE or bug ID
	// when listed with --with-cve or --with-bz.
	ID string
	// Type is "security", "bugfix", "enhancement", "newpackage" or "unknown".
	Type string
	// Severity is "Critical", "Important", "Moderate" or "Low"; empty when
	// the advisory gives none.
	Severity string
	Package  NEVRA
	// Installed is true when dnf marks the package installed (dnf 4's "i "
	// with --all).
	Installed bool
	// Updated is the advisory's date when dnf prints it (dnf 4 verbose,
	// dnf 5 "Issued").
	Updated string
}

var (
	dnf4ListRE = regexp.MustCompile(`^(i )?\s*(\S+)\s+(Critical/Sec\.|Important/Sec\.|Moderate/Sec\.|Low/Sec\.|Unknown/Sec\.|bugfix|enhancement|newpackage|security|unknown)\s+(\S+)(?:\s+(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d))?$`)
	dnf5HeadRE = regexp.MustCompile(`^(?:Name|CVE|Bugzilla)\s+Type\s+Severity\s+Package\s+Issued$`)
	advTypes   = map[string]bool{"security": true, "bugfix": true, "enhancement": true, "newpackage": true, "unknown": true}
)

// ParseUpdateinfoList parses `dnf updateinfo list` (dnf 4: "ID LABEL
// NEVRA", where LABEL is e.g. "Important/Sec." or "bugfix") and
// `dnf advisory list` (dnf 5: a table with the header "Name Type Severity
// Package Issued"). Other lines are skipped.
func ParseUpdateinfoList(out []byte) ([]AdvisoryPackage, error) {
	var res []AdvisoryPackage
	dnf5 := false
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), " \r")
		if dnf5HeadRE.MatchString(line) {
			dnf5 = true
			continue
		}
		if dnf5 {
			f := strings.Fields(line)
			if len(f) != 5 && len(f) != 6 || !advTypes[f[1]] {
				continue
			}
			a := AdvisoryPackage{ID: f[0], Type: f[1], Updated: f[len(f)-2] + " " + f[len(f)-1]}
			nevra := f[2]
			if len(f) == 6 {
				a.Severity, nevra = f[2], f[3]
			}
			if a.Severity == "None" {
				a.Severity = ""
			}
			p, err := ParseNEVRA(nevra)
			if err != nil {
				return nil, fmt.Errorf("advisory list line %d: %w", n, err)
			}
			a.Package = p
			res = append(res, a)
			continue
		}
		m := dnf4ListRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		a := AdvisoryPackage{ID: m[2], Installed: m[1] != "", Updated: m[5]}
		if sev, ok := strings.CutSuffix(m[3], "/Sec."); ok {
			a.Type = "security"
			if sev != "Unknown" {
				a.Severity = sev
			}
		} else {
			a.Type = m[3]
		}
		p, err := ParseNEVRA(m[4])
		if err != nil {
			return nil, fmt.Errorf("updateinfo list line %d: %w", n, err)
		}
		a.Package = p
		res = append(res, a)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("updateinfo list: %w", err)
	}
	return res, nil
}

// Advisory is one advisory as `dnf updateinfo info` describes it.
type Advisory struct {
	ID       string
	Title    string
	Type     string
	Updated  string
	Severity string
	// Bugs are "ID - title" lines, CVEs are IDs.
	Bugs        []string
	CVEs        []string
	Description string
	Rights      string
	Files       []string
	// Installed is "true" or "false" when dnf prints it (--all).
	Installed string
}

// ParseUpdateinfoInfo parses `dnf updateinfo info` output of dnf 4: blocks
// of a title between two rules and "Label: value" lines, continuation
// lines having an empty label. Both the current "Label: value" and the
// older "Label : value" layouts are accepted.
func ParseUpdateinfoInfo(out []byte) ([]Advisory, error) {
	var res []Advisory
	lines := strings.Split(strings.ReplaceAll(string(out), "\r\n", "\n"), "\n")
	var cur *Advisory
	var desc, rights []string
	last := ""
	finish := func(n int) error {
		if cur == nil {
			return nil
		}
		if cur.ID == "" {
			return fmt.Errorf("updateinfo info line %d: advisory %q has no Update ID", n, cur.Title)
		}
		cur.Description = strings.Join(desc, "\n")
		cur.Rights = strings.Join(rights, "\n")
		res = append(res, *cur)
		cur, desc, rights, last = nil, nil, nil, ""
		return nil
	}
	for i := 0; i < len(lines); i++ {
		line := strings.TrimRight(lines[i], "\r")
		if strings.HasPrefix(line, "=====") {
			if i+2 >= len(lines) || !strings.HasPrefix(lines[i+2], "=====") {
				return nil, fmt.Errorf("updateinfo info line %d: title block is not closed", i+1)
			}
			if err := finish(i + 1); err != nil {
				return nil, err
			}
			cur = &Advisory{Title: strings.TrimSpace(lines[i+1])}
			i += 2
			continue
		}
		if cur == nil || strings.TrimSpace(line) == "" {
			continue
		}
		colon := strings.IndexByte(line, ':')
		if colon < 0 {
			return nil, fmt.Errorf("updateinfo info line %d: no label in %q", i+1, line)
		}
		key := strings.TrimSpace(line[:colon])
		val := strings.TrimPrefix(line[colon+1:], " ")
		if key == "" {
			key = last
		}
		if key == "" {
			return nil, fmt.Errorf("updateinfo info line %d: continuation without a label", i+1)
		}
		switch key {
		case "Update ID":
			cur.ID = strings.TrimSpace(val)
		case "Type":
			cur.Type = strings.TrimSpace(val)
		case "Updated", "Issued":
			cur.Updated = strings.TrimSpace(val)
		case "Severity":
			cur.Severity = strings.TrimSpace(val)
		case "Bugs":
			cur.Bugs = append(cur.Bugs, strings.TrimSpace(val))
		case "CVEs":
			cur.CVEs = append(cur.CVEs, strings.TrimSpace(val))
		case "Description":
			desc = append(desc, strings.TrimRight(val, " "))
		case "Rights":
			rights = append(rights, strings.TrimRight(val, " "))
		case "Files":
			cur.Files = append(cur.Files, strings.TrimSpace(val))
		case "Installed":
			cur.Installed = strings.TrimSpace(val)
		}
		last = key
	}
	if err := finish(len(lines)); err != nil {
		return nil, err
	}
	return res, nil
}

var severityRank = map[string]int{"Low": 1, "Moderate": 2, "Important": 3, "Critical": 4}

// Classify marks the updates that fix a security advisory: an advisory
// package of the same name and architecture whose version is not newer
// than the update's. It sets Security, Advisories and the highest
// Severity, and returns the updates. Advisories of other types are listed
// in Advisories without making the update a security one.
func Classify(updates []Update, advisories []AdvisoryPackage) []Update {
	for i := range updates {
		u := &updates[i]
		for _, a := range advisories {
			if a.Package.Name != u.Name || a.Package.Arch != u.Arch {
				continue
			}
			if vercmp.CompareRPM(a.Package.EVR, u.EVR) > 0 {
				continue // fixed only by a later version than this update
			}
			if !slices.Contains(u.Advisories, a.ID) {
				u.Advisories = append(u.Advisories, a.ID)
			}
			if a.Type == "security" {
				u.Security = true
				if severityRank[a.Severity] > severityRank[u.Severity] {
					u.Severity = a.Severity
				}
			}
		}
	}
	return updates
}
