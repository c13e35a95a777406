// Package neighbor observes the devices on this node's LAN: it reads the
// kernel's neighbour table (netlink RTM_GETNEIGH: IPv4 ARP and IPv6 NDP
// entries), listens, receive only, to the ARP, NDP, DHCP, mDNS and other
// IP frames the node's interfaces receive anyway (a packet socket, no
// promiscuous mode), and sends ARP requests for an active sweep when the
// caller asks for one.
//
// The frame and netlink parsers (ParseFrame, ParseNeighbors) are pure and
// portable, and fuzzed: captured frames are untrusted input. The sockets
// are Linux only (files *_linux.go); elsewhere Neighbors, Listen and
// NewProber return ErrUnsupported.
package neighbor
