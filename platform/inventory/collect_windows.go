package inventory

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/registry"
)

const notOnWindows = "not collected on Windows"

func (s *scan) hostname() string {
	h, _ := os.Hostname()
	return h
}

// regValues reads every value of a key as strings (integers in decimal).
func regValues(k registry.Key) map[string]string {
	names, err := k.ReadValueNames(-1)
	if err != nil {
		return nil
	}
	out := make(map[string]string, len(names))
	for _, n := range names {
		if s, _, err := k.GetStringValue(n); err == nil {
			out[n] = s
		} else if i, _, err := k.GetIntegerValue(n); err == nil {
			out[n] = strconv.FormatUint(i, 10)
		} else if ss, _, err := k.GetStringsValue(n); err == nil {
			out[n] = strings.Join(ss, "\n")
		}
	}
	return out
}

func openValues(root registry.Key, path string, access uint32) (map[string]string, error) {
	k, err := registry.OpenKey(root, path, registry.QUERY_VALUE|access)
	if err != nil {
		return nil, err
	}
	defer k.Close()
	return regValues(k), nil
}

func (s *scan) osInfo(ctx context.Context) *OSInfo {
	o := &OSInfo{Family: "windows", ID: "windows", KernelName: "Windows_NT", Architecture: os.Getenv("PROCESSOR_ARCHITECTURE")}
	const cv = `SOFTWARE\Microsoft\Windows NT\CurrentVersion`
	v, err := openValues(registry.LOCAL_MACHINE, cv, 0)
	if err != nil {
		o.Unavailable = append(o.Unavailable, Unavailable{Source: `HKLM\` + cv, Reason: reason(err)})
	} else {
		o.Name, o.PrettyName = v["ProductName"], v["ProductName"]
		o.Version, o.VersionID = v["DisplayVersion"], v["DisplayVersion"]
		o.VersionCodename = v["EditionID"]
		o.Build = v["CurrentBuildNumber"]
		if v["UBR"] != "" {
			o.Build += "." + v["UBR"]
		}
		o.KernelRelease = v["CurrentMajorVersionNumber"] + "." + v["CurrentMinorVersionNumber"] + "." + o.Build
		o.Release = v
	}
	tick := windows.NewLazySystemDLL("kernel32.dll").NewProc("GetTickCount64")
	if ms, _, _ := tick.Call(); ms != 0 {
		o.UptimeSeconds = float64(ms) / 1000
		o.BootTime = s.now().Add(-time.Duration(ms) * time.Millisecond).UTC().Truncate(time.Second)
	}
	const tz = `SYSTEM\CurrentControlSet\Control\TimeZoneInformation`
	if v, err := openValues(registry.LOCAL_MACHINE, tz, 0); err == nil {
		o.TimeZone = v["TimeZoneKeyName"] // a Windows zone name, e.g. "W. Europe Standard Time"
	}
	return o
}

type memoryStatusEx struct {
	Length               uint32
	MemoryLoad           uint32
	TotalPhys            uint64
	AvailPhys            uint64
	TotalPageFile        uint64
	AvailPageFile        uint64
	TotalVirtual         uint64
	AvailVirtual         uint64
	AvailExtendedVirtual uint64
}

func (s *scan) hardware(ctx context.Context) *Hardware {
	h := &Hardware{Virt: Virtualization{VM: "none", Container: "none"}}
	h.CPU.Threads = runtime.NumCPU()
	const cpu = `HARDWARE\DESCRIPTION\System\CentralProcessor\0`
	if v, err := openValues(registry.LOCAL_MACHINE, cpu, 0); err == nil {
		h.CPU.Model, h.CPU.Vendor = strings.TrimSpace(v["ProcessorNameString"]), v["VendorIdentifier"]
		h.CPU.MHz, _ = strconv.ParseFloat(v["~MHz"], 64)
	} else {
		h.Unavailable = append(h.Unavailable, Unavailable{Source: `HKLM\` + cpu, Reason: reason(err)})
	}
	h.Unavailable = append(h.Unavailable, Unavailable{Source: "cpu sockets and cores", Reason: notOnWindows})
	ms := memoryStatusEx{Length: uint32(unsafe.Sizeof(memoryStatusEx{}))}
	proc := windows.NewLazySystemDLL("kernel32.dll").NewProc("GlobalMemoryStatusEx")
	if r, _, err := proc.Call(uintptr(unsafe.Pointer(&ms))); r != 0 {
		h.Memory = Memory{TotalBytes: ms.TotalPhys, AvailableBytes: ms.AvailPhys}
	} else {
		h.Unavailable = append(h.Unavailable, Unavailable{Source: "GlobalMemoryStatusEx", Reason: err.Error()})
	}
	h.Filesystems = windowsVolumes(&h.Unavailable)
	const bios = `HARDWARE\DESCRIPTION\System\BIOS`
	if v, err := openValues(registry.LOCAL_MACHINE, bios, 0); err == nil {
		h.DMI = DMI{
			SysVendor: v["SystemManufacturer"], ProductName: v["SystemProductName"], ProductVersion: v["SystemVersion"],
			BoardVendor: v["BaseBoardManufacturer"], BoardName: v["BaseBoardProduct"],
			BIOSVendor: v["BIOSVendor"], BIOSVersion: v["BIOSVersion"], BIOSDate: v["BIOSReleaseDate"],
		}
		if vm := dmiVendorVM(h.DMI.SysVendor, h.DMI.ProductName); vm != "" {
			h.Virt.VM, h.Virt.Evidence = vm, []string{"BIOS SystemManufacturer " + h.DMI.SysVendor}
		}
	} else {
		h.Unavailable = append(h.Unavailable, Unavailable{Source: `HKLM\` + bios, Reason: reason(err)})
	}
	h.Unavailable = append(h.Unavailable, Unavailable{Source: "disks", Reason: notOnWindows})
	return h
}

// windowsVolumes lists fixed drives with their free space.
func windowsVolumes(list *[]Unavailable) []Filesystem {
	var out []Filesystem
	for c := 'A'; c <= 'Z'; c++ {
		root := string(c) + `:\`
		p, _ := windows.UTF16PtrFromString(root)
		if windows.GetDriveType(p) != windows.DRIVE_FIXED {
			continue
		}
		var avail, total, free uint64
		if err := windows.GetDiskFreeSpaceEx(p, &avail, &total, &free); err != nil {
			*list = append(*list, Unavailable{Source: "GetDiskFreeSpaceEx " + root, Reason: err.Error()})
			continue
		}
		out = append(out, Filesystem{Mountpoint: root, Device: root, Type: "fixed", SizeBytes: total, FreeBytes: free, AvailBytes: avail})
	}
	return out
}

func (s *scan) defaultRoutes(list *[]Unavailable) []Route {
	*list = append(*list, Unavailable{Source: "default routes", Reason: notOnWindows})
	return nil
}

const uninstallKey = `SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall`

// uninstallKeys reads the subkeys of an Uninstall key in one registry view.
func uninstallKeys(root registry.Key, access uint32) ([]regKey, error) {
	k, err := registry.OpenKey(root, uninstallKey, registry.ENUMERATE_SUB_KEYS|registry.QUERY_VALUE|access)
	if err != nil {
		return nil, err
	}
	defer k.Close()
	names, err := k.ReadSubKeyNames(-1)
	if err != nil {
		return nil, err
	}
	var out []regKey
	for _, n := range names {
		if v, err := openValues(k, n, access); err == nil {
			out = append(out, regKey{Path: uninstallKey + `\` + n, Values: v})
		}
	}
	return out, nil
}

func (s *scan) readPackages(ctx context.Context) *Packages {
	p := &Packages{Managers: []string{}, Items: []Package{}}
	views := []struct {
		root   registry.Key
		name   string
		access uint32
		arch   string
	}{
		{registry.LOCAL_MACHINE, `HKLM (64-bit)`, registry.WOW64_64KEY, "x64"},
		{registry.LOCAL_MACHINE, `HKLM (32-bit)`, registry.WOW64_32KEY, "x86"},
		{registry.CURRENT_USER, `HKCU`, 0, ""},
	}
	read := false
	for _, v := range views {
		keys, err := uninstallKeys(v.root, v.access)
		if err != nil {
			if !errors.Is(err, registry.ErrNotExist) {
				p.Unavailable = append(p.Unavailable, Unavailable{Source: v.name + `\` + uninstallKey, Reason: reason(err)})
			}
			continue
		}
		read = true
		p.Items = append(p.Items, uninstallPackages(keys, v.arch)...)
	}
	if read {
		p.Managers = append(p.Managers, "windows-registry")
	}
	cmd := exec.CommandContext(ctx, "powershell.exe", "-NoProfile", "-NonInteractive", "-Command",
		"Get-HotFix | Select-Object HotFixID,Description,InstalledOn,InstalledBy | ConvertTo-Json -Compress")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		p.Unavailable = append(p.Unavailable, Unavailable{Source: "Get-HotFix", Reason: strings.TrimSpace(err.Error() + " " + stderr.String())})
	} else if fixes, err := parseHotfixJSON(out); err != nil {
		p.Unavailable = append(p.Unavailable, Unavailable{Source: "Get-HotFix", Reason: err.Error()})
	} else {
		p.Managers = append(p.Managers, "windows-hotfix")
		p.Items = append(p.Items, fixes...)
	}
	p.Counts = counts(p.Items)
	return p
}

// rebootFlags reads the registry marks Windows Update and servicing leave
// when they need a reboot.
func (s *scan) rebootFlags(ctx context.Context, r *Reboot) {
	for _, k := range []string{
		`SOFTWARE\Microsoft\Windows\CurrentVersion\WindowsUpdate\Auto Update\RebootRequired`,
		`SOFTWARE\Microsoft\Windows\CurrentVersion\Component Based Servicing\RebootPending`,
	} {
		key, err := registry.OpenKey(registry.LOCAL_MACHINE, k, registry.QUERY_VALUE)
		if err == nil {
			key.Close()
			r.Required = true
			r.Reasons = append(r.Reasons, `HKLM\`+k+" exists")
		} else if !errors.Is(err, registry.ErrNotExist) {
			r.Unavailable = append(r.Unavailable, Unavailable{Source: `HKLM\` + k, Reason: reason(err)})
		}
	}
	const sm = `SYSTEM\CurrentControlSet\Control\Session Manager`
	if v, err := openValues(registry.LOCAL_MACHINE, sm, 0); err == nil && strings.TrimSpace(v["PendingFileRenameOperations"]) != "" {
		r.Required = true
		r.Reasons = append(r.Reasons, "pending file rename operations")
	}
}

func (s *scan) containerKind() string { return "none" }

func (s *scan) restart(ctx context.Context) *Restart {
	return &Restart{Unavailable: []Unavailable{{Source: "restart", Reason: notOnWindows}}}
}

func (s *scan) security(ctx context.Context) *Security {
	sec := &Security{ASLR: -1}
	const sb = `SYSTEM\CurrentControlSet\Control\SecureBoot\State`
	if v, err := openValues(registry.LOCAL_MACHINE, sb, 0); err == nil {
		switch v["UEFISecureBootEnabled"] {
		case "1":
			sec.SecureBoot = "enabled"
		case "0":
			sec.SecureBoot = "disabled"
		}
	} else {
		sec.Unavailable = append(sec.Unavailable, Unavailable{Source: `HKLM\` + sb, Reason: reason(err)})
	}
	sec.Unavailable = append(sec.Unavailable, Unavailable{Source: "cpu vulnerabilities, ASLR", Reason: notOnWindows})
	return sec
}
