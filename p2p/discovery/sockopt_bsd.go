//go:build darwin || dragonfly || freebsd || netbsd || openbsd

package discovery

import "syscall"

// setSockopts lets the socket send to broadcast addresses and share its
// port with another listener on the host (BSD and macOS need SO_REUSEPORT
// for several sockets on one UDP port to all receive broadcasts).
func setSockopts(fd uintptr) error {
	for _, opt := range []int{syscall.SO_BROADCAST, syscall.SO_REUSEADDR, syscall.SO_REUSEPORT} {
		if err := syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, opt, 1); err != nil {
			return err
		}
	}
	return nil
}
