package detach

import (
	"os"
	"strconv"
	"strings"
)

// sessionLeader reports whether pid runs and leads its own session, as a
// job this package started does (a reused PID almost never does).
func sessionLeader(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// pid (comm) state ppid pgrp session ...; comm may hold spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return false
	}
	f := strings.Fields(s[i+1:])
	return len(f) > 3 && f[3] == strconv.Itoa(pid)
}
