package inventory

import "time"

// SchemaVersion is the version of the Snapshot JSON layout.
const SchemaVersion = 1

// Section names one part of a snapshot.
type Section string

// The sections Collect knows.
const (
	SectionOS       Section = "os"
	SectionHardware Section = "hardware"
	SectionNetwork  Section = "network"
	SectionPackages Section = "packages"
	SectionReboot   Section = "reboot"
	SectionRestart  Section = "restart"
	SectionSecurity Section = "security"
)

// AllSections lists every section in display order.
var AllSections = []Section{SectionOS, SectionHardware, SectionNetwork, SectionPackages, SectionReboot, SectionRestart, SectionSecurity}

// Unavailable records a source a collector could not read and why.
type Unavailable struct {
	Source string `json:"source"` // a path, a command or a field, e.g. "/sys/class/dmi/id/product_serial"
	Reason string `json:"reason"` // e.g. "needs root", "no such file", "rpm not installed"
}

// Snapshot is one scan of the endpoint. A section is nil when it was not
// asked for. It is plain data: safe to marshal as JSON and to store.
type Snapshot struct {
	Schema   int       `json:"schema"`
	TakenAt  time.Time `json:"taken_at"`
	ScanMS   float64   `json:"scan_ms"` // wall time of the scan
	Hostname string    `json:"hostname"`

	OS       *OSInfo   `json:"os,omitempty"`
	Hardware *Hardware `json:"hardware,omitempty"`
	Network  *Network  `json:"network,omitempty"`
	Packages *Packages `json:"packages,omitempty"`
	Reboot   *Reboot   `json:"reboot,omitempty"`
	Restart  *Restart  `json:"restart,omitempty"`
	Security *Security `json:"security,omitempty"`
}

// OSInfo describes the operating system and kernel.
type OSInfo struct {
	// Family is "linux", "windows" or "darwin".
	Family string `json:"family"`
	// ID, Name, PrettyName, Version, VersionID, VersionCodename and IDLike
	// come from os-release on Linux (and the equivalents elsewhere).
	ID              string   `json:"id,omitempty"`
	IDLike          []string `json:"id_like,omitempty"`
	Name            string   `json:"name,omitempty"`
	PrettyName      string   `json:"pretty_name,omitempty"`
	Version         string   `json:"version,omitempty"`
	VersionID       string   `json:"version_id,omitempty"`
	VersionCodename string   `json:"version_codename,omitempty"`
	Build           string   `json:"build,omitempty"` // Windows build.UBR, macOS build
	// Release holds every os-release field as read.
	Release map[string]string `json:"release,omitempty"`

	KernelName    string `json:"kernel_name,omitempty"`    // "Linux"
	KernelRelease string `json:"kernel_release,omitempty"` // uname -r
	KernelVersion string `json:"kernel_version,omitempty"` // uname -v
	Architecture  string `json:"architecture,omitempty"`   // uname -m

	BootTime      time.Time `json:"boot_time,omitzero"`
	UptimeSeconds float64   `json:"uptime_seconds,omitempty"`
	TimeZone      string    `json:"time_zone,omitempty"` // IANA name, e.g. "Europe/Berlin"

	Unavailable []Unavailable `json:"unavailable,omitempty"`
}

// Hardware describes the machine.
type Hardware struct {
	CPU         CPU            `json:"cpu"`
	Memory      Memory         `json:"memory"`
	Disks       []Disk         `json:"disks,omitempty"`
	Filesystems []Filesystem   `json:"filesystems,omitempty"`
	DMI         DMI            `json:"dmi"`
	Virt        Virtualization `json:"virtualization"`
	Unavailable []Unavailable  `json:"unavailable,omitempty"`
}

// CPU counts processors. Sockets, Cores and Threads are totals over the
// machine (Threads = logical CPUs).
type CPU struct {
	Model   string  `json:"model,omitempty"`
	Vendor  string  `json:"vendor,omitempty"`
	Sockets int     `json:"sockets,omitempty"`
	Cores   int     `json:"cores,omitempty"`
	Threads int     `json:"threads,omitempty"`
	MHz     float64 `json:"mhz,omitempty"`
}

// Memory in bytes.
type Memory struct {
	TotalBytes     uint64 `json:"total_bytes,omitempty"`
	AvailableBytes uint64 `json:"available_bytes,omitempty"`
	SwapTotalBytes uint64 `json:"swap_total_bytes,omitempty"`
	SwapFreeBytes  uint64 `json:"swap_free_bytes,omitempty"`
}

// Disk is a whole block device.
type Disk struct {
	Name       string `json:"name"` // "sda", "nvme0n1"
	SizeBytes  uint64 `json:"size_bytes"`
	Model      string `json:"model,omitempty"`
	Serial     string `json:"serial,omitempty"`
	Rotational bool   `json:"rotational,omitempty"`
	Removable  bool   `json:"removable,omitempty"`
}

