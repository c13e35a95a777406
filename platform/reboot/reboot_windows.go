package reboot

import (
	"time"

	"golang.org/x/sys/windows"
)

func defaultArgv(_ Options, message string) []string {
	argv := []string{"shutdown", "/r", "/t", "0"}
	if message != "" {
		argv = append(argv, "/c", message)
	}
	return argv
}

// BootTime returns when the machine booted: now minus the time since boot.
func BootTime() (time.Time, error) {
	return time.Now().Add(-windows.DurationSinceBoot()).Truncate(time.Second), nil
}
