package inventory

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

const notOnMac = "not collected on macOS"

func (s *scan) hostname() string {
	h, _ := os.Hostname()
	return h
}

// profiler runs system_profiler -json for the given data types.
func profiler(ctx context.Context, types ...string) (*spReport, *Unavailable) {
	cmd := exec.CommandContext(ctx, "system_profiler", append([]string{"-json"}, types...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, &Unavailable{Source: "system_profiler " + strings.Join(types, " "), Reason: strings.TrimSpace(err.Error() + " " + stderr.String())}
	}
	r, err := parseSystemProfiler(out)
	if err != nil {
		return nil, &Unavailable{Source: "system_profiler " + strings.Join(types, " "), Reason: err.Error()}
	}
	return r, nil
}

func (s *scan) osInfo(ctx context.Context) *OSInfo {
	r, u := profiler(ctx, "SPSoftwareDataType")
	if u != nil {
		return &OSInfo{Family: "darwin", Unavailable: []Unavailable{*u}}
	}
	o := r.osInfo()
	var un unix.Utsname
	if err := unix.Uname(&un); err == nil {
		o.Architecture = unix.ByteSliceToString(un.Machine[:])
		o.KernelVersion = unix.ByteSliceToString(un.Version[:])
	}
	if tv, err := unix.SysctlTimeval("kern.boottime"); err == nil {
		o.BootTime = timeFromTimeval(tv)
	}
	if target, err := os.Readlink("/etc/localtime"); err == nil {
		if _, tz, ok := strings.Cut(target, "zoneinfo/"); ok {
			o.TimeZone = tz
		}
	}
	return o
}

func (s *scan) hardware(ctx context.Context) *Hardware {
	r, u := profiler(ctx, "SPHardwareDataType")
	if u != nil {
		return &Hardware{Unavailable: []Unavailable{*u}}
	}
	h := r.hardware()
	if n, err := unix.SysctlUint32("hw.logicalcpu"); err == nil {
		h.CPU.Threads = int(n)
	}
	if n, err := unix.SysctlUint32("hw.physicalcpu"); err == nil && h.CPU.Cores == 0 {
		h.CPU.Cores = int(n)
	}
	var st unix.Statfs_t
	if err := unix.Statfs("/", &st); err == nil {
		bs := uint64(st.Bsize)
		h.Filesystems = append(h.Filesystems, Filesystem{
			Mountpoint: "/", Device: unix.ByteSliceToString(st.Mntfromname[:]), Type: unix.ByteSliceToString(st.Fstypename[:]),
			SizeBytes: st.Blocks * bs, FreeBytes: st.Bfree * bs, AvailBytes: uint64(st.Bavail) * bs, Inodes: st.Files, FreeInodes: st.Ffree,
		})
	}
	h.Unavailable = append(h.Unavailable, Unavailable{Source: "disks", Reason: notOnMac})
	return h
}

func (s *scan) defaultRoutes(list *[]Unavailable) []Route {
	*list = append(*list, Unavailable{Source: "default routes", Reason: notOnMac})
	return nil
}

// readPackages lists installer receipts (pkgutil) and applications
// (system_profiler SPApplicationsDataType).
func (s *scan) readPackages(ctx context.Context) *Packages {
	p := &Packages{Managers: []string{}, Items: []Package{}}
	out, err := exec.CommandContext(ctx, "pkgutil", "--pkgs").Output()
	if err != nil {
		p.Unavailable = append(p.Unavailable, Unavailable{Source: "pkgutil --pkgs", Reason: err.Error()})
	} else {
		ids := parsePkgutilPkgs(out)
		items := make([]Package, len(ids))
		failed := make([]error, len(ids))
		var wg sync.WaitGroup
		const workers = 4
		for w := range workers {
			wg.Go(func() {
				for i := w; i < len(ids); i += workers {
					info, err := exec.CommandContext(ctx, "pkgutil", "--pkg-info", ids[i]).Output()
					if err == nil {
						items[i], err = parsePkgInfo(info)
					}
					failed[i] = err
				}
			})
		}
		wg.Wait()
		for i := range ids {
			if failed[i] != nil {
				p.Unavailable = append(p.Unavailable, Unavailable{Source: "pkgutil --pkg-info " + ids[i], Reason: failed[i].Error()})
				continue
			}
			p.Items = append(p.Items, items[i])
		}
		p.Managers = append(p.Managers, "pkgutil")
	}
	if r, u := profiler(ctx, "SPApplicationsDataType"); u != nil {
		unavail(&p.Unavailable, u)
	} else {
		p.Managers = append(p.Managers, "applications")
		p.Items = append(p.Items, r.applications()...)
	}
	p.Counts = counts(p.Items)
	return p
}

func (s *scan) rebootFlags(ctx context.Context, r *Reboot) {
	r.Unavailable = append(r.Unavailable, Unavailable{Source: "reboot flags", Reason: notOnMac})
}

func (s *scan) containerKind() string { return "none" }

func (s *scan) restart(ctx context.Context) *Restart {
	return &Restart{Unavailable: []Unavailable{{Source: "restart", Reason: notOnMac}}}
}

func (s *scan) security(ctx context.Context) *Security {
	return &Security{ASLR: -1, Unavailable: []Unavailable{{Source: "security", Reason: notOnMac}}}
}
