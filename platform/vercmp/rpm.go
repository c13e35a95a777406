package vercmp

import "strings"

// RPMVersion is a parsed RPM [epoch:]version[-release]. Epoch and Release
// are empty when the string has none.
type RPMVersion struct {
	Epoch   string
	Version string
	Release string
}

// String returns the version as rpm prints an EVR.
func (v RPMVersion) String() string {
	s := v.Version
	if v.Epoch != "" {
		s = v.Epoch + ":" + s
	}
	if v.Release != "" {
		s += "-" + v.Release
	}
	return s
}

// rpmAllowed reports the characters rpm accepts in a Version or Release
// tag besides letters and digits ("._+~^"), plus '_' which real
// distribution releases use (el9_2).
func rpmAllowed(c byte) bool {
	return isDigit(c) || isAlpha(c) || strings.IndexByte("._+~^", c) >= 0
}

// ParseRPM splits an RPM EVR string the way rpm's rpmverParse does: an
// all-digit prefix ended by ':' is the epoch, the part after the last '-'
// is the release. It rejects what rpmbuild would never produce: an empty
// string, an empty epoch, version or release, more than one '-' or ':',
// and characters outside letters, digits and "._+~^".
func ParseRPM(s string) (RPMVersion, error) {
	bad := func(reason string) (RPMVersion, error) {
		return RPMVersion{}, &SyntaxError{Scheme: "rpm", Version: s, Reason: reason}
	}
	if s == "" {
		return bad("version string is empty")
	}
	var v RPMVersion
	rest := s
	if c := strings.IndexByte(s, ':'); c >= 0 {
		v.Epoch, rest = s[:c], s[c+1:]
		if v.Epoch == "" {
			return bad("epoch is empty")
		}
		for i := 0; i < len(v.Epoch); i++ {
			if !isDigit(v.Epoch[i]) {
				return bad("epoch is not a number")
			}
		}
		if strings.IndexByte(rest, ':') >= 0 {
			return bad("more than one ':'")
		}
	}
	v.Version = rest
	if h := strings.IndexByte(rest, '-'); h >= 0 {
		v.Version, v.Release = rest[:h], rest[h+1:]
		if strings.IndexByte(v.Release, '-') >= 0 {
			return bad("more than one '-' (version and release may not contain '-')")
		}
		if v.Release == "" {
			return bad("release is empty")
		}
	}
	if v.Version == "" {
		return bad("version is empty")
	}
	for _, part := range []string{v.Version, v.Release} {
		for i := 0; i < len(part); i++ {
			if !rpmAllowed(part[i]) {
				return bad("invalid character " + quoteByte(part[i]))
			}
		}
	}
	return v, nil
}

func quoteByte(c byte) string {
	const hex = "0123456789abcdef"
	if c >= 0x20 && c < 0x7f {
		return "'" + string(rune(c)) + "'"
	}
	return "0x" + string([]byte{hex[c>>4], hex[c&15]})
}

// RPM compares two RPM [epoch:]version[-release] strings as rpm 4.18's
// rpmver API (and its Lua rpm.vercmp) does: epoch (missing means 0), then
// version with rpmvercmp, then release with rpmvercmp; when only one of
// the two has a release, that one is newer. It returns -1, 0
// or +1, or an error if either string is invalid (see ParseRPM).
func RPM(a, b string) (int, error) {
	va, err := ParseRPM(a)
	if err != nil {
		return 0, err
	}
	vb, err := ParseRPM(b)
	if err != nil {
		return 0, err
	}
	return CompareRPM(va, vb), nil
}

// CompareRPM orders two parsed RPM versions like rpm 4.18's rpmverCmp.
func CompareRPM(a, b RPMVersion) int {
	ea, eb := a.Epoch, b.Epoch
	if ea == "" {
		ea = "0"
	}
	if eb == "" {
		eb = "0"
	}
	if rc := RPMSegment(ea, eb); rc != 0 {
		return rc
	}
	if rc := RPMSegment(a.Version, b.Version); rc != 0 {
		return rc
	}
	switch {
	case a.Release != "" && b.Release != "":
		return RPMSegment(a.Release, b.Release)
	case a.Release != "":
		return 1
	case b.Release != "":
		return -1
	}
	return 0
}

// RPMSegment is rpm's rpmvercmp: it compares one version or release string
// by alternating runs of digits and letters; separators only split runs,
// '~' sorts before everything (even the end), '^' after the end but before
// anything else. It returns -1, 0 or +1.
func RPMSegment(a, b string) int {
	if a == b {
		return 0
	}
	i, j := 0, 0
	sep := func(c byte) bool { return !isDigit(c) && !isAlpha(c) && c != '~' && c != '^' }
	for i < len(a) || j < len(b) {
		for i < len(a) && sep(a[i]) {
			i++
		}
		for j < len(b) && sep(b[j]) {
			j++
		}
		ca, cb := at(a, i), at(b, j)
		if ca == '~' || cb == '~' {
			if ca != '~' {
				return 1
			}
			if cb != '~' {
				return -1
			}
			i++
			j++
			continue
		}
		if ca == '^' || cb == '^' {
			if ca < 0 {
				return -1
			}
			if cb < 0 {
				return 1
			}
			if ca != '^' {
				return 1
			}
			if cb != '^' {
				return -1
			}
			i++
			j++
			continue
		}
		if ca < 0 || cb < 0 {
			break
		}
		si, sj := i, j
		isNum := isDigit(a[i])
		if isNum {
			for i < len(a) && isDigit(a[i]) {
				i++
			}
			for j < len(b) && isDigit(b[j]) {
				j++
			}
		} else {
			for i < len(a) && isAlpha(a[i]) {
				i++
			}
			for j < len(b) && isAlpha(b[j]) {
				j++
			}
		}
		if sj == j {
			// The segments are of different kinds: numbers are newer.
			if isNum {
				return 1
			}
			return -1
		}
		sa, sb := a[si:i], b[sj:j]
		if isNum {
			sa = strings.TrimLeft(sa, "0")
			sb = strings.TrimLeft(sb, "0")
			if len(sa) != len(sb) {
				if len(sa) > len(sb) {
					return 1
				}
				return -1
			}
		}
		if rc := strings.Compare(sa, sb); rc != 0 {
			return rc
		}
	}
	switch {
	case i >= len(a) && j >= len(b):
		return 0
	case i >= len(a):
		return -1
	}
	return 1
}
