package inventory

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

func (s *scan) hardware(ctx context.Context) *Hardware {
	h := &Hardware{}
	hypervisorFlag := false
	if data, u := s.read("/proc/cpuinfo"); u != nil {
		unavail(&h.Unavailable, u)
	} else {
		ci := parseCPUInfo(data)
		h.CPU, hypervisorFlag = ci.CPU, ci.Hypervisor
	}
	if data, u := s.read("/proc/meminfo"); u != nil {
		unavail(&h.Unavailable, u)
	} else {
		h.Memory = parseMeminfo(data)
	}
	h.Disks = s.disks(&h.Unavailable)
	h.Filesystems = s.filesystems(&h.Unavailable)
	h.DMI = s.dmi(&h.Unavailable)
	h.Virt = s.virtualization(h.DMI, hypervisorFlag)
	return h
}

// disks lists whole block devices from /sys/block, without loop, ram and
// zram devices.
func (s *scan) disks(list *[]Unavailable) []Disk {
	entries, err := os.ReadDir(s.path("/sys/block"))
	if err != nil {
		*list = append(*list, Unavailable{Source: "/sys/block", Reason: reason(err)})
		return nil
	}
	var out []Disk
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, "loop") || strings.HasPrefix(name, "ram") || strings.HasPrefix(name, "zram") {
			continue
		}
		dir := "/sys/block/" + name
		d := Disk{Name: name}
		if v, ok := s.readTrim(dir + "/size"); ok {
			n, _ := strconv.ParseUint(v, 10, 64)
			d.SizeBytes = n * 512 // always 512-byte sectors in sysfs
		}
		d.Model, _ = s.readTrim(dir + "/device/model")
		d.Serial, _ = s.readTrim(dir + "/device/serial")
		if d.Serial == "" {
			d.Serial, _ = s.readTrim(dir + "/serial")
		}
		if v, _ := s.readTrim(dir + "/queue/rotational"); v == "1" {
			d.Rotational = true
		}
		if v, _ := s.readTrim(dir + "/removable"); v == "1" {
			d.Removable = true
		}
		out = append(out, d)
	}
	return out
}

func (s *scan) readTrim(p string) (string, bool) {
	data, u := s.read(p)
	if u != nil {
		return "", false
	}
	return strings.TrimSpace(string(data)), true
}

// filesystems lists the real filesystems of /proc/self/mountinfo with
// their sizes from statfs.
func (s *scan) filesystems(list *[]Unavailable) []Filesystem {
	data, u := s.read("/proc/self/mountinfo")
	if u != nil {
		unavail(list, u)
		return nil
	}
	entries, err := parseMountinfo(data)
	if err != nil {
		*list = append(*list, Unavailable{Source: "/proc/self/mountinfo", Reason: err.Error()})
		return nil
	}
	var out []Filesystem
	for _, e := range realFilesystems(entries) {
		fs := Filesystem{Mountpoint: e.Mountpoint, Device: e.Source, Type: e.FSType, ReadOnly: e.ReadOnly}
		var st unix.Statfs_t
		if err := unix.Statfs(s.path(e.Mountpoint), &st); err != nil {
			*list = append(*list, Unavailable{Source: "statfs " + e.Mountpoint, Reason: reason(err)})
		} else {
			bs := uint64(st.Bsize)
			if st.Frsize > 0 {
				bs = uint64(st.Frsize)
			}
			fs.SizeBytes, fs.FreeBytes, fs.AvailBytes = st.Blocks*bs, st.Bfree*bs, st.Bavail*bs
			fs.Inodes, fs.FreeInodes = st.Files, st.Ffree
		}
		out = append(out, fs)
	}
	return out
}

// dmi reads /sys/class/dmi/id. Some fields (serials, UUID) are readable by
// root only; they are recorded as unavailable for anyone else.
func (s *scan) dmi(list *[]Unavailable) DMI {
	var d DMI
	const dir = "/sys/class/dmi/id"
	if _, err := os.Stat(s.path(dir)); err != nil {
		*list = append(*list, Unavailable{Source: dir, Reason: reason(err) + ": no SMBIOS/DMI tables (container, or firmware without them)"})
		return d
	}
	for _, f := range []struct {
		name string
		dst  *string
	}{
		{"sys_vendor", &d.SysVendor}, {"product_name", &d.ProductName}, {"product_version", &d.ProductVersion},
		{"product_serial", &d.ProductSerial}, {"product_uuid", &d.ProductUUID},
		{"board_vendor", &d.BoardVendor}, {"board_name", &d.BoardName}, {"board_serial", &d.BoardSerial},
		{"chassis_type", &d.ChassisType}, {"chassis_serial", &d.ChassisSerial},
		{"bios_vendor", &d.BIOSVendor}, {"bios_version", &d.BIOSVersion}, {"bios_date", &d.BIOSDate},
	} {
		data, u := s.read(filepath.Join(dir, f.name))
		if u != nil {
			unavail(list, u)
			continue
		}
		*f.dst = strings.TrimSpace(string(data))
	}
	return d
}

// virtualization tells VMs and containers apart the way systemd-detect-virt
// does, from files: container marker files, /sys/hypervisor, DMI vendor
// strings, the device tree and the cpuinfo hypervisor flag.
func (s *scan) virtualization(d DMI, hypervisorFlag bool) Virtualization {
	v := Virtualization{VM: "none", Container: "none"}
	switch {
	case s.exists("/run/.containerenv"):
		v.Container = "podman"
		v.Evidence = append(v.Evidence, "/run/.containerenv")
	case s.exists("/.dockerenv"):
		v.Container = "docker"
		v.Evidence = append(v.Evidence, "/.dockerenv")
	default:
		if c, ok := s.readTrim("/run/systemd/container"); ok && c != "" {
			v.Container = c
			v.Evidence = append(v.Evidence, "/run/systemd/container")
		} else if rel, _ := s.readTrim("/proc/sys/kernel/osrelease"); strings.Contains(rel, "microsoft") || strings.Contains(rel, "Microsoft") {
			v.Container = "wsl"
			v.Evidence = append(v.Evidence, "kernel release "+rel)
		} else if s.exists("/proc/vz") && !s.exists("/proc/bc") {
			v.Container = "openvz"
			v.Evidence = append(v.Evidence, "/proc/vz")
		}
	}
	if t, ok := s.readTrim("/sys/hypervisor/type"); ok && t != "" {
		v.VM = t
		v.Evidence = append(v.Evidence, "/sys/hypervisor/type "+t)
		return v
	}
	for _, field := range []struct{ name, val string }{
		{"sys_vendor", d.SysVendor}, {"product_name", d.ProductName}, {"board_vendor", d.BoardVendor}, {"bios_vendor", d.BIOSVendor},
	} {
		if vm := dmiVendorVM(field.val, d.ProductName); vm != "" {
			v.VM = vm
			v.Evidence = append(v.Evidence, "DMI "+field.name+" "+field.val)
			return v
		}
	}
	if c, ok := s.readTrim("/proc/device-tree/hypervisor/compatible"); ok && c != "" {
		v.VM = strings.TrimRight(strings.TrimPrefix(c, "linux,"), "\x00")
		v.Evidence = append(v.Evidence, "device tree hypervisor "+c)
		return v
	}
	if hypervisorFlag {
		v.VM = "vm-other"
		v.Evidence = append(v.Evidence, "cpuinfo hypervisor flag")
	}
	return v
}

func (s *scan) exists(p string) bool {
	_, err := os.Lstat(s.path(p))
	return err == nil
}
