package inventory

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// Options steer Collect. The zero value scans the running system.
type Options struct {
	// Root is the filesystem root the collectors read below: "/" (or
	// empty) for the running system, a directory holding a fake or
	// mounted system tree otherwise. Facts that only the running system's
	// kernel can tell (network interface addresses, filesystem sizes)
	// come from the running system or are marked unavailable.
	Root string
	// DpkgStatus is the dpkg status file; empty means
	// <Root>/var/lib/dpkg/status.
	DpkgStatus string
	// Sections to collect; empty means all.
	Sections []Section
	// RPM is the rpm program; empty looks "rpm" up in PATH. Root other
	// than "/" is passed to it as --root.
	RPM string
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// ErrUnknownSection is returned by Collect for a section name it does not
// know.
var ErrUnknownSection = errors.New("unknown inventory section")

// ParseSection checks a section name given by a user.
func ParseSection(name string) (Section, error) {
	s := Section(name)
	if !slices.Contains(AllSections, s) {
		return "", fmt.Errorf("%w %q (known: os, hardware, network, packages, reboot, restart, security)", ErrUnknownSection, name)
	}
	return s, nil
}

// Collect takes a snapshot of the sections opts asks for, reading
// independent sections concurrently. A source that is missing or
// unreadable is recorded in its section's Unavailable list; Collect itself
// fails only for bad options or a cancelled ctx.
func Collect(ctx context.Context, opts Options) (*Snapshot, error) {
	sections := opts.Sections
	if len(sections) == 0 {
		sections = AllSections
	}
	for _, sec := range sections {
		if _, err := ParseSection(string(sec)); err != nil {
			return nil, fmt.Errorf("collect inventory: %w", err)
		}
	}
	s := newScan(opts)
	start := time.Now()
	snap := &Snapshot{Schema: SchemaVersion, TakenAt: s.now().UTC()}
	var wg sync.WaitGroup
	wg.Go(func() { snap.Hostname = s.hostname() })
	for _, sec := range sections {
		wg.Go(func() {
			switch sec {
			case SectionOS:
				snap.OS = s.osInfo(ctx)
			case SectionHardware:
				snap.Hardware = s.hardware(ctx)
			case SectionNetwork:
				snap.Network = s.network(ctx)
			case SectionPackages:
				snap.Packages = s.packages(ctx)
			case SectionReboot:
				snap.Reboot = s.reboot(ctx)
			case SectionRestart:
				snap.Restart = s.restart(ctx)
			case SectionSecurity:
				snap.Security = s.security(ctx)
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("collect inventory: %w", err)
	}
	snap.ScanMS = float64(time.Since(start).Microseconds()) / 1000
	return snap, nil
}

// scan is the state of one Collect call, shared by its section
// collectors.
type scan struct {
	opts Options
	root string
	now  func() time.Time
	// pkgs reads the package databases once for the packages and reboot
	// sections.
	pkgs func(ctx context.Context) *Packages
}

func newScan(opts Options) *scan {
	s := &scan{opts: opts, root: opts.Root, now: opts.Now}
	if s.root == "" {
		s.root = "/"
	}
	if s.now == nil {
		s.now = time.Now
	}
	var once sync.Once
	var result *Packages
	s.pkgs = func(ctx context.Context) *Packages {
		once.Do(func() { result = s.readPackages(ctx) })
		return result
	}
	return s
}

// live reports whether the scan looks at the running system.
func (s *scan) live() bool { return filepath.Clean(s.root) == "/" }

// path maps an absolute path of the scanned system to a path on this one.
func (s *scan) path(p string) string {
	if s.live() {
		return p
	}
	return filepath.Join(s.root, p)
}

// read reads a file of the scanned system; a failure comes back as the
// Unavailable entry to record.
func (s *scan) read(p string) ([]byte, *Unavailable) {
	data, err := os.ReadFile(s.path(p))
	if err != nil {
		return nil, &Unavailable{Source: p, Reason: reason(err)}
	}
	return data, nil
}

// reason turns a read error into the words a user reads.
func reason(err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "not present"
	case errors.Is(err, fs.ErrPermission):
		return "permission denied (needs root)"
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// unavail appends u to list when it is not nil.
func unavail(list *[]Unavailable, u *Unavailable) {
	if u != nil {
		*list = append(*list, *u)
	}
}

// packages builds the packages section.
func (s *scan) packages(ctx context.Context) *Packages {
	p := *s.pkgs(ctx)
	return &p
}
