package discovery

import "syscall"

// setSockopts lets the socket send to broadcast addresses. Windows'
// SO_REUSEADDR would let any process take the port over, so it is not set:
// one beacon per host.
func setSockopts(fd uintptr) error {
	return syscall.SetsockoptInt(syscall.Handle(fd), syscall.SOL_SOCKET, syscall.SO_BROADCAST, 1)
}
