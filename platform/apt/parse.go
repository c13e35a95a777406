package apt

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/patchring/patchring/platform/vercmp"
)

// This file holds the parsers of apt's and dpkg's output. They are pure
// functions over bytes, tested on recorded output and fuzzed; none of them
// trusts its input to be well formed.

// ArchiveFilename is the file name apt gives a package's payload in its
// archives directory (pkgAcqArchive): name_version_arch.deb with "_", ":",
// "%", spaces and non-printable bytes percent-encoded, so an epoch's colon
// becomes "%3a".
func ArchiveFilename(name, version, arch string) string {
	return aptQuote(name, "_:") + "_" + aptQuote(version, "_:") + "_" + aptQuote(arch, "_:.") + ".deb"
}

// aptQuote is apt's QuoteString: it encodes bytes in bad, '%', and bytes
// outside printable ASCII as lowercase %xx.
func aptQuote(s, bad string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if strings.IndexByte(bad, c) >= 0 || c == '%' || c <= 0x20 || c >= 0x7f {
			fmt.Fprintf(&b, "%%%02x", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// aptUnquote reverses aptQuote (and any other %xx encoding).
func aptUnquote(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("truncated escape in %q", s)
		}
		v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", fmt.Errorf("bad escape in %q", s)
		}
		b.WriteByte(byte(v))
		i += 2
	}
	return b.String(), nil
}

// ParseArchiveFilename splits a file name made by ArchiveFilename (or a
// pool file name) into package name, version and architecture.
func ParseArchiveFilename(fn string) (name, version, arch string, err error) {
	base := fn
	for _, ext := range []string{".deb", ".udeb", ".ddeb"} {
		if strings.HasSuffix(base, ext) {
			base = strings.TrimSuffix(base, ext)
			break
		}
	}
	if base == fn {
		return "", "", "", fmt.Errorf("archive file name %q: not a .deb", fn)
	}
	parts := strings.Split(base, "_")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return "", "", "", fmt.Errorf("archive file name %q: want name_version_arch.deb", fn)
	}
	out := make([]string, 3)
	for i, p := range parts {
		if out[i], err = aptUnquote(p); err != nil {
			return "", "", "", fmt.Errorf("archive file name %q: %w", fn, err)
		}
	}
	return out[0], out[1], out[2], nil
}

// printURI is one line of `apt-get download --print-uris` or
// `apt-get install --print-uris`: 'URI' filename size hash.
type printURI struct {
	URI      string
	Filename string
	Name     string
	Version  string
	Arch     string
	Size     int64
	Hash     string // "SHA256:hex", possibly another type or empty
}

// parsePrintURIs parses --print-uris output. Lines that do not start with
// a quote (apt's messages) are ignored.
func parsePrintURIs(out []byte) ([]printURI, error) {
	var res []printURI
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), "\r")
		if !strings.HasPrefix(line, "'") {
			continue
		}
		end := strings.IndexByte(line[1:], '\'')
		if end < 0 {
			return nil, fmt.Errorf("print-uris line %d: unterminated URI", n)
		}
		p := printURI{URI: line[1 : 1+end]}
		f := strings.Fields(line[2+end:])
		if len(f) < 2 || len(f) > 3 {
			return nil, fmt.Errorf("print-uris line %d: want 'URI' filename size hash, got %q", n, line)
		}
		p.Filename = f[0]
		size, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil || size < 0 {
			return nil, fmt.Errorf("print-uris line %d: bad size %q", n, f[1])
		}
		p.Size = size
		if len(f) == 3 {
			p.Hash = f[2]
			if k, v, ok := strings.Cut(p.Hash, ":"); !ok || k == "" || v == "" {
				return nil, fmt.Errorf("print-uris line %d: bad hash %q", n, p.Hash)
			}
		}
		if p.Name, p.Version, p.Arch, err = ParseArchiveFilename(p.Filename); err != nil {
			return nil, fmt.Errorf("print-uris line %d: %w", n, err)
		}
		res = append(res, p)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("print-uris: %w", err)
	}
	return res, nil
}

