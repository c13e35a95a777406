package main

import "os"

// serviceInstalled reports whether an init script or unit for patchringd
// exists, to read the service manager's status answers correctly.
func serviceInstalled() bool {
	for _, p := range []string{"/etc/init.d/" + serviceName, "/etc/systemd/system/" + serviceName + ".service"} {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
}
