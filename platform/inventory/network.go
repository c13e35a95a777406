package inventory

import (
	"context"
	"net"
	"slices"
)

// network lists the running system's interfaces (Go's net package reads
// them from the kernel: netlink on Linux, the routing socket on BSDs and
// macOS, GetAdaptersAddresses on Windows) and the default routes.
func (s *scan) network(ctx context.Context) *Network {
	n := &Network{}
	if !s.live() {
		n.Unavailable = append(n.Unavailable, Unavailable{Source: "interfaces", Reason: "only the running system's interfaces can be listed (Root is " + s.root + ")"})
	} else if ifs, err := net.Interfaces(); err != nil {
		n.Unavailable = append(n.Unavailable, Unavailable{Source: "interfaces", Reason: err.Error()})
	} else {
		for _, ifc := range ifs {
			i := Interface{
				Name: ifc.Name, Index: ifc.Index, MTU: ifc.MTU,
				MAC:      ifc.HardwareAddr.String(),
				Up:       ifc.Flags&net.FlagUp != 0,
				Loopback: ifc.Flags&net.FlagLoopback != 0,
			}
			addrs, err := ifc.Addrs()
			if err != nil {
				n.Unavailable = append(n.Unavailable, Unavailable{Source: "addresses of " + ifc.Name, Reason: err.Error()})
			}
			for _, a := range addrs {
				i.Addresses = append(i.Addresses, a.String())
			}
			slices.Sort(i.Addresses)
			n.Interfaces = append(n.Interfaces, i)
		}
	}
	n.DefaultRoutes = s.defaultRoutes(&n.Unavailable)
	return n
}