// hashSHA256 returns the hex digest of a "SHA256:hex" hash string.
func hashSHA256(h string) (string, bool) {
	k, v, ok := strings.Cut(h, ":")
	if !ok || !strings.EqualFold(k, "SHA256") || !isHex(v, 64) {
		return "", false
	}
	return strings.ToLower(v), true
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i] | 0x20
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// policy is the parsed output of apt-cache policy: the package files
// section (without arguments) and one entry per package (with arguments).
type policy struct {
	Files    map[string]Source // by Source.Index
	Packages []policyPackage
}

type policyPackage struct {
	Name      string // as apt prints it, possibly "name:arch"
	Installed string // "" for (none)
	Candidate string // "" for (none)
	Versions  []policyVersion
}

type policyVersion struct {
	Version   string
	Installed bool // marked "***"
	Priority  int
	Indexes   []policyIndex
}

type policyIndex struct {
	Priority int
	Index    string
}

// parsePolicy parses apt-cache policy output, with or without package
// arguments.
func parsePolicy(out []byte) (policy, error) {
	pol := policy{Files: map[string]Source{}}
	const (
		none = iota
		files
		pinned
		pkg
	)
	state := none
	var cur *policyPackage
	var curFile *Source
	inTable := false
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		bad := func(what string) error { return fmt.Errorf("apt-cache policy line %d: %s: %q", n, what, line) }
		indent := len(line) - len(strings.TrimLeft(line, " "))
		if indent == 0 {
			switch {
			case line == "Package files:":
				state = files
			case line == "Pinned packages:":
				state = pinned
			case len(line) > 1 && line[0] != ':' && strings.HasSuffix(line, ":") && !strings.ContainsAny(line, " \t"):
				state = pkg
				pol.Packages = append(pol.Packages, policyPackage{Name: strings.TrimSuffix(line, ":")})
				cur = &pol.Packages[len(pol.Packages)-1]
				inTable = false
			default:
				return policy{}, bad("unexpected line")
			}
			curFile = nil
			continue
		}
		switch state {
		case files:
			t := strings.TrimSpace(line)
			switch {
			case indent == 1:
				prio, idx, ok := splitPriority(t)
				if !ok {
					return policy{}, bad("bad package file")
				}
				pol.Files[idx] = Source{Index: idx, Priority: prio}
				s := pol.Files[idx]
				curFile = &s
			case curFile != nil && strings.HasPrefix(t, "release "):
				parseRelease(strings.TrimPrefix(t, "release "), curFile)
				pol.Files[curFile.Index] = *curFile
			case curFile != nil && strings.HasPrefix(t, "origin "):
				curFile.Site = strings.TrimSpace(strings.TrimPrefix(t, "origin "))
				pol.Files[curFile.Index] = *curFile
			default:
				return policy{}, bad("unexpected package file detail")
			}
		case pinned:
			// "     pkg -> version with priority N": not needed.
		case pkg:
			t := strings.TrimSpace(line)
			switch {
			case indent == 2 && strings.HasPrefix(t, "Installed:"):
				cur.Installed = noneToEmpty(strings.TrimSpace(strings.TrimPrefix(t, "Installed:")))
			case indent == 2 && strings.HasPrefix(t, "Candidate:"):
				cur.Candidate = noneToEmpty(strings.TrimSpace(strings.TrimPrefix(t, "Candidate:")))
			case indent == 2 && t == "Version table:":
				inTable = true
			case indent == 2:
				// Other details, e.g. "Package pin: 1.0".
			case inTable && (indent == 5 || strings.HasPrefix(line, " *** ")):
				v := policyVersion{}
				if strings.HasPrefix(line, " *** ") {
					v.Installed = true
					t = strings.TrimSpace(line[5:])
				}
				f := strings.Fields(t)
				if len(f) != 2 {
					return policy{}, bad("bad version line")
				}
				prio, err := strconv.Atoi(f[1])
				if err != nil {
					return policy{}, bad("bad version priority")
				}
				v.Version, v.Priority = f[0], prio
				cur.Versions = append(cur.Versions, v)
			case inTable && indent == 8 && len(cur.Versions) > 0:
				prio, idx, ok := splitPriority(t)
				if !ok {
					return policy{}, bad("bad version source")
				}
				vv := &cur.Versions[len(cur.Versions)-1]
				vv.Indexes = append(vv.Indexes, policyIndex{Priority: prio, Index: idx})
			default:
				return policy{}, bad("unexpected package detail")
			}
		default:
			return policy{}, bad("text before any section")
		}
	}
	if err := sc.Err(); err != nil {
		return policy{}, fmt.Errorf("apt-cache policy: %w", err)
	}
	return pol, nil
}

