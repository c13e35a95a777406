package inventory

// Parsers for macOS sources (system_profiler -json, pkgutil). Portable so
// that recorded output under testdata is tested on every OS.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// spReport is the subset of `system_profiler -json SPSoftwareDataType
// SPHardwareDataType SPApplicationsDataType` patchring reads.
type spReport struct {
	Software []struct {
		OSVersion     string `json:"os_version"`     // "macOS 14.1.1 (23B81)"
		KernelVersion string `json:"kernel_version"` // "Darwin 23.1.0"
		LocalHostName string `json:"local_host_name"`
		Uptime        string `json:"uptime"` // "up 2:3:45:10" (days:hours:minutes:seconds)
		SIP           string `json:"system_integrity"`
		SecureVM      string `json:"secure_vm"`
	} `json:"SPSoftwareDataType"`
	Hardware []struct {
		MachineModel   string          `json:"machine_model"`
		MachineName    string          `json:"machine_name"`
		ChipType       string          `json:"chip_type"` // Apple silicon
		CPUType        string          `json:"cpu_type"`  // Intel
		ProcessorSpeed string          `json:"current_processor_speed"`
		NumProcessors  json.RawMessage `json:"number_processors"` // "proc 10:6:4" (Apple silicon) or 1 (Intel sockets)
		Packages       int             `json:"packages"`
		PhysicalMemory string          `json:"physical_memory"` // "16 GB"
		SerialNumber   string          `json:"serial_number"`
		PlatformUUID   string          `json:"platform_UUID"`
		BootROMVersion string          `json:"boot_rom_version"`
		ModelNumber    string          `json:"model_number"`
		HyperThreading string          `json:"platform_cpu_htt"`
	} `json:"SPHardwareDataType"`
	Applications []struct {
		Name         string `json:"_name"`
		Version      string `json:"version"`
		Path         string `json:"path"`
		ObtainedFrom string `json:"obtained_from"`
		LastModified string `json:"lastModified"`
		ArchKind     string `json:"arch_kind"`
		Info         string `json:"info"`
	} `json:"SPApplicationsDataType"`
}

func parseSystemProfiler(data []byte) (*spReport, error) {
	var r spReport
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("parse system_profiler JSON: %w", err)
	}
	return &r, nil
}

var osVersionRE = regexp.MustCompile(`^(.*?)\s+([0-9][0-9.]*)\s*(?:\(([^)]+)\))?$`)

// osInfo fills an OSInfo from SPSoftwareDataType.
func (r *spReport) osInfo() *OSInfo {
	o := &OSInfo{Family: "darwin", ID: "macos", KernelName: "Darwin"}
	if len(r.Software) == 0 {
		o.Unavailable = append(o.Unavailable, Unavailable{Source: "system_profiler SPSoftwareDataType", Reason: "no data"})
		return o
	}
	sw := r.Software[0]
	o.PrettyName = sw.OSVersion
	if m := osVersionRE.FindStringSubmatch(sw.OSVersion); m != nil {
		o.Name, o.VersionID, o.Version, o.Build = m[1], m[2], m[2], m[3]
	}
	if k, ok := strings.CutPrefix(sw.KernelVersion, "Darwin "); ok {
		o.KernelRelease = k
	}
	o.UptimeSeconds = parseSPUptime(sw.Uptime)
	return o
}

// parseSPUptime reads "up D:H:M:S".
func parseSPUptime(s string) float64 {
	f := strings.Split(strings.TrimPrefix(s, "up "), ":")
	if len(f) != 4 {
		return 0
	}
	mult := []float64{86400, 3600, 60, 1}
	total := 0.0
	for i, x := range f {
		n, err := strconv.Atoi(x)
		if err != nil {
			return 0
		}
		total += float64(n) * mult[i]
	}
	return total
}