// Filesystem is a mounted real (not pseudo) filesystem.
type Filesystem struct {
	Mountpoint string `json:"mountpoint"`
	Device     string `json:"device"`
	Type       string `json:"type"`
	ReadOnly   bool   `json:"read_only,omitempty"`
	SizeBytes  uint64 `json:"size_bytes"`
	FreeBytes  uint64 `json:"free_bytes"`  // free for root
	AvailBytes uint64 `json:"avail_bytes"` // free for unprivileged users
	Inodes     uint64 `json:"inodes,omitempty"`
	FreeInodes uint64 `json:"free_inodes,omitempty"`
}

// DMI is the firmware's description of the machine (SMBIOS). Fields that
// only root may read are empty and listed in Hardware.Unavailable.
type DMI struct {
	SysVendor      string `json:"sys_vendor,omitempty"`
	ProductName    string `json:"product_name,omitempty"`
	ProductVersion string `json:"product_version,omitempty"`
	ProductSerial  string `json:"product_serial,omitempty"`
	ProductUUID    string `json:"product_uuid,omitempty"`
	BoardVendor    string `json:"board_vendor,omitempty"`
	BoardName      string `json:"board_name,omitempty"`
	BoardSerial    string `json:"board_serial,omitempty"`
	ChassisType    string `json:"chassis_type,omitempty"`
	ChassisSerial  string `json:"chassis_serial,omitempty"`
	BIOSVendor     string `json:"bios_vendor,omitempty"`
	BIOSVersion    string `json:"bios_version,omitempty"`
	BIOSDate       string `json:"bios_date,omitempty"`
}

// Virtualization tells whether the system runs in a virtual machine or a
// container and which, as far as it can be told (like systemd-detect-virt).
type Virtualization struct {
	// VM is the hypervisor ("kvm", "vmware", "microsoft", "xen", "oracle",
	// "qemu", "amazon", "bochs", "parallels", "apple", ...) or "none".
	VM string `json:"vm"`
	// Container is the container manager ("docker", "podman", "lxc",
	// "systemd-nspawn", "wsl", ...) or "none".
	Container string `json:"container"`
	// Evidence says what the verdict rests on, e.g. "cpuinfo hypervisor flag, DMI sys_vendor QEMU".
	Evidence []string `json:"evidence,omitempty"`
}

// Network lists interfaces and default routes.
type Network struct {
	Interfaces    []Interface   `json:"interfaces"`
	DefaultRoutes []Route       `json:"default_routes,omitempty"`
	Unavailable   []Unavailable `json:"unavailable,omitempty"`
}

// Interface is one network interface.
type Interface struct {
	Name      string   `json:"name"`
	Index     int      `json:"index"`
	MAC       string   `json:"mac,omitempty"`
	MTU       int      `json:"mtu,omitempty"`
	Up        bool     `json:"up"`
	Loopback  bool     `json:"loopback,omitempty"`
	Addresses []string `json:"addresses,omitempty"` // CIDR notation
}

// Route is a default route.
type Route struct {
	Family    string `json:"family"` // "ipv4" or "ipv6"
	Interface string `json:"interface"`
	Gateway   string `json:"gateway,omitempty"` // empty for an on-link route
	Metric    int    `json:"metric"`
}

// Packages is the software installed, from every package manager found.
type Packages struct {
	// Managers lists the package managers read, e.g. ["dpkg"], ["rpm"],
	// ["windows-registry", "windows-hotfix"], ["pkgutil", "applications"].
	Managers []string  `json:"managers"`
	Items    []Package `json:"items"`
	Counts   Counts    `json:"counts"`
	Kernels  Kernels   `json:"kernels"`

	Unavailable []Unavailable `json:"unavailable,omitempty"`
}

// Package is one installed (or partly installed) package.
type Package struct {
	Manager       string `json:"manager"` // "dpkg", "rpm", "windows-registry", "windows-hotfix", "pkgutil", "applications"
	Name          string `json:"name"`
	Version       string `json:"version,omitempty"`
	Architecture  string `json:"architecture,omitempty"`
	Source        string `json:"source,omitempty"`
	SourceVersion string `json:"source_version,omitempty"`
	// Status is the package manager's state: for dpkg "installed",
	// "config-files", "half-installed", "unpacked", "half-configured",
	// "triggers-awaited", "triggers-pending"; "installed" elsewhere.
	Status string `json:"status"`
	// Want is dpkg's selection ("install", "hold", "deinstall", "purge").
	Want string `json:"want,omitempty"`
	// Broken is set when dpkg flags the package reinstreq.
	Broken      bool      `json:"broken,omitempty"`
	Publisher   string    `json:"publisher,omitempty"`
	InstalledAt time.Time `json:"installed_at,omitzero"`
}

