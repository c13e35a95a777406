package inventory

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"

	"github.com/patchring/patchring/platform/dpkgstatus"
)

// readPackages reads the dpkg database directly and asks rpm (when rpm and
// an rpm database exist), then finds the installed kernels.
func (s *scan) readPackages(ctx context.Context) *Packages {
	p := &Packages{Managers: []string{}, Items: []Package{}}
	status := s.opts.DpkgStatus
	if status == "" {
		status = s.path("/var/lib/dpkg/status")
	}
	if pkgs, err := dpkgstatus.ReadDB(status); err != nil {
		p.Unavailable = append(p.Unavailable, Unavailable{Source: "dpkg " + status, Reason: reason(err)})
	} else {
		p.Managers = append(p.Managers, "dpkg")
		p.Items = append(p.Items, fromDpkg(pkgs)...)
	}
	if items, u := s.rpmPackages(ctx); u != nil {
		unavail(&p.Unavailable, u)
	} else {
		p.Managers = append(p.Managers, "rpm")
		p.Items = append(p.Items, items...)
	}
	p.Counts = counts(p.Items)
	running, _ := s.readTrim("/proc/sys/kernel/osrelease")
	p.Kernels = kernels(p.Items, running)
	return p
}

// rpmPackages runs rpm -qa when the system has an rpm database.
func (s *scan) rpmPackages(ctx context.Context) ([]Package, *Unavailable) {
	if !s.exists("/var/lib/rpm") && !s.exists("/usr/lib/sysimage/rpm") {
		return nil, &Unavailable{Source: "rpm", Reason: "no rpm database (/var/lib/rpm, /usr/lib/sysimage/rpm)"}
	}
	// An empty database directory (rpm installed on a dpkg system) has
	// nothing to say either.
	if s.emptyDir("/var/lib/rpm") && !s.exists("/usr/lib/sysimage/rpm") {
		return nil, &Unavailable{Source: "rpm", Reason: "rpm database /var/lib/rpm is empty"}
	}
	bin := s.opts.RPM
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("rpm"); err != nil {
			return nil, &Unavailable{Source: "rpm", Reason: "rpm database present but the rpm program is not installed"}
		}
	}
	// The database path is given, not left to rpm's macros: Debian's rpm
	// defaults to ~/.rpmdb, which is not the system's database.
	dbpath := "/var/lib/rpm"
	if s.exists("/usr/lib/sysimage/rpm") && !s.emptyDir("/usr/lib/sysimage/rpm") {
		dbpath = "/usr/lib/sysimage/rpm"
	}
	args := []string{"-qa", "--queryformat", rpmQueryFormat}
	if !s.live() {
		args = append(args, "--root", s.root)
	}
	args = append(args, "--dbpath", dbpath)
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := err.Error()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			msg += ": " + strings.TrimSpace(stderr.String())
		}
		return nil, &Unavailable{Source: "rpm -qa", Reason: msg}
	}
	items, err := parseRPMQuery(out)
	if err != nil {
		return nil, &Unavailable{Source: "rpm -qa", Reason: err.Error()}
	}
	return items, nil
}

func (s *scan) emptyDir(p string) bool {
	entries, err := os.ReadDir(s.path(p))
	return err == nil && len(entries) == 0
}
