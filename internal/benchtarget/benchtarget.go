// Package benchtarget lets a benchmark declare, next to its measurement, the
// goal the figure must meet and the range outside which the figure cannot be
// a real measurement (a broken counter reporting 0, say). Both travel inside
// the metric's unit string, so `go test -bench` output carries them and
// `make bench` (through cmd/benchcheck) prints every figure as
//
//	name value unit [target ok|FAIL]
//
// and exits non-zero when a goal is missed or a figure is implausible.
//
// The unit string is name@unit followed by checks, each after an '@':
// "<=X" or ">=X" (the goal) and "in:LO:HI" (the plausible range), e.g.
// "p2p_wan_bytes_ratio@x@<=1.05@in:1:20".
package benchtarget

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
)

// Check is one condition on a figure: a goal (AtMost, AtLeast) or a
// plausible range (Plausible).
type Check struct {
	op     string // "<=", ">=" or "in"
	lo, hi float64
}

// AtMost is the goal value <= v.
func AtMost(v float64) Check { return Check{op: "<=", hi: v} }

// AtLeast is the goal value >= v.
func AtLeast(v float64) Check { return Check{op: ">=", lo: v} }

// Plausible says a real measurement lies in [lo, hi]; outside it the
// measuring itself is broken, whatever the goal says.
func Plausible(lo, hi float64) Check { return Check{op: "in", lo: lo, hi: hi} }

func num(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// String is the check as it appears in the unit string.
func (c Check) String() string {
	switch c.op {
	case "<=":
		return "<=" + num(c.hi)
	case ">=":
		return ">=" + num(c.lo)
	default:
		return "in:" + num(c.lo) + ":" + num(c.hi)
	}
}

// Goal reports whether c is a goal (printed as the target) rather than a
// plausibility range.
func (c Check) Goal() bool { return c.op != "in" }

// OK reports whether v meets c. NaN meets nothing.
func (c Check) OK(v float64) bool {
	if math.IsNaN(v) {
		return false
	}
	switch c.op {
	case "<=":
		return v <= c.hi
	case ">=":
		return v >= c.lo
	default:
		return v >= c.lo && v <= c.hi
	}
}

// Unit builds the unit string for testing.B.ReportMetric. It panics on a
// name or unit holding '@' or white space, which would make the line
// unparsable (a programming error, found by the first run).
func Unit(name, unit string, checks ...Check) string {
	for _, s := range []string{name, unit} {
		if s == "" || strings.ContainsAny(s, "@ \t\n") {
			panic(fmt.Sprintf("benchtarget: bad metric name or unit %q", s))
		}
	}
	parts := []string{name, unit}
	for _, c := range checks {
		parts = append(parts, c.String())
	}
	return strings.Join(parts, "@")
}

// Report is b.ReportMetric(v, Unit(name, unit, checks...)).
func Report(b *testing.B, v float64, name, unit string, checks ...Check) {
	b.Helper()
	b.ReportMetric(v, Unit(name, unit, checks...))
}

// Metric is one figure parsed back from a benchmark's output.
type Metric struct {
	Name, Unit string
	Value      float64
	Checks     []Check
}

// ParseUnit splits a unit string made by Unit. ok is false for a unit
// without '@' (ns/op, B/op, a plain custom unit), which is not a patchring
// figure.
func ParseUnit(s string) (name, unit string, checks []Check, ok bool, err error) {
	parts := strings.Split(s, "@")
	if len(parts) < 2 {
		return "", "", nil, false, nil
	}
	name, unit = parts[0], parts[1]
	if name == "" || unit == "" {
		return "", "", nil, true, fmt.Errorf("parse metric %q: empty name or unit", s)
	}
	for _, p := range parts[2:] {
		c, err := parseCheck(p)
		if err != nil {
			return "", "", nil, true, fmt.Errorf("parse metric %q: %w", s, err)
		}
		checks = append(checks, c)
	}
	return name, unit, checks, true, nil
}

func parseCheck(p string) (Check, error) {
	parse := func(s string) (float64, error) {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(v) {
			return 0, fmt.Errorf("check %q: bad number %q", p, s)
		}
		return v, nil
	}
	switch {
	case strings.HasPrefix(p, "<="):
		v, err := parse(p[2:])
		return AtMost(v), err
	case strings.HasPrefix(p, ">="):
		v, err := parse(p[2:])
		return AtLeast(v), err
	case strings.HasPrefix(p, "in:"):
		lo, hi, found := strings.Cut(p[3:], ":")
		if !found {
			return Check{}, fmt.Errorf("check %q: want in:LO:HI", p)
		}
		l, err := parse(lo)
		if err != nil {
			return Check{}, err
		}
		h, err := parse(hi)
		if err != nil {
			return Check{}, err
		}
		if l > h {
			return Check{}, fmt.Errorf("check %q: empty range", p)
		}
		return Plausible(l, h), nil
	default:
		return Check{}, fmt.Errorf("unknown check %q (want <=X, >=X or in:LO:HI)", p)
	}
}

// ParseLine returns the patchring figures on one line of `go test -bench`
// output ("BenchmarkX-2  1  123 ns/op  1.04 name@unit@<=1.05 ..."); lines
// that are not benchmark results give none.
func ParseLine(line string) ([]Metric, error) {
	f := strings.Fields(line)
	if len(f) < 2 || !strings.HasPrefix(f[0], "Benchmark") {
		return nil, nil
	}
	if _, err := strconv.ParseInt(f[1], 10, 64); err != nil {
		return nil, nil // a log line starting with the benchmark's name
	}
	var ms []Metric
	for i := 2; i+1 < len(f); i += 2 {
		name, unit, checks, ok, err := ParseUnit(f[i+1])
		if err != nil {
			return ms, fmt.Errorf("%s: %w", f[0], err)
		}
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return ms, fmt.Errorf("%s: metric %s: bad value %q", f[0], name, f[i])
		}
		ms = append(ms, Metric{Name: name, Unit: unit, Value: v, Checks: checks})
	}
	return ms, nil
}

// Verdict is the line `make bench` prints for m, and whether m passed:
// "name value unit" for a figure without checks, with " target ok" or
// " target FAIL" appended for a goal, and " FAIL implausible, outside
// [lo, hi]" for a figure outside its plausible range.
func (m Metric) Verdict() (string, bool) {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s", m.Name, num(m.Value), m.Unit)
	pass := true
	for _, c := range m.Checks {
		if !c.Goal() {
			continue
		}
		state := "ok"
		if !c.OK(m.Value) {
			state, pass = "FAIL", false
		}
		fmt.Fprintf(&b, " %s %s", c, state)
	}
	for _, c := range m.Checks {
		if !c.Goal() && !c.OK(m.Value) {
			fmt.Fprintf(&b, " FAIL implausible, outside [%s, %s]", num(c.lo), num(c.hi))
			pass = false
		}
	}
	return b.String(), pass
}
