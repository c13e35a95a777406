//go:build unix

package vulns

import (
	"syscall"
	"time"
)

// processCPU is the CPU time (user + system) the test process used so far:
// on a shared machine it measures the match's cost where wall time measures
// the machine's load too.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
