package inventory

import (
	"context"
	"os"
	"strings"
)

// rebootFlags reads Debian's /var/run/reboot-required and its .pkgs list.
func (s *scan) rebootFlags(ctx context.Context, r *Reboot) {
	const flag = "/var/run/reboot-required"
	fi, err := os.Stat(s.path(flag))
	if err != nil {
		if !os.IsNotExist(err) {
			r.Unavailable = append(r.Unavailable, Unavailable{Source: flag, Reason: reason(err)})
		}
		return
	}
	r.Required = true
	r.Since = fi.ModTime().UTC()
	r.Reasons = append(r.Reasons, flag+" exists")
	if data, u := s.read(flag + ".pkgs"); u == nil {
		seen := map[string]bool{}
		for p := range strings.FieldsSeq(string(data)) {
			if !seen[p] {
				seen[p] = true
				r.Packages = append(r.Packages, p)
			}
		}
	}
}

// containerKind is the container the scanned system runs in, "none" if
// none is detected.
func (s *scan) containerKind() string {
	return s.virtualization(DMI{}, false).Container
}
