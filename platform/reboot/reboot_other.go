//go:build !linux && !windows && !darwin

package reboot

import (
	"errors"
	"time"
)

func defaultArgv(_ Options, message string) []string {
	argv := []string{"shutdown", "-r", "now"}
	if message != "" {
		argv = append(argv, message)
	}
	return argv
}

// BootTime is not known on this OS.
func BootTime() (time.Time, error) {
	return time.Time{}, errors.New("boot time: not supported on this OS")
}
