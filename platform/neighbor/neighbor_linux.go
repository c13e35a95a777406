package neighbor

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// Neighbors dumps the kernel's neighbour table (IPv4 and IPv6) over
// netlink. Nothing goes on the network: the request goes to the kernel.
func Neighbors(ctx context.Context) ([]Observation, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("neighbour table: socket: %w", err)
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval(int64(2 * time.Second))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return nil, fmt.Errorf("neighbour table: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("neighbour table: bind: %w", err)
	}
	seq := uint32(time.Now().UnixNano())
	if err := unix.Sendto(fd, neighDumpRequest(seq), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("neighbour table: request: %w", err)
	}
	buf := make([]byte, 64<<10)
	var out []Observation
	for range 10000 {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("neighbour table: %w", err)
		}
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return nil, fmt.Errorf("neighbour table: receive: %w", err)
		}
		if n >= nlmsgHdrLen && binary.NativeEndian.Uint32(buf[8:12]) != seq {
			continue // not our dump
		}
		obs, done, err := ParseNeighbors(buf[:n])
		if err != nil {
			return nil, fmt.Errorf("neighbour table: %w", err)
		}
		out = append(out, obs...)
		if done {
			return out, nil
		}
	}
	return nil, fmt.Errorf("neighbour table: dump did not end")
}
