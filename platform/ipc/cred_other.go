//go:build !linux && !darwin

package ipc

import (
	"fmt"
	"net"
)

// PeerCred is not available on this OS: the local API then treats every
// client as an unprivileged reader.
func PeerCred(c net.Conn) (Cred, error) {
	return Cred{}, fmt.Errorf("peer credentials: %w", ErrNoCred)
}
