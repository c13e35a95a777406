package inventory

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

func (s *scan) hostname() string {
	if data, u := s.read("/proc/sys/kernel/hostname"); u == nil {
		return strings.TrimSpace(string(data))
	}
	if !s.live() {
		return ""
	}
	h, _ := os.Hostname()
	return h
}

// osInfo reads os-release, the kernel's identity from /proc/sys/kernel
// (what uname reports), boot time, uptime and the time zone.
func (s *scan) osInfo(ctx context.Context) *OSInfo {
	o := &OSInfo{Family: "linux"}
	rel, u := s.read("/etc/os-release")
	if u != nil {
		var u2 *Unavailable
		if rel, u2 = s.read("/usr/lib/os-release"); u2 != nil {
			unavail(&o.Unavailable, u)
			unavail(&o.Unavailable, u2)
		}
	}
	if rel != nil {
		f := parseOSRelease(rel)
		o.Release = f
		o.ID, o.Name, o.PrettyName = f["ID"], f["NAME"], f["PRETTY_NAME"]
		o.Version, o.VersionID, o.VersionCodename = f["VERSION"], f["VERSION_ID"], f["VERSION_CODENAME"]
		o.IDLike = strings.Fields(f["ID_LIKE"])
	}
	for _, k := range []struct {
		file string
		dst  *string
	}{
		{"/proc/sys/kernel/ostype", &o.KernelName},
		{"/proc/sys/kernel/osrelease", &o.KernelRelease},
		{"/proc/sys/kernel/version", &o.KernelVersion},
		{"/proc/sys/kernel/arch", &o.Architecture},
	} {
		data, u := s.read(k.file)
		if u != nil {
			unavail(&o.Unavailable, u)
			continue
		}
		*k.dst = strings.TrimSpace(string(data))
	}
	if data, u := s.read("/proc/uptime"); u != nil {
		unavail(&o.Unavailable, u)
	} else if f := strings.Fields(string(data)); len(f) > 0 {
		o.UptimeSeconds, _ = strconv.ParseFloat(f[0], 64)
	}
	if data, u := s.read("/proc/stat"); u != nil {
		unavail(&o.Unavailable, u)
	} else {
		for line := range strings.SplitSeq(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "btime "); ok {
				if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
					o.BootTime = time.Unix(n, 0).UTC()
				}
				break
			}
		}
	}
	o.TimeZone = s.timeZone(&o.Unavailable)
	return o
}

// timeZone reads /etc/timezone (Debian) or the /etc/localtime link.
func (s *scan) timeZone(list *[]Unavailable) string {
	if data, u := s.read("/etc/timezone"); u == nil {
		if tz := strings.TrimSpace(string(data)); tz != "" {
			return tz
		}
	}
	target, err := os.Readlink(s.path("/etc/localtime"))
	if err != nil {
		*list = append(*list, Unavailable{Source: "/etc/localtime", Reason: reason(err)})
		return ""
	}
	target = filepath.ToSlash(target)
	if _, tz, ok := strings.Cut(target, "zoneinfo/"); ok {
		return strings.TrimPrefix(tz, "posix/")
	}
	*list = append(*list, Unavailable{Source: "/etc/localtime", Reason: "links to " + target + ", not into a zoneinfo directory"})
	return ""
}
