package dpkgstatus

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Want is the first word of the Status field: what the administrator asked
// for.
type Want string

// The want values dpkg knows.
const (
	WantUnknown   Want = "unknown"
	WantInstall   Want = "install"
	WantHold      Want = "hold"
	WantDeinstall Want = "deinstall"
	WantPurge     Want = "purge"
)

// State is the third word of the Status field: where the package is.
type State string

// The package states dpkg knows.
const (
	StateNotInstalled    State = "not-installed"
	StateConfigFiles     State = "config-files"
	StateHalfInstalled   State = "half-installed"
	StateUnpacked        State = "unpacked"
	StateHalfConfigured  State = "half-configured"
	StateTriggersAwaited State = "triggers-awaited"
	StateTriggersPending State = "triggers-pending"
	StateInstalled       State = "installed"
)

// Package is the part of one status stanza patchring keeps.
type Package struct {
	Name         string `json:"name"`
	Version      string `json:"version,omitempty"`
	Architecture string `json:"architecture,omitempty"`
	// Source is the source package; the binary's own name when the stanza
	// has no Source field (dpkg's ${source:Package}).
	Source string `json:"source,omitempty"`
	// SourceVersion is the version in "Source: name (version)", else
	// Version (dpkg's ${source:Version}).
	SourceVersion string `json:"source_version,omitempty"`
	Want          Want   `json:"want"`
	// Flag is "ok" or "reinstreq" (the package is broken and must be
	// reinstalled).
	Flag      string `json:"flag"`
	State     State  `json:"state"`
	MultiArch string `json:"multi_arch,omitempty"`
	// InstalledSize is the Installed-Size field in KiB, 0 when missing.
	InstalledSize int64 `json:"installed_size_kib,omitempty"`
}

// Listed reports whether dpkg-query -W lists the package: every state but
// not-installed.
func (p *Package) Listed() bool { return p.State != StateNotInstalled }

// Installed reports whether the package's files are fully on the system:
// installed, or only waiting for triggers.
func (p *Package) Installed() bool {
	switch p.State {
	case StateInstalled, StateTriggersAwaited, StateTriggersPending:
		return true
	}
	return false
}

// ParseError names the line of a status file that could not be read.
type ParseError struct {
	File string // may be empty when parsing bytes
	Line int
	Msg  string
}

func (e *ParseError) Error() string {
	if e.File == "" {
		return fmt.Sprintf("dpkg status line %d: %s", e.Line, e.Msg)
	}
	return fmt.Sprintf("dpkg status %s:%d: %s", e.File, e.Line, e.Msg)
}

// span locates a string in the arena.
type span struct{ off, n uint32 }

// rec is a stanza while the arena is still growing.
type rec struct {
	name, version, source, sourceVersion span
	hasSource, hasSourceVersion          bool
	arch, multiArch                      string
	status                               *statusWords
	size                                 int64
	line                                 int
}

type statusWords struct {
	want  Want
	flag  string
	state State
}

// parser holds the interning tables of one Parse call.
type parser struct {
	arena  []byte
	recs   []rec
	strs   map[string]string
	status map[string]*statusWords
}

func (p *parser) intern(b []byte) string {
	if s, ok := p.strs[string(b)]; ok { // no allocation for the lookup
		return s
	}
	s := string(b)
	p.strs[s] = s
	return s
}

func (p *parser) keep(b []byte) span {
	sp := span{uint32(len(p.arena)), uint32(len(b))}
	p.arena = append(p.arena, b...)
	return sp
}

var unknownStatus = &statusWords{want: WantUnknown, flag: "ok", state: StateNotInstalled}

