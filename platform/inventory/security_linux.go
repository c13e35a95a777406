package inventory

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

const efiGlobal = "8be4df61-93ca-11d2-aa0d-00e098032b8c"

func (s *scan) security(ctx context.Context) *Security {
	sec := &Security{ASLR: -1}
	const vdir = "/sys/devices/system/cpu/vulnerabilities"
	entries, err := os.ReadDir(s.path(vdir))
	if err != nil {
		sec.Unavailable = append(sec.Unavailable, Unavailable{Source: vdir, Reason: reason(err)})
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		data, u := s.read(filepath.Join(vdir, e.Name()))
		if u != nil {
			unavail(&sec.Unavailable, u)
			continue
		}
		text := strings.TrimSpace(string(data))
		sec.Vulnerabilities = append(sec.Vulnerabilities, Vulnerability{Name: e.Name(), Status: classifyVuln(text), Detail: text})
	}
	if v, ok := s.readTrim("/proc/sys/kernel/randomize_va_space"); ok {
		if n, err := strconv.Atoi(v); err == nil {
			sec.ASLR = n
		}
	} else {
		sec.Unavailable = append(sec.Unavailable, Unavailable{Source: "/proc/sys/kernel/randomize_va_space", Reason: "not present"})
	}
	sec.SecureBoot = s.secureBoot(&sec.Unavailable)
	return sec
}

// secureBoot reads the SecureBoot and SetupMode EFI variables.
func (s *scan) secureBoot(list *[]Unavailable) string {
	if !s.exists("/sys/firmware/efi") {
		*list = append(*list, Unavailable{Source: "secure boot", Reason: "not booted through EFI (/sys/firmware/efi missing)"})
		return ""
	}
	file := "/sys/firmware/efi/efivars/SecureBoot-" + efiGlobal
	data, u := s.read(file)
	if u != nil {
		unavail(list, u)
		return ""
	}
	on, err := parseEFIBool(data)
	if err != nil {
		*list = append(*list, Unavailable{Source: file, Reason: err.Error()})
		return ""
	}
	if setup, u := s.read("/sys/firmware/efi/efivars/SetupMode-" + efiGlobal); u == nil {
		if inSetup, err := parseEFIBool(setup); err == nil && inSetup {
			return "setup-mode"
		}
	}
	if on {
		return "enabled"
	}
	return "disabled"
}
