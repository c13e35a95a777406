package vercmp

import (
	"fmt"
	"math"
	"strings"
)

// DebVersion is a parsed Debian version: [epoch:]upstream[-revision].
type DebVersion struct {
	Epoch    int
	Upstream string
	Revision string // empty when the version has no revision
}

// String returns the version in canonical form; the epoch is shown only
// when it is not zero.
func (v DebVersion) String() string {
	var b strings.Builder
	if v.Epoch != 0 {
		fmt.Fprintf(&b, "%d:", v.Epoch)
	}
	b.WriteString(v.Upstream)
	if v.Revision != "" {
		b.WriteByte('-')
		b.WriteString(v.Revision)
	}
	return b.String()
}

// SyntaxError reports a version string that does not follow the scheme's
// syntax. Warning is true for the problems dpkg only warns about (an
// upstream version not starting with a digit, a character outside the
// allowed set): dpkg --compare-versions still compares such versions, and
// ParseDeb then returns the parsed version together with the error.
type SyntaxError struct {
	Scheme  string // "deb" or "rpm"
	Version string
	Reason  string
	Warning bool
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("%s version %q: %s", e.Scheme, e.Version, e.Reason)
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isAlpha(c byte) bool { return (c|0x20) >= 'a' && (c|0x20) <= 'z' }

// isCSpace reports C's isspace in the C locale, which strtol skips.
func isCSpace(c byte) bool { return c == ' ' || (c >= '\t' && c <= '\r') }

// ParseDeb parses a Debian version string with the rules of dpkg's
// parseversion: leading and trailing blanks are trimmed, embedded blanks,
// an empty or non-numeric or negative or too big epoch, nothing after the
// colon, an empty revision and an empty upstream version are errors.
// An upstream version that does not start with a digit and characters
// outside [A-Za-z0-9.+~-:] (upstream) or [A-Za-z0-9.+~] (revision) give a
// *SyntaxError with Warning set, returned together with the parsed version.
func ParseDeb(s string) (DebVersion, error) {
	bad := func(reason string) (DebVersion, error) {
		return DebVersion{}, &SyntaxError{Scheme: "deb", Version: s, Reason: reason}
	}
	str := s
	for str != "" && isBlank(str[0]) {
		str = str[1:]
	}
	// A NUL ends a C string; dpkg can never see one, so refuse it outright.
	if strings.IndexByte(str, 0) >= 0 {
		return bad("version string contains a NUL byte")
	}
	if str == "" {
		return bad("version string is empty")
	}
	end := 0
	for end < len(str) && !isBlank(str[end]) {
		end++
	}
	for p := end; p < len(str); p++ {
		if !isBlank(str[p]) {
			return bad("version string has embedded spaces")
		}
	}
	var v DebVersion
	if colon := strings.IndexByte(str, ':'); colon >= 0 {
		epoch, eend, rangeErr := strtol(str)
		switch {
		case eend == 0:
			return bad("epoch in version is empty")
		case eend != colon:
			return bad("epoch in version is not number")
		case epoch < 0:
			return bad("epoch in version is negative")
		case rangeErr || epoch > math.MaxInt32:
			return bad("epoch in version is too big")
		case colon+1 >= len(str):
			return bad("nothing after colon in version number")
		}
		v.Epoch = int(epoch)
		str = str[colon+1 : end]
	} else {
		str = str[:end]
	}
	if h := strings.LastIndexByte(str, '-'); h >= 0 {
		v.Upstream, v.Revision = str[:h], str[h+1:]
		if v.Revision == "" {
			return bad("revision number is empty")
		}
	} else {
		v.Upstream = str
	}
	if v.Upstream == "" {
		return bad("version number is empty")
	}
	warn := func(reason string) (DebVersion, error) {
		return v, &SyntaxError{Scheme: "deb", Version: s, Reason: reason, Warning: true}
	}
	if !isDigit(v.Upstream[0]) {
		return warn("version number does not start with digit")
	}
	for i := 1; i < len(v.Upstream); i++ {
		c := v.Upstream[i]
		if !isDigit(c) && !isAlpha(c) && strings.IndexByte(".-+~:", c) < 0 {
			return warn("invalid character in version number")
		}
	}
	for i := 0; i < len(v.Revision); i++ {
		c := v.Revision[i]
		if !isDigit(c) && !isAlpha(c) && strings.IndexByte(".+~", c) < 0 {
			return warn("invalid character in revision number")
		}
	}
	return v, nil
}

// strtol mimics C's strtol(s, &end, 10) far enough for epoch parsing: it
// skips leading white space, takes an optional sign and decimal digits and
// returns the value, the index just past the number (0 when there is no
// number) and whether the value overflowed a 64-bit long.
func strtol(s string) (val int64, end int, overflow bool) {
	i := 0
	for i < len(s) && isCSpace(s[i]) {
		i++
	}
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	start := i
	var u uint64
	for i < len(s) && isDigit(s[i]) {
		if u > (math.MaxUint64-9)/10 {
			overflow = true
		} else {
			u = u*10 + uint64(s[i]-'0')
		}
		i++
	}
	if i == start {
		return 0, 0, false
	}
	if neg {
		if u > 1<<63 || overflow {
			return math.MinInt64, i, true
		}
		return -int64(u), i, false
	}
	if u > math.MaxInt64 || overflow {
		return math.MaxInt64, i, true
	}
	return int64(u), i, false
}

// Deb compares two Debian version strings the way dpkg --compare-versions
// does and returns -1, 0 or +1. It returns an error if either string is not
// a valid version (including the cases dpkg only warns about).
func Deb(a, b string) (int, error) {
	va, err := ParseDeb(a)
	if err != nil {
		return 0, err
	}
	vb, err := ParseDeb(b)
	if err != nil {
		return 0, err
	}
	return CompareDeb(va, vb), nil
}

// CompareDeb orders two parsed Debian versions: epoch, then upstream, then
// revision, each with dpkg's verrevcmp. It returns -1, 0 or +1.
func CompareDeb(a, b DebVersion) int {
	switch {
	case a.Epoch > b.Epoch:
		return 1
	case a.Epoch < b.Epoch:
		return -1
	}
	if rc := verrevcmp(a.Upstream, b.Upstream); rc != 0 {
		return rc
	}
	return verrevcmp(a.Revision, b.Revision)
}

// order is dpkg's character weight: digits 0 (they are compared as
// numbers), letters their ASCII value, '~' below everything including the
// end of the string, every other character after all letters. Bytes above
// 0x7f weigh as dpkg's signed char does on the platforms it ships for.
func order(c int) int {
	switch {
	case c < 0: // end of string
		return 0
	case isDigit(byte(c)):
		return 0
	case isAlpha(byte(c)):
		return c
	case c == '~':
		return -1
	case c >= 0x80:
		return int(int8(c)) + 256
	default:
		return c + 256
	}
}

func at(s string, i int) int {
	if i < len(s) {
		return int(s[i])
	}
	return -1
}

// verrevcmp is dpkg's comparison of an upstream version or a revision.
func verrevcmp(a, b string) int {
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		firstDiff := 0
		for (i < len(a) && !isDigit(a[i])) || (j < len(b) && !isDigit(b[j])) {
			ac, bc := order(at(a, i)), order(at(b, j))
			if ac != bc {
				return sign(ac - bc)
			}
			i++
			j++
		}
		for i < len(a) && a[i] == '0' {
			i++
		}
		for j < len(b) && b[j] == '0' {
			j++
		}
		for i < len(a) && j < len(b) && isDigit(a[i]) && isDigit(b[j]) {
			if firstDiff == 0 {
				firstDiff = int(a[i]) - int(b[j])
			}
			i++
			j++
		}
		if i < len(a) && isDigit(a[i]) {
			return 1
		}
		if j < len(b) && isDigit(b[j]) {
			return -1
		}
		if firstDiff != 0 {
			return sign(firstDiff)
		}
	}
	return 0
}

func sign(x int) int {
	switch {
	case x < 0:
		return -1
	case x > 0:
		return 1
	}
	return 0
}