func noneToEmpty(s string) string {
	if s == "(none)" {
		return ""
	}
	return s
}

// splitPriority splits "500 http://… Packages" into 500 and the rest.
func splitPriority(s string) (int, string, bool) {
	p, rest, ok := strings.Cut(s, " ")
	if !ok {
		return 0, "", false
	}
	n, err := strconv.Atoi(p)
	rest = strings.TrimSpace(rest)
	if err != nil || rest == "" {
		return 0, "", false
	}
	return n, rest, true
}

// parseRelease fills s from "v=12,o=Debian,a=…,n=…,l=…,c=main,b=amd64". A
// value may itself contain commas (a label such as "Foo, Inc."): a segment
// that does not start with a known key continues the previous value.
func parseRelease(text string, s *Source) {
	fields := map[string]*string{
		"v": &s.Version, "o": &s.Origin, "a": &s.Archive, "n": &s.Codename,
		"l": &s.Label, "c": &s.Component, "b": &s.Arch,
	}
	var last *string
	for _, seg := range strings.Split(text, ",") {
		k, v, ok := strings.Cut(seg, "=")
		if dst, known := fields[k]; ok && known {
			*dst = v
			last = dst
			continue
		}
		if last != nil {
			*last += "," + seg
		}
	}
}

// isStatusIndex reports whether an index of the version table is dpkg's
// status file rather than a source the version can be fetched from.
func isStatusIndex(files map[string]Source, idx string) bool {
	if s, ok := files[idx]; ok {
		return s.Archive == "now"
	}
	return strings.HasSuffix(idx, "/dpkg/status")
}

// sourcesFor returns the download sources of version in p, in apt's order.
func sourcesFor(files map[string]Source, p policyPackage, version string) ([]Source, bool) {
	for _, v := range p.Versions {
		if v.Version != version {
			continue
		}
		var res []Source
		for _, ix := range v.Indexes {
			if isStatusIndex(files, ix.Index) {
				continue
			}
			s, ok := files[ix.Index]
			if !ok {
				s = Source{Index: ix.Index}
			}
			s.Priority = ix.Priority
			res = append(res, s)
		}
		return res, true
	}
	return nil, false
}

// splitArch splits "name:arch" into name and arch ("" when unqualified).
func splitArch(s string) (string, string) {
	if name, arch, ok := strings.Cut(s, ":"); ok {
		return name, arch
	}
	return s, ""
}

// newCandidate builds a Candidate for version of the policy entry p, with
// its sources and the payload line apt printed for it.
func newCandidate(p policyPackage, version string, sources []Source, u printURI) Candidate {
	name, _ := splitArch(p.Name)
	c := Candidate{
		Package:   name,
		Arch:      u.Arch,
		Installed: p.Installed,
		Version:   version,
		Sources:   sources,
		URI:       u.URI,
		Filename:  u.Filename,
		Size:      u.Size,
		Hash:      u.Hash,
	}
	c.SHA256, _ = hashSHA256(u.Hash)
	primary := -1
	for i, s := range sources {
		if s.IsSecurity() {
			c.Security = true
			if primary < 0 {
				primary = i
			}
		}
	}
	if primary < 0 && len(sources) > 0 {
		primary = 0
	}
	if primary >= 0 {
		s := sources[primary]
		c.Origin, c.Label, c.Archive, c.Codename, c.Component, c.Site = s.Origin, s.Label, s.Archive, s.Codename, s.Component, s.Site
	}
	return c
}

