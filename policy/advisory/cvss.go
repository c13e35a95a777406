package advisory

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Severity is the qualitative severity patchring reports and policies
// select on, in rising order.
type Severity string

// Severities, lowest first. Unknown sorts below Low: an advisory that
// says nothing is not treated as harmless, but not as urgent either.
const (
	SeverityUnknown  Severity = "unknown"
	SeverityNone     Severity = "none"
	SeverityLow      Severity = "low"
	SeverityMedium   Severity = "medium"
	SeverityHigh     Severity = "high"
	SeverityCritical Severity = "critical"
)

// Severities lists every severity, lowest first.
var Severities = []Severity{SeverityUnknown, SeverityNone, SeverityLow, SeverityMedium, SeverityHigh, SeverityCritical}

// Rank orders severities: higher is worse; an unknown word ranks 0.
func (s Severity) Rank() int {
	switch s {
	case SeverityNone:
		return 1
	case SeverityLow:
		return 2
	case SeverityMedium:
		return 3
	case SeverityHigh:
		return 4
	case SeverityCritical:
		return 5
	}
	return 0
}

// ParseSeverity reads a severity word ("critical", "HIGH", "moderate",
// Debian's urgencies "low"/"medium"/"high"/"unimportant").
func ParseSeverity(s string) (Severity, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "critical":
		return SeverityCritical, true
	case "high", "important":
		return SeverityHigh, true
	case "medium", "moderate":
		return SeverityMedium, true
	case "low", "negligible", "unimportant":
		return SeverityLow, true
	case "none":
		return SeverityNone, true
	}
	return SeverityUnknown, false
}

// SeverityOfScore maps a CVSS base score to its qualitative rating (the
// same bands in CVSS v3 and v4).
func SeverityOfScore(score float64) Severity {
	switch {
	case score >= 9:
		return SeverityCritical
	case score >= 7:
		return SeverityHigh
	case score >= 4:
		return SeverityMedium
	case score > 0:
		return SeverityLow
	}
	return SeverityNone
}

// CVSS3BaseScore computes the base score of a CVSS v3.0 or v3.1 vector
// ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H") as the specification's
// formulas do.
func CVSS3BaseScore(vector string) (float64, error) {
	parts := strings.Split(vector, "/")
	if len(parts) < 9 || (parts[0] != "CVSS:3.0" && parts[0] != "CVSS:3.1") {
		return 0, fmt.Errorf("cvss %q: not a CVSS:3.x vector", vector)
	}
	m := make(map[string]string, 8)
	for _, p := range parts[1:] {
		k, v, ok := strings.Cut(p, ":")
		if !ok {
			return 0, fmt.Errorf("cvss %q: bad metric %q", vector, p)
		}
		if _, dup := m[k]; dup {
			return 0, fmt.Errorf("cvss %q: metric %s twice", vector, k)
		}
		m[k] = v
	}
	weights := map[string]map[string]float64{
		"AV": {"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2},
		"AC": {"L": 0.77, "H": 0.44},
		"UI": {"N": 0.85, "R": 0.62},
		"C":  {"H": 0.56, "L": 0.22, "N": 0},
		"I":  {"H": 0.56, "L": 0.22, "N": 0},
		"A":  {"H": 0.56, "L": 0.22, "N": 0},
	}
	w := map[string]float64{}
	for k, tbl := range weights {
		v, ok := tbl[m[k]]
		if !ok {
			return 0, fmt.Errorf("cvss %q: metric %s missing or invalid", vector, k)
		}
		w[k] = v
	}
	scope := m["S"]
	if scope != "U" && scope != "C" {
		return 0, fmt.Errorf("cvss %q: metric S missing or invalid", vector)
	}
	var pr float64
	switch m["PR"] {
	case "N":
		pr = 0.85
	case "L":
		pr = 0.62
		if scope == "C" {
			pr = 0.68
		}
	case "H":
		pr = 0.27
		if scope == "C" {
			pr = 0.5
		}
	default:
		return 0, fmt.Errorf("cvss %q: metric PR missing or invalid", vector)
	}
	iss := 1 - (1-w["C"])*(1-w["I"])*(1-w["A"])
	var impact float64
	if scope == "U" {
		impact = 6.42 * iss
	} else {
		impact = 7.52*(iss-0.029) - 3.25*math.Pow(iss-0.02, 15)
	}
	expl := 8.22 * w["AV"] * w["AC"] * pr * w["UI"]
	if impact <= 0 {
		return 0, nil
	}
	if scope == "U" {
		return roundUp(math.Min(impact+expl, 10)), nil
	}
	return roundUp(math.Min(1.08*(impact+expl), 10)), nil
}

// roundUp is CVSS v3.1's Roundup: the smallest number with one decimal
// that is >= x, computed without floating-point surprises.
func roundUp(x float64) float64 {
	i := int64(math.Round(x * 100000))
	if i%10000 == 0 {
		return float64(i) / 100000
	}
	return float64(i/10000+1) / 10
}

// scoreOf returns the CVSS score and severity a list of OSV severities
// gives: the highest CVSS v3 base score, or a bare numeric score, or a
// severity word (Ubuntu's type). ok is false when none is usable.
func scoreOf(list []OSVSeverity) (score float64, sev Severity, vector string, ok bool) {
	for _, s := range list {
		switch s.Type {
		case "CVSS_V3":
			v, err := CVSS3BaseScore(s.Score)
			if err != nil {
				continue
			}
			if !ok || v > score {
				score, vector, ok = v, s.Score, true
			}
		default:
			if f, err := strconv.ParseFloat(s.Score, 64); err == nil && f >= 0 && f <= 10 {
				if !ok || f > score {
					score, vector, ok = f, "", true
				}
			}
		}
	}
	if ok {
		return score, SeverityOfScore(score), vector, true
	}
	for _, s := range list {
		if w, good := ParseSeverity(s.Score); good {
			return 0, w, "", true
		}
	}
	return 0, SeverityUnknown, "", false
}
