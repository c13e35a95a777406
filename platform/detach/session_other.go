//go:build !linux && !windows

package detach

import "syscall"

// sessionLeader reports whether pid runs and leads its own session, as a
// job this package started does.
func sessionLeader(pid int) bool {
	sid, err := syscall.Getsid(pid)
	return err == nil && sid == pid
}