// findURI picks the payload line for package name (possibly arch-qualified)
// at version. With several architectures at that version, the qualifier,
// then preferArch, then "all" decide.
func findURI(uris []printURI, name, version, preferArch string) (printURI, bool) {
	base, qual := splitArch(name)
	var match []printURI
	for _, u := range uris {
		if u.Name == base && u.Version == version {
			match = append(match, u)
		}
	}
	if len(match) == 1 {
		return match[0], true
	}
	for _, want := range []string{qual, preferArch, "all"} {
		if want == "" {
			continue
		}
		for _, u := range match {
			if u.Arch == want {
				return u, true
			}
		}
	}
	return printURI{}, false
}

// upgradable returns the policy entries whose candidate is newer than the
// installed version, as compare orders versions.
func upgradable(pol policy, compare func(a, b string) (int, error)) ([]policyPackage, error) {
	var res []policyPackage
	for _, p := range pol.Packages {
		if p.Installed == "" || p.Candidate == "" || p.Candidate == p.Installed {
			continue
		}
		c, err := compare(p.Candidate, p.Installed)
		if err != nil {
			return nil, fmt.Errorf("package %s: %w", p.Name, err)
		}
		if c > 0 {
			res = append(res, p)
		}
	}
	return res, nil
}

// assembleCandidates joins upgradable policy entries with the payload lines
// apt printed for them. natArch is the native architecture.
func assembleCandidates(pol policy, ups []policyPackage, uris []printURI, natArch string) ([]Candidate, error) {
	res := make([]Candidate, 0, len(ups))
	var errs []error
	for _, p := range ups {
		sources, _ := sourcesFor(pol.Files, p, p.Candidate)
		if len(sources) == 0 {
			errs = append(errs, fmt.Errorf("%s %s: no source carries the candidate", p.Name, p.Candidate))
			continue
		}
		u, ok := findURI(uris, p.Name, p.Candidate, natArch)
		if !ok {
			errs = append(errs, fmt.Errorf("%s %s: apt printed no payload URI", p.Name, p.Candidate))
			continue
		}
		res = append(res, newCandidate(p, p.Candidate, sources, u))
	}
	slices.SortFunc(res, func(a, b Candidate) int {
		return strings.Compare(a.Package+":"+a.Arch, b.Package+":"+b.Arch)
	})
	return res, errors.Join(errs...)
}

// stanza is one paragraph of a deb822 file (apt-cache show, dpkg status).
type stanza map[string]string

// parseStanzas parses deb822 paragraphs; field names are kept as written,
// continuation lines are joined with "\n".
func parseStanzas(out []byte) ([]stanza, error) {
	var res []stanza
	cur := stanza{}
	last := ""
	flush := func() {
		if len(cur) > 0 {
			res = append(res, cur)
		}
		cur, last = stanza{}, ""
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), "\r")
		switch {
		case strings.TrimSpace(line) == "":
			flush()
		case line[0] == ' ' || line[0] == '\t':
			if last == "" {
				return nil, fmt.Errorf("line %d: continuation without a field", n)
			}
			cur[last] += "\n" + strings.TrimSpace(line)
		default:
			k, v, ok := strings.Cut(line, ":")
			if !ok || k == "" || strings.ContainsAny(k, " \t") {
				return nil, fmt.Errorf("line %d: malformed field %q", n, line)
			}
			cur[k] = strings.TrimSpace(v)
			last = k
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	flush()
	return res, nil
}

