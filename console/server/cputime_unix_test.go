//go:build unix

package server

import (
	"syscall"
	"time"
)

// processCPU is the CPU time (user + system) this process used so far: on
// the shared machine, where wall-clock figures move with everyone's load,
// the ingest's CPU cost is the steadier figure.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
