package reboot

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

func defaultArgv(_ Options, message string) []string {
	argv := []string{"shutdown", "-r", "now"}
	if message != "" {
		argv = append(argv, message)
	}
	return argv
}

// BootTime returns when the machine booted (sysctl kern.boottime).
func BootTime() (time.Time, error) {
	tv, err := unix.SysctlTimeval("kern.boottime")
	if err != nil {
		return time.Time{}, fmt.Errorf("boot time: sysctl kern.boottime: %w", err)
	}
	return time.Unix(tv.Unix()), nil
}