// parseAudit returns the package names dpkg --audit lists: the indented
// lines under each explanation ("  name   description"), in order, without
// duplicates.
func parseAudit(out []byte) []string {
	var res []string
	seen := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.HasPrefix(line, " ") {
			continue
		}
		f := strings.Fields(line)
		if len(f) == 0 || !validPackageName(f[0]) {
			continue
		}
		name, _ := splitArch(f[0])
		if !seen[name] {
			seen[name] = true
			res = append(res, name)
		}
	}
	return res
}

// validPackageName reports whether s (optionally ":arch"-qualified) follows
// Debian's package name rules.
func validPackageName(s string) bool {
	name, arch := splitArch(s)
	if len(name) < 2 || !isLowerAlnum(name[0]) {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !isLowerAlnum(c) && c != '+' && c != '-' && c != '.' {
			return false
		}
	}
	for i := 0; i < len(arch); i++ {
		if !isLowerAlnum(arch[i]) && arch[i] != '-' {
			return false
		}
	}
	return true
}

func isLowerAlnum(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') }

var (
	// apt: "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 1234 (dpkg)"
	aptLockRE = regexp.MustCompile(`Could not get lock (\S+?)\.? It is held by process (\d+)(?: \(([^)]*)\))?`)
	// apt without a known holder: "E: Could not get lock /var/lib/dpkg/lock-frontend - open (11: Resource temporarily unavailable)"
	aptLockAnonRE = regexp.MustCompile(`Could not get lock (\S+?)(?:\.| - )`)
	// dpkg: "dpkg: error: dpkg frontend lock was locked by another process with pid 1234"
	dpkgLockRE = regexp.MustCompile(`dpkg: error: ([^\n]*?) (?:was|is) locked by another process(?: with pid (\d+))?`)
)

// parseLockError recognises apt's and dpkg's messages about a held lock.
func parseLockError(out string, adminDir string) (*LockedError, bool) {
	if m := aptLockRE.FindStringSubmatch(out); m != nil {
		pid, _ := strconv.Atoi(m[2])
		return &LockedError{Path: m[1], PID: pid, Command: m[3]}, true
	}
	if m := aptLockAnonRE.FindStringSubmatch(out); m != nil {
		return &LockedError{Path: m[1]}, true
	}
	if m := dpkgLockRE.FindStringSubmatch(out); m != nil {
		pid, _ := strconv.Atoi(m[2])
		path := adminDir + "/lock"
		if strings.Contains(m[1], "frontend") {
			path = adminDir + "/lock-frontend"
		}
		return &LockedError{Path: path, PID: pid}, true
	}
	return nil, false
}

// dpkgFailedRE matches "dpkg: error processing package NAME (--configure):"
// and "dpkg: error processing archive FILE (--unpack):".
var dpkgFailedRE = regexp.MustCompile(`(?m)^dpkg: error processing (?:package|archive) (\S+) \(`)

// parseUnmet returns the lines apt prints under "The following packages
// have unmet dependencies:", a continuation line prefixed with its
// package ("footool : Depends: b but it is not installable").
func parseUnmet(out string) []string {
	var res []string
	lines := strings.Split(out, "\n")
	for i := 0; i < len(lines); i++ {
		if strings.TrimSpace(lines[i]) != "The following packages have unmet dependencies:" {
			continue
		}
		pkg := ""
		for i++; i < len(lines) && strings.HasPrefix(lines[i], " "); i++ {
			s := strings.TrimSpace(lines[i])
			switch name, _, ok := strings.Cut(s, " : "); {
			case s == "":
			case ok:
				pkg = name
				res = append(res, s)
			case pkg != "":
				res = append(res, pkg+" : "+s)
			default:
				res = append(res, s)
			}
		}
		i--
	}
	return res
}

// parseFailedPackages returns the packages (or archives) dpkg reported
// errors for, from its "error processing" lines and the "Errors were
// encountered while processing:" list.
func parseFailedPackages(out string) []string {
	var res []string
	seen := map[string]bool{}
	add := func(s string) {
		if !seen[s] {
			seen[s] = true
			res = append(res, s)
		}
	}
	for _, m := range dpkgFailedRE.FindAllStringSubmatch(out, -1) {
		add(m[1])
	}
	lines := strings.Split(out, "\n")
	for i := 0; i < len(lines); i++ {
		if strings.TrimSpace(lines[i]) != "Errors were encountered while processing:" {
			continue
		}
		for i++; i < len(lines) && strings.HasPrefix(lines[i], " "); i++ {
			if s := strings.TrimSpace(lines[i]); s != "" {
				add(s)
			}
		}
		i--
	}
	return res
}

// parseShellVars parses `apt-config shell` output: NAME='value' lines,
// single quotes inside a value escaped as a POSIX shell does.
func parseShellVars(out []byte) (map[string]string, error) {
	res := map[string]string{}
	for n, line := range strings.Split(string(out), "\n") {
		if line == "" {
			continue
		}
		name, rest, ok := strings.Cut(line, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("apt-config shell line %d: %q", n+1, line)
		}
		val, err := shellUnquote(rest)
		if err != nil {
			return nil, fmt.Errorf("apt-config shell line %d: %w", n+1, err)
		}
		res[name] = val
	}
	return res, nil
}

// shellUnquote undoes POSIX shell quoting made of single-quoted,
// double-quoted (without expansions) and backslash-escaped pieces.
func shellUnquote(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); {
		switch s[i] {
		case '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return "", fmt.Errorf("unterminated single quote in %q", s)
			}
			b.WriteString(s[i+1 : i+1+j])
			i += j + 2
		case '"':
			j := strings.IndexByte(s[i+1:], '"')
			if j < 0 {
				return "", fmt.Errorf("unterminated double quote in %q", s)
			}
			b.WriteString(s[i+1 : i+1+j])
			i += j + 2
		case '\\':
			if i+1 >= len(s) {
				return "", fmt.Errorf("trailing backslash in %q", s)
			}
			b.WriteByte(s[i+1])
			i += 2
		default:
			b.WriteByte(s[i])
			i++
		}
	}
	return b.String(), nil
}

