package inventory

// Parsers of Linux file formats. They are portable (no build tag) so the
// fixtures under testdata are tested on every OS; only the collectors
// that read the real files are Linux-only.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// parseOSRelease reads an os-release file (os-release(5)): KEY=value lines,
// values optionally in single or double quotes, backslash escapes in double
// quotes; comments and lines that are not assignments are skipped, as
// systemd does.
func parseOSRelease(data []byte) map[string]string {
	out := map[string]string{}
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		l := strings.TrimSpace(string(line))
		if l == "" || l[0] == '#' {
			continue
		}
		key, val, ok := strings.Cut(l, "=")
		if !ok || key == "" || strings.ContainsAny(key, " \t\"'") {
			continue
		}
		out[key] = unquoteShell(val)
	}
	return out
}

// unquoteShell undoes the shell quoting os-release allows.
func unquoteShell(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '"':
			for i++; i < len(v) && v[i] != '"'; i++ {
				if v[i] == '\\' && i+1 < len(v) && strings.IndexByte("\"\\$`", v[i+1]) >= 0 {
					i++
				}
				b.WriteByte(v[i])
			}
		case '\'':
			for i++; i < len(v) && v[i] != '\''; i++ {
				b.WriteByte(v[i])
			}
		case '\\':
			if i+1 < len(v) {
				i++
				b.WriteByte(v[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// cpuInfo is what /proc/cpuinfo tells beyond the CPU section.
type cpuInfo struct {
	CPU        CPU
	Hypervisor bool // the "hypervisor" CPU flag
}

// parseCPUInfo counts logical CPUs, sockets (distinct physical ids) and
// cores (distinct physical id + core id pairs) in /proc/cpuinfo. Without
// topology fields (some VMs, ARM) every logical CPU counts as a core of one
// socket.
func parseCPUInfo(data []byte) cpuInfo {
	var ci cpuInfo
	sockets := map[string]bool{}
	cores := map[string]bool{}
	phys := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		switch key {
		case "processor":
			ci.CPU.Threads++
			phys = ""
		case "model name", "Model Name":
			if ci.CPU.Model == "" {
				ci.CPU.Model = val
			}
		case "Model", "Hardware", "cpu model":
			if ci.CPU.Model == "" && val != "" {
				ci.CPU.Model = val
			}
		case "vendor_id", "CPU implementer":
			if ci.CPU.Vendor == "" {
				ci.CPU.Vendor = val
			}
		case "cpu MHz":
			if ci.CPU.MHz == 0 {
				ci.CPU.MHz, _ = strconv.ParseFloat(val, 64)
			}
		case "physical id":
			phys = val
			sockets[val] = true
		case "core id":
			cores[phys+"/"+val] = true
		case "flags", "Features":
			for f := range strings.FieldsSeq(val) {
				if f == "hypervisor" {
					ci.Hypervisor = true
				}
			}
		}
	}
	ci.CPU.Sockets, ci.CPU.Cores = len(sockets), len(cores)
	if ci.CPU.Sockets == 0 && ci.CPU.Threads > 0 {
		ci.CPU.Sockets = 1
	}
	if ci.CPU.Cores == 0 {
		ci.CPU.Cores = ci.CPU.Threads
	}
	return ci
}

// parseMeminfo reads /proc/meminfo (values in kB).
func parseMeminfo(data []byte) Memory {
	var m Memory
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		key, rest, ok := strings.Cut(string(line), ":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			continue
		}
		if len(f) > 1 && f[1] == "kB" {
			n *= 1024
		}
		switch key {
		case "MemTotal":
			m.TotalBytes = n
		case "MemAvailable":
			m.AvailableBytes = n
		case "SwapTotal":
			m.SwapTotalBytes = n
		case "SwapFree":
			m.SwapFreeBytes = n
		}
	}
	return m
}

// mountEntry is one line of /proc/self/mountinfo.
type mountEntry struct {
	MajorMinor string
	Root       string
	Mountpoint string
	ReadOnly   bool
	FSType     string
	Source     string
}

// parseMountinfo reads /proc/self/mountinfo (proc(5)); octal escapes
// (\040 for a space) are decoded. Malformed lines are an error naming the
// line.
func parseMountinfo(data []byte) ([]mountEntry, error) {
	var out []mountEntry
	for i, line := range bytes.Split(data, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		f := strings.Fields(string(line))
		sep := -1
		for j := 6; j < len(f); j++ {
			if f[j] == "-" {
				sep = j
				break
			}
		}
		if sep < 0 || sep+1 >= len(f) {
			return nil, fmt.Errorf("mountinfo line %d: %d fields, no \" - \" separator", i+1, len(f))
		}
		e := mountEntry{
			MajorMinor: f[2],
			Root:       unescapeOctal(f[3]),
			Mountpoint: unescapeOctal(f[4]),
			FSType:     f[sep+1],
		}
		if sep+2 < len(f) {
			e.Source = unescapeOctal(f[sep+2])
		}
		for o := range strings.SplitSeq(f[5], ",") {
			if o == "ro" {
				e.ReadOnly = true
			}
		}
		out = append(out, e)
	}
	return out, nil
}

func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// pseudoFS are filesystem types that hold no user data on a disk.
var pseudoFS = map[string]bool{
	"proc": true, "sysfs": true, "devtmpfs": true, "devpts": true, "tmpfs": true, "ramfs": true,
	"cgroup": true, "cgroup2": true, "securityfs": true, "debugfs": true, "tracefs": true,
	"pstore": true, "bpf": true, "configfs": true, "fusectl": true, "mqueue": true, "hugetlbfs": true,
	"autofs": true, "binfmt_misc": true, "efivarfs": true, "nsfs": true, "rpc_pipefs": true,
	"selinuxfs": true, "squashfs": true, "fuse.lxcfs": true, "fuse.portal": true, "fuse.gvfsd-fuse": true,
	"nfsd": true, "overlay": true,
}

// realFilesystems keeps the mounts that hold data on a disk or a network
// share, one per device (the first, usually shortest, mountpoint), like df.
// An overlay mounted on / (a container's root) counts as real.
func realFilesystems(entries []mountEntry) []mountEntry {
	seen := map[string]bool{}
	var out []mountEntry
	for _, e := range entries {
		if e.FSType == "overlay" && e.Mountpoint == "/" {
			// a container's root filesystem
		} else if pseudoFS[e.FSType] {
			continue
		}
		if seen[e.MajorMinor] {
			continue
		}
		seen[e.MajorMinor] = true
		out = append(out, e)
	}
	return out
}

// parseRouteV4 returns the default routes of /proc/net/route.
func parseRouteV4(data []byte) ([]Route, error) {
	var out []Route
	lines := bytes.Split(data, []byte("\n"))
	for i, line := range lines {
		f := strings.Fields(string(line))
		if i == 0 || len(f) == 0 {
			continue // header
		}
		if len(f) < 8 {
			return nil, fmt.Errorf("/proc/net/route line %d: %d fields, want 11", i+1, len(f))
		}
		dst, err1 := strconv.ParseUint(f[1], 16, 32)
		gw, err2 := strconv.ParseUint(f[2], 16, 32)
		flags, err3 := strconv.ParseUint(f[3], 16, 32)
		metric, err4 := strconv.Atoi(f[6])
		mask, err5 := strconv.ParseUint(f[7], 16, 32)
		if err1 != nil || err2 != nil || err3 != nil || err4 != nil || err5 != nil {
			return nil, fmt.Errorf("/proc/net/route line %d: bad number in %q", i+1, line)
		}
		const rtfUp, rtfGateway, rtfReject = 0x1, 0x2, 0x200
		if dst != 0 || mask != 0 || flags&rtfUp == 0 || flags&rtfReject != 0 {
			continue
		}
		r := Route{Family: "ipv4", Interface: f[0], Metric: metric}
		if flags&rtfGateway != 0 {
			var b [4]byte
			binary.LittleEndian.PutUint32(b[:], uint32(gw)) // the kernel prints host order (little endian on every arch we ship)
			r.Gateway = netip.AddrFrom4(b).String()
		}
		out = append(out, r)
	}
	return out, nil
}

// parseRouteV6 returns the default routes of /proc/net/ipv6_route
// (::/0, up, not reject, not on lo).
func parseRouteV6(data []byte) ([]Route, error) {
	var out []Route
	for i, line := range bytes.Split(data, []byte("\n")) {
		f := strings.Fields(string(line))
		if len(f) == 0 {
			continue
		}
		if len(f) != 10 || len(f[0]) != 32 || len(f[4]) != 32 {
			return nil, fmt.Errorf("/proc/net/ipv6_route line %d: malformed %q", i+1, line)
		}
		plen, err1 := strconv.ParseUint(f[1], 16, 8)
		metric, err2 := strconv.ParseUint(f[5], 16, 32)
		flags, err3 := strconv.ParseUint(f[8], 16, 32)
		if err1 != nil || err2 != nil || err3 != nil {
			return nil, fmt.Errorf("/proc/net/ipv6_route line %d: bad number in %q", i+1, line)
		}
		const rtfUp, rtfGateway, rtfReject = 0x1, 0x2, 0x200
		if f[0] != strings.Repeat("0", 32) || plen != 0 || flags&rtfUp == 0 || flags&rtfReject != 0 || f[9] == "lo" {
			continue
		}
		r := Route{Family: "ipv6", Interface: f[9], Metric: int(metric)}
		if flags&rtfGateway != 0 {
			var b [16]byte
			if _, err := hex.Decode(b[:], []byte(f[4])); err != nil {
				return nil, fmt.Errorf("/proc/net/ipv6_route line %d: gateway %q: %w", i+1, f[4], err)
			}
			r.Gateway = netip.AddrFrom16(b).String()
		}
		out = append(out, r)
	}
	return out, nil
}

// ignoredMapPrefixes are deleted mappings that are not replaced code:
// shared memory, memfd, files in temporary directories (like needrestart's
// blacklist).
var ignoredMapPrefixes = []string{"/dev/", "/memfd:", "/SYSV", "/drm", "/run/", "/var/run/", "/tmp/", "/var/tmp/", "/proc/", "/[aio]", "/home/", "/root/"}

// parseMaps returns the deleted files a process maps executable, from its
// /proc/PID/maps, without the " (deleted)" suffix, deduplicated in order.
func parseMaps(data []byte) []string {
	if !bytes.Contains(data, []byte(" (deleted)")) {
		return nil
	}
	var out []string
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		if !bytes.HasSuffix(line, []byte(" (deleted)")) {
			continue
		}
		// address perms offset dev inode pathname
		rest := line
		var perms []byte
		for field := range 5 {
			rest = bytes.TrimLeft(rest, " ")
			sp := bytes.IndexByte(rest, ' ')
			if sp < 0 {
				rest = nil
				break
			}
			if field == 1 {
				perms = rest[:sp]
			}
			rest = rest[sp:]
		}
		path := string(bytes.TrimSuffix(bytes.TrimLeft(rest, " "), []byte(" (deleted)")))
		if len(perms) < 3 || perms[2] != 'x' || !strings.HasPrefix(path, "/") {
			continue
		}
		if ignoredMapping(path) || containsString(out, path) {
			continue
		}
		out = append(out, path)
	}
	return out
}

// ignoredMapping reports deleted files that are not replaced code.
func ignoredMapping(path string) bool {
	for _, p := range ignoredMapPrefixes {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// unitFromCgroup finds the systemd unit of a process in its
// /proc/PID/cgroup: the innermost ".service" or ".scope" path element of
// the unified (0::) or name=systemd hierarchy. user reports a unit of a
// user's service manager (below user@UID.service).
func unitFromCgroup(data []byte) (unit string, user bool) {
	var path string
	for line := range strings.SplitSeq(string(data), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			path = parts[2]
			break
		}
		if parts[1] == "name=systemd" {
			path = parts[2]
		}
	}
	inUser := false
	for elem := range strings.SplitSeq(path, "/") {
		if strings.HasSuffix(elem, ".service") || strings.HasSuffix(elem, ".scope") {
			if unit != "" && strings.HasPrefix(unit, "user@") {
				inUser = true
			}
			unit = elem
		}
	}
	return unit, inUser
}

// classifyVuln reads a /sys/devices/system/cpu/vulnerabilities file.
func classifyVuln(text string) VulnStatus {
	switch t := strings.TrimSpace(text); {
	case strings.HasPrefix(t, "Not affected"):
		return VulnNotAffected
	case strings.HasPrefix(t, "Mitigation"):
		return VulnMitigated
	case strings.HasPrefix(t, "Vulnerable"):
		return VulnVulnerable
	}
	return VulnUnknown
}

// parseEFIBool reads an efivars SecureBoot (or SetupMode) variable: 4
// bytes of attributes, then one byte 0 or 1.
func parseEFIBool(data []byte) (bool, error) {
	if len(data) != 5 || data[4] > 1 {
		return false, fmt.Errorf("efivar: %d bytes, want 4 attribute bytes and a 0/1 value", len(data))
	}
	return data[4] == 1, nil
}