func (p *parser) parseStatus(v []byte) (*statusWords, error) {
	if w, ok := p.status[string(v)]; ok {
		return w, nil
	}
	words := strings.Fields(string(v))
	if len(words) != 3 {
		return nil, fmt.Errorf("field Status %q: want three words (want flag state)", v)
	}
	w := &statusWords{want: Want(words[0]), flag: words[1], state: State(words[2])}
	switch w.want {
	case WantUnknown, WantInstall, WantHold, WantDeinstall, WantPurge:
	default:
		return nil, fmt.Errorf("field Status %q: unknown want %q", v, words[0])
	}
	switch w.flag {
	case "ok", "reinstreq":
	default:
		return nil, fmt.Errorf("field Status %q: unknown flag %q", v, words[1])
	}
	switch w.state {
	case StateNotInstalled, StateConfigFiles, StateHalfInstalled, StateUnpacked,
		StateHalfConfigured, StateTriggersAwaited, StateTriggersPending, StateInstalled:
	default:
		return nil, fmt.Errorf("field Status %q: unknown state %q", v, words[2])
	}
	p.status[string(v)] = w
	return w, nil
}

// field names are matched case-insensitively, as dpkg does.
func fieldIs(name []byte, want string) bool {
	return len(name) == len(want) && (string(name) == want || bytes.EqualFold(name, []byte(want)))
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// Parse reads a dpkg status file's contents. Stanzas are separated by empty
// lines; continuation lines (starting with a space or tab) belong to the
// field above and are skipped for the fields Parse does not keep. A stanza
// without a Status field counts as "unknown ok not-installed", as dpkg
// does; one without a Package field, a line that is neither a field nor a
// continuation, or a Status that is not three known words is an error.
// The packages come back in file order.
func Parse(data []byte) ([]Package, error) {
	return parse(data, "")
}

func parse(data []byte, file string) ([]Package, error) {
	stanzas := bytes.Count(data, []byte("\n\n")) + 1
	p := &parser{
		arena:  make([]byte, 0, stanzas*48),
		recs:   make([]rec, 0, stanzas),
		strs:   make(map[string]string, 16),
		status: make(map[string]*statusWords, 8),
	}
	if err := p.run(data); err != nil {
		if pe, ok := err.(*ParseError); ok {
			pe.File = file
		}
		return nil, err
	}
	return p.packages(), nil
}

func (p *parser) run(data []byte) error {
	var cur rec
	inStanza := false
	haveName := false
	finish := func() error {
		if !inStanza {
			return nil
		}
		if !haveName {
			return &ParseError{Line: cur.line, Msg: "stanza has no Package field"}
		}
		if cur.status == nil {
			cur.status = unknownStatus
		}
		p.recs = append(p.recs, cur)
		cur, inStanza, haveName = rec{}, false, false
		return nil
	}
	line := 0
	for pos := 0; pos < len(data); {
		line++
		end := bytes.IndexByte(data[pos:], '\n')
		var l []byte
		if end < 0 {
			l, pos = data[pos:], len(data)
		} else {
			l, pos = data[pos:pos+end], pos+end+1
		}
		if len(l) == 0 || (len(l) == 1 && l[0] == '\r') {
			if err := finish(); err != nil {
				return err
			}
			continue
		}
		if l[0] == ' ' || l[0] == '\t' {
			if !inStanza {
				if len(trimSpace(l)) == 0 {
					continue // stray blank-ish line between stanzas
				}
				return &ParseError{Line: line, Msg: "continuation line outside a stanza"}
			}
			continue
		}
		colon := bytes.IndexByte(l, ':')
		if colon <= 0 {
			return &ParseError{Line: line, Msg: fmt.Sprintf("%q is not a field (no \"Name:\")", truncate(l))}
		}
		if !inStanza {
			inStanza, cur.line = true, line
		}
		name, val := l[:colon], trimSpace(l[colon+1:])
		switch name[0] | 0x20 {
		case 'p':
			if fieldIs(name, "Package") {
				if len(val) == 0 {
					return &ParseError{Line: line, Msg: "empty Package field"}
				}
				cur.name, haveName = p.keep(val), true
			}
		case 'v':
			if fieldIs(name, "Version") {
				cur.version = p.keep(val)
			}
		case 'a':
			if fieldIs(name, "Architecture") {
				cur.arch = p.intern(val)
			}
		case 's':
			if fieldIs(name, "Status") {
				w, err := p.parseStatus(val)
				if err != nil {
					return &ParseError{Line: line, Msg: err.Error()}
				}
				cur.status = w
			} else if fieldIs(name, "Source") {
				src, ver := val, []byte(nil)
				if i := bytes.IndexByte(val, '('); i >= 0 {
					src = trimSpace(val[:i])
					ver = val[i+1:]
					if j := bytes.IndexByte(ver, ')'); j >= 0 {
						ver = ver[:j]
					}
					ver = trimSpace(ver)
				}
				if len(src) > 0 {
					cur.source, cur.hasSource = p.keep(src), true
				}
				if len(ver) > 0 {
					cur.sourceVersion, cur.hasSourceVersion = p.keep(ver), true
				}
			}
		case 'm':
			if fieldIs(name, "Multi-Arch") {
				cur.multiArch = p.intern(val)
			}
		case 'i':
			if fieldIs(name, "Installed-Size") {
				n, ok := atoi(val)
				if !ok {
					return &ParseError{Line: line, Msg: fmt.Sprintf("Installed-Size %q is not a size", truncate(val))}
				}
				cur.size = n
			}
		}
	}
	return finish()
}

// atoi parses a non-negative decimal number without allocating.
func atoi(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func truncate(b []byte) []byte {
	if len(b) > 60 {
		return append(b[:57:57], "..."...)
	}
	return b
}

func (p *parser) packages() []Package {
	arena := string(p.arena)
	str := func(s span) string { return arena[s.off : s.off+s.n] }
	out := make([]Package, len(p.recs))
	for i := range p.recs {
		r := &p.recs[i]
		pk := &out[i]
		pk.Name = str(r.name)
		pk.Version = str(r.version)
		pk.Architecture = r.arch
		pk.Source = pk.Name
		if r.hasSource {
			pk.Source = str(r.source)
		}
		pk.SourceVersion = pk.Version
		if r.hasSourceVersion {
			pk.SourceVersion = str(r.sourceVersion)
		}
		pk.Want, pk.Flag, pk.State = r.status.want, r.status.flag, r.status.state
		pk.MultiArch = r.multiArch
		pk.InstalledSize = r.size
	}
	return out
}

// ReadDB reads the dpkg database the way dpkg-query sees it: the status
// file, then the journal files in the updates directory beside it
// (<dir>/updates/NNNN, in numeric order), whose stanzas replace the ones
// with the same name and architecture. The result is sorted by name, then
// architecture, like dpkg-query's output.
func ReadDB(statusPath string) ([]Package, error) {
	data, err := os.ReadFile(statusPath)
	if err != nil {
		return nil, fmt.Errorf("read dpkg status: %w", err)
	}
	pkgs, err := parse(data, statusPath)
	if err != nil {
		return nil, err
	}
	updates := filepath.Join(filepath.Dir(statusPath), "updates")
	entries, err := os.ReadDir(updates)
	if err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("read dpkg updates journal: %w", err)
	}
	var journal []string
	for _, e := range entries {
		if name := e.Name(); name != "" && strings.Trim(name, "0123456789") == "" && e.Type().IsRegular() {
			journal = append(journal, name)
		}
	}
	if len(journal) > 0 {
		slices.SortFunc(journal, func(a, b string) int {
			x, _ := strconv.Atoi(a)
			y, _ := strconv.Atoi(b)
			return x - y
		})
		type key struct{ name, arch string }
		index := make(map[key]int, len(pkgs))
		for i := range pkgs {
			index[key{pkgs[i].Name, pkgs[i].Architecture}] = i
		}
		for _, name := range journal {
			file := filepath.Join(updates, name)
			data, err := os.ReadFile(file)
			if err != nil {
				return nil, fmt.Errorf("read dpkg updates journal: %w", err)
			}
			upd, err := parse(data, file)
			if err != nil {
				return nil, err
			}
			for _, u := range upd {
				k := key{u.Name, u.Architecture}
				if i, ok := index[k]; ok {
					pkgs[i] = u
				} else {
					index[k] = len(pkgs)
					pkgs = append(pkgs, u)
				}
			}
		}
	}
	Sort(pkgs)
	return pkgs, nil
}

// Sort orders packages by name, then architecture, as dpkg-query lists
// them.
func Sort(pkgs []Package) {
	slices.SortFunc(pkgs, func(a, b Package) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.Architecture, b.Architecture)
	})
}