// parseDumpList returns the list items of key from
// `apt-config dump --format '%f=%v%n' key` output: lines "key::=value".
func parseDumpList(out []byte, key string) []string {
	var res []string
	prefix := strings.ToLower(key) + "::="
	for _, line := range strings.Split(string(out), "\n") {
		if len(line) >= len(prefix) && strings.ToLower(line[:len(prefix)]) == prefix {
			res = append(res, line[len(prefix):])
		}
	}
	return res
}

// Validate checks that the name, version and architecture follow Debian's
// syntax (a name of [a-z0-9][a-z0-9+.-]+, a version dpkg accepts made of
// [A-Za-z0-9.+~:-], an architecture of [a-z0-9-]), so that they are safe
// as apt arguments and in file names. An empty Arch is allowed.
func (p PkgVersion) Validate() error {
	if strings.Contains(p.Name, ":") || !validPackageName(p.Name) {
		return fmt.Errorf("invalid package name %q", p.Name)
	}
	if p.Version == "" {
		return fmt.Errorf("package %s: empty version", p.Name)
	}
	for i := 0; i < len(p.Version); i++ {
		c := p.Version[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(".+~:-", c) >= 0) {
			return fmt.Errorf("package %s: invalid version %q", p.Name, p.Version)
		}
	}
	if _, err := vercmp.ParseDeb(p.Version); err != nil {
		var se *vercmp.SyntaxError
		if !errors.As(err, &se) || !se.Warning {
			return fmt.Errorf("package %s: %w", p.Name, err)
		}
	}
	for i := 0; i < len(p.Arch); i++ {
		if !isLowerAlnum(p.Arch[i]) && p.Arch[i] != '-' {
			return fmt.Errorf("package %s: invalid architecture %q", p.Name, p.Arch)
		}
	}
	return nil
}

