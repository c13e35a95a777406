package discovery

import "syscall"

// setSockopts lets the socket send to broadcast addresses and share its
// port with another listener on the host (with SO_REUSEADDR, Linux
// delivers a broadcast to every socket bound to the port; SO_REUSEPORT
// would instead spread unicast datagrams among them).
func setSockopts(fd uintptr) error {
	for _, opt := range []int{syscall.SO_BROADCAST, syscall.SO_REUSEADDR} {
		if err := syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, opt, 1); err != nil {
			return err
		}
	}
	return nil
}
