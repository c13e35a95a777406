//go:build !unix

package reboot

// consoleOwner knows no console on this platform: only root and the admin
// group restart on demand.
func consoleOwner(dev string, uid int) (bool, string, error) { return false, "", nil }