// parseSimulation parses the "Inst" and "Remv"/"Purg" lines of apt-get -s
// output into changes. Other lines (Conf, notes, the summary) are ignored.
// Shapes:
//
//	Inst libfoo [1.0] (1.1 origin:archive [amd64])
//	Inst newdep (2.0 origin:archive [all])
//	Inst libfoo:i386 [1.0] (1.1 origin:archive [i386]) []
//	Remv oldpkg [1.0]
//	Purg oldpkg [1.0]
func parseSimulation(out []byte) (Plan, error) {
	var plan Plan
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), "\r")
		verb, rest, ok := strings.Cut(line, " ")
		if !ok || (verb != "Inst" && verb != "Remv" && verb != "Purg") {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return Plan{}, fmt.Errorf("simulation line %d: no package in %q", n, line)
		}
		var c Change
		c.Package, c.Arch = splitArch(f[0])
		if !validPackageName(c.Package) {
			return Plan{}, fmt.Errorf("simulation line %d: invalid package name %q", n, f[0])
		}
		f = f[1:]
		if len(f) > 0 && strings.HasPrefix(f[0], "[") {
			if !strings.HasSuffix(f[0], "]") || len(f[0]) < 3 {
				return Plan{}, fmt.Errorf("simulation line %d: bad installed version in %q", n, line)
			}
			c.From = f[0][1 : len(f[0])-1]
			f = f[1:]
		}
		if verb != "Inst" {
			if c.From == "" {
				return Plan{}, fmt.Errorf("simulation line %d: removal without the installed version: %q", n, line)
			}
			if err := (PkgVersion{Name: c.Package, Version: c.From}).Validate(); err != nil {
				return Plan{}, fmt.Errorf("simulation line %d: %w", n, err)
			}
			plan.Changes = append(plan.Changes, c)
			continue
		}
		if len(f) == 0 || !strings.HasPrefix(f[0], "(") || len(f[0]) < 2 {
			return Plan{}, fmt.Errorf("simulation line %d: no new version in %q", n, line)
		}
		c.To = f[0][1:]
		for _, w := range f[1:] {
			if strings.HasPrefix(w, "[") && strings.HasSuffix(w, "])") && c.Arch == "" {
				c.Arch = w[1 : len(w)-2]
			}
		}
		if err := (PkgVersion{Name: c.Package, Version: c.To}).Validate(); err != nil {
			return Plan{}, fmt.Errorf("simulation line %d: %w", n, err)
		}
		if c.From != "" {
			if err := (PkgVersion{Name: c.Package, Version: c.From}).Validate(); err != nil {
				return Plan{}, fmt.Errorf("simulation line %d: %w", n, err)
			}
		}
		plan.Changes = append(plan.Changes, c)
	}
	if err := sc.Err(); err != nil {
		return Plan{}, fmt.Errorf("simulation: %w", err)
	}
	return plan, nil
}

// parseDependsNames returns the package names a Depends or Pre-Depends
// field names (alternatives included, versions and architectures dropped).
func parseDependsNames(field string) []string {
	var names []string
	for _, group := range strings.Split(field, ",") {
		for _, alt := range strings.Split(group, "|") {
			alt = strings.TrimSpace(alt)
			if i := strings.IndexAny(alt, " (["); i >= 0 {
				alt = alt[:i]
			}
			name, _ := splitArch(alt)
			if name != "" && validPackageName(name) {
				names = append(names, name)
			}
		}
	}
	return names
}

// ParseFileList reads dpkg-query -L output: one absolute path a line;
// diversion notes ("diverted by ...", "package diverts others to: ...")
// name the diverted path after the colon.
func ParseFileList(data []byte) []string {
	var out []string
	for line := range strings.SplitSeq(string(data), "\n") {
		line = strings.TrimRight(line, "\r")
		if i := strings.Index(line, ": /"); i >= 0 && !strings.HasPrefix(line, "/") {
			line = line[i+2:]
		}
		if strings.HasPrefix(line, "/") {
			out = append(out, line)
		}
	}
	return out
}
