// Package targetname holds the one rule for TUF target names, shared by the
// admin's repository tools (policy/tufrepo, which refuse to add a target
// with a bad name) and the agent's verifying client (policy/trust, which
// refuses to write one to disk): a name accepted here is a relative path
// that stays inside the directory it is joined to, on every OS.
package targetname

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// MaxLen is the longest accepted name, in bytes.
const MaxLen = 255

// ErrInvalid is wrapped by every error Check returns.
var ErrInvalid = errors.New("invalid target name")

var segmentRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._+~-]*$`)

// Check reports whether name is a portable relative target path:
// slash-separated segments of letters, digits and ._+~- (not starting with
// a dot or dash, not ending with a dot), 1 to MaxLen bytes.
func Check(name string) error {
	if name == "" || len(name) > MaxLen {
		return fmt.Errorf("%w %q: must be 1 to %d bytes", ErrInvalid, name, MaxLen)
	}
	for _, seg := range strings.Split(name, "/") {
		if !segmentRE.MatchString(seg) || strings.HasSuffix(seg, ".") {
			return fmt.Errorf("%w %q: segment %q: use letters, digits and ._+~- (not starting with . or -, not ending with .)", ErrInvalid, name, seg)
		}
	}
	return nil
}