// hardware fills CPU, memory and the DMI-like identity from
// SPHardwareDataType.
func (r *spReport) hardware() *Hardware {
	h := &Hardware{Virt: Virtualization{VM: "none", Container: "none"}}
	if len(r.Hardware) == 0 {
		h.Unavailable = append(h.Unavailable, Unavailable{Source: "system_profiler SPHardwareDataType", Reason: "no data"})
		return h
	}
	hw := r.Hardware[0]
	h.CPU.Model = hw.ChipType
	if h.CPU.Model == "" {
		h.CPU.Model = strings.TrimSpace(hw.CPUType + " " + hw.ProcessorSpeed)
	}
	h.CPU.Vendor = "Apple"
	if hw.CPUType != "" {
		h.CPU.Vendor = "GenuineIntel"
	}
	var procs string
	var sockets int
	switch {
	case json.Unmarshal(hw.NumProcessors, &procs) == nil:
		// "proc 10:6:4": total cores, performance, efficiency.
		if f := strings.Fields(procs); len(f) == 2 {
			total, _, _ := strings.Cut(f[1], ":")
			h.CPU.Cores, _ = strconv.Atoi(total)
			h.CPU.Threads, h.CPU.Sockets = h.CPU.Cores, 1
		}
	case json.Unmarshal(hw.NumProcessors, &sockets) == nil:
		h.CPU.Sockets = max(sockets, hw.Packages)
	}
	h.Memory.TotalBytes = parseSize(hw.PhysicalMemory)
	h.DMI = DMI{
		SysVendor: "Apple Inc.", ProductName: hw.MachineModel, ProductVersion: hw.MachineName,
		ProductSerial: hw.SerialNumber, ProductUUID: hw.PlatformUUID, BIOSVersion: hw.BootROMVersion,
	}
	if strings.HasPrefix(hw.MachineModel, "VirtualMac") {
		h.Virt.VM, h.Virt.Evidence = "apple", []string{"machine_model " + hw.MachineModel}
	}
	return h
}

// parseSize reads "16 GB", "512 MB".
func parseSize(s string) uint64 {
	f := strings.Fields(s)
	if len(f) != 2 {
		return 0
	}
	n, err := strconv.ParseFloat(f[0], 64)
	if err != nil || n < 0 {
		return 0
	}
	mult := map[string]float64{"KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}[strings.ToUpper(f[1])]
	return uint64(n * mult)
}

// applications lists SPApplicationsDataType entries as packages.
func (r *spReport) applications() []Package {
	var out []Package
	for _, a := range r.Applications {
		if a.Name == "" {
			continue
		}
		p := Package{Manager: "applications", Name: a.Name, Version: a.Version, Source: a.Path, Publisher: a.ObtainedFrom, Status: "installed"}
		switch a.ArchKind {
		case "arch_arm_i64":
			p.Architecture = "universal"
		case "arch_arm":
			p.Architecture = "arm64"
		case "arch_i64":
			p.Architecture = "x86_64"
		}
		if t, err := time.Parse(time.RFC3339, a.LastModified); err == nil {
			p.InstalledAt = t.UTC()
		}
		out = append(out, p)
	}
	return out
}

// parsePkgutilPkgs reads `pkgutil --pkgs`: one package id a line.
func parsePkgutilPkgs(data []byte) []string {
	var out []string
	for line := range strings.SplitSeq(string(data), "\n") {
		if id := strings.TrimSpace(line); id != "" {
			out = append(out, id)
		}
	}
	return out
}

// parsePkgInfo reads `pkgutil --pkg-info ID`:
//
//	package-id: com.apple.pkg.Core
//	version: 14.1.1.0.1.1699564814
//	volume: /
//	location: /
//	install-time: 1699566235
func parsePkgInfo(data []byte) (Package, error) {
	p := Package{Manager: "pkgutil", Status: "installed"}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ": ")
		if !ok {
			continue
		}
		switch key {
		case "package-id":
			p.Name = val
		case "version":
			p.Version = val
		case "location":
			p.Source = val
		case "install-time":
			if n, err := strconv.ParseInt(val, 10, 64); err == nil {
				p.InstalledAt = time.Unix(n, 0).UTC()
			}
		}
	}
	if p.Name == "" {
		return Package{}, fmt.Errorf("pkgutil --pkg-info: no package-id in %q", truncateText(data))
	}
	return p, nil
}

func truncateText(b []byte) string {
	if len(b) > 80 {
		return string(b[:77]) + "..."
	}
	return string(b)
}