// Present reports whether the package's files are on the system (any
// state but config-files and not-installed).
func (p *Package) Present() bool {
	return p.Status != "config-files" && p.Status != "not-installed"
}

// Counts summarises Items.
type Counts struct {
	Total       int            `json:"total"`
	Present     int            `json:"present"`      // Present() packages
	ConfigFiles int            `json:"config_files"` // removed, configuration kept
	Broken      int            `json:"broken"`       // reinstreq or half-installed/half-configured
	ByManager   map[string]int `json:"by_manager,omitempty"`
}

// Kernels compares the running kernel with the installed kernel packages.
type Kernels struct {
	// Manager is the package manager the kernel packages come from.
	Manager string `json:"manager,omitempty"`
	Running string `json:"running"` // uname -r
	// Installed lists kernel image packages, newest first.
	Installed []KernelPackage `json:"installed,omitempty"`
	// Newest is the release of the newest installed kernel.
	Newest string `json:"newest,omitempty"`
	// RunningInstalled is true when the running kernel's package is still
	// installed.
	RunningInstalled bool `json:"running_installed"`
}

// KernelPackage is one installed kernel image.
type KernelPackage struct {
	Package string `json:"package"` // "linux-image-6.1.0-18-amd64", "kernel-core"
	Version string `json:"version"`
	Release string `json:"release"` // the uname -r it boots as
	Running bool   `json:"running,omitempty"`
}

// Reboot tells whether the system asks for a reboot.
type Reboot struct {
	Required bool `json:"required"`
	// Reasons explain Required, e.g. "/var/run/reboot-required exists",
	// "running kernel 5.14.0-362 is not the newest installed 5.14.0-427".
	Reasons []string `json:"reasons,omitempty"`
	// Packages are the packages that asked (reboot-required.pkgs).
	Packages []string `json:"packages,omitempty"`
	// Since is when the need was first recorded (mtime of the flag file).
	Since       time.Time     `json:"since,omitzero"`
	Unavailable []Unavailable `json:"unavailable,omitempty"`
}

// Restart lists processes still running code that has been replaced on
// disk (deleted libraries or binaries), the way needrestart finds them.
type Restart struct {
	Units     []RestartUnit    `json:"units,omitempty"`     // grouped by systemd unit
	Processes []RestartProcess `json:"processes,omitempty"` // every affected process
	// Scanned and Unreadable count the processes looked at and the ones
	// whose maps could not be read.
	Scanned     int           `json:"scanned"`
	Unreadable  int           `json:"unreadable,omitempty"`
	Unavailable []Unavailable `json:"unavailable,omitempty"`
}

// RestartUnit is a service (or scope) whose processes need a restart.
type RestartUnit struct {
	Unit  string   `json:"unit"` // "ssh.service", "session-3.scope"; "" for processes outside any unit
	User  bool     `json:"user,omitempty"`
	PIDs  []int    `json:"pids"`
	Files []string `json:"files"`
}

// RestartProcess is one process mapping deleted files.
type RestartProcess struct {
	PID        int    `json:"pid"`
	Command    string `json:"command"`
	Exe        string `json:"exe,omitempty"`
	ExeDeleted bool   `json:"exe_deleted,omitempty"`
	Unit       string `json:"unit,omitempty"`
	// UserUnit is set when Unit belongs to a user's service manager
	// (below user@UID.service) rather than the system's.
	UserUnit bool     `json:"user_unit,omitempty"`
	Files    []string `json:"files"` // deleted files it maps, without " (deleted)"
}

// Security is the system's security posture.
type Security struct {
	// Vulnerabilities has one entry per file in
	// /sys/devices/system/cpu/vulnerabilities.
	Vulnerabilities []Vulnerability `json:"vulnerabilities,omitempty"`
	// ASLR is kernel.randomize_va_space (0 off, 1 conservative, 2 full);
	// -1 when unknown.
	ASLR int `json:"aslr"`
	// SecureBoot is "enabled", "disabled", "setup-mode" or "" when unknown.
	SecureBoot  string        `json:"secure_boot,omitempty"`
	Unavailable []Unavailable `json:"unavailable,omitempty"`
}

// VulnStatus classifies a CPU vulnerability file.
type VulnStatus string

// The classes of a vulnerabilities file's text.
const (
	VulnNotAffected VulnStatus = "not-affected"
	VulnMitigated   VulnStatus = "mitigated"
	VulnVulnerable  VulnStatus = "vulnerable"
	VulnUnknown     VulnStatus = "unknown"
)

// Vulnerability is one CPU vulnerability as the kernel reports it.
type Vulnerability struct {
	Name   string     `json:"name"` // "spectre_v2"
	Status VulnStatus `json:"status"`
	Detail string     `json:"detail"` // the file's text, e.g. "Mitigation: Retpolines; IBPB: conditional"
}
