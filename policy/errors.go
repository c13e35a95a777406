package policy

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Problem is one mistake in a policy or catalog entry. Line and Col are
// 1-based positions in the source file; both are 0 when the source has no
// useful positions (canonical JSON, values built in Go).
type Problem struct {
	Line int    `json:"line,omitempty"`
	Col  int    `json:"col,omitempty"`
	Path string `json:"path,omitempty"` // e.g. "rings[2].defer"
	Msg  string `json:"msg"`
}

// String formats p without the file name: "14:12: rings[2].defer: msg".
func (p Problem) String() string {
	var b strings.Builder
	if p.Line > 0 {
		fmt.Fprintf(&b, "%d:%d: ", p.Line, p.Col)
	}
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// ValidationError lists every problem found in one document. Callers branch
// on it with errors.As.
type ValidationError struct {
	File     string    `json:"file,omitempty"`
	Problems []Problem `json:"problems"`
}

// Error prints one problem per line as "file:line:col: path: msg".
func (e *ValidationError) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		if e.File != "" {
			b.WriteString(e.File)
			if p.Line > 0 {
				b.WriteByte(':')
			} else {
				b.WriteString(": ")
			}
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// problems collects mistakes while decoding and validating one document.
type problems struct {
	list []Problem
	// pos maps a field path to the position of its value (or key, for
	// mappings) in the YAML source, so that cross-field checks made on the
	// decoded structure can still point at a line.
	pos map[string][2]int
	// bad holds the paths already reported, so that a value that could not
	// be read is not also reported as missing or out of range.
	bad map[string]bool
}

func (ps *problems) add(line, col int, path, format string, args ...any) {
	if ps.bad == nil {
		ps.bad = map[string]bool{}
	}
	ps.bad[path] = true
	ps.list = append(ps.list, Problem{Line: line, Col: col, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// at records a problem for path, locating it at the closest known position:
// the path itself or its nearest recorded parent.
func (ps *problems) at(path, format string, args ...any) {
	if ps.bad[path] {
		return
	}
	line, col := ps.lookup(path)
	ps.add(line, col, path, format, args...)
}

// badUnder reports whether a problem was already reported at path or below.
func (ps *problems) badUnder(path string) bool {
	for b := range ps.bad {
		if b == path || strings.HasPrefix(b, path+".") || strings.HasPrefix(b, path+"[") {
			return true
		}
	}
	return false
}

func (ps *problems) lookup(path string) (int, int) {
	for p := path; ; p = parentPath(p) {
		if lc, ok := ps.pos[p]; ok {
			return lc[0], lc[1]
		}
		if p == "" {
			return 0, 0
		}
	}
}

// parentPath strips the last element of a field path:
// "rings[2].defer" -> "rings[2]" -> "rings" -> "".
func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

// err returns nil when nothing was found, or a *ValidationError with the
// problems sorted by position (problems without one keep their order, last).
func (ps *problems) err(file string) error {
	if len(ps.list) == 0 {
		return nil
	}
	list := slices.Clone(ps.list)
	slices.SortStableFunc(list, func(a, b Problem) int {
		if (a.Line == 0) != (b.Line == 0) {
			if a.Line == 0 {
				return 1
			}
			return -1
		}
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col))
	})
	list = slices.Compact(list)
	return &ValidationError{File: file, Problems: list}
}

func joinPath(parent, field string) string {
	if parent == "" {
		return field
	}
	return parent + "." + field
}

func indexPath(parent string, i int) string {
	return fmt.Sprintf("%s[%d]", parent, i)
}
