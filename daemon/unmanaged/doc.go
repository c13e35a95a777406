// Package unmanaged is the site's view of the devices on its LAN that run
// no agent. Each node observes its LAN passively (platform/neighbor: the
// kernel's neighbour table on an interval, and the ARP, NDP, DHCP and mDNS
// frames its interfaces receive anyway), keeps what it saw within a cap and
// an expiry, and serves it compactly (wire.go) to the members of its site
// over the payload exchange's file protocol; every node fetches its
// members' sightings and lists the devices no member claims as its own
// (by the MACs and addresses of each member's inventory), with the vendor
// from the IEEE OUI registry. The active sweep (ARP requests to the
// directly attached IPv4 subnets, at a bounded rate, by the one member of
// the site rendezvous hashing picks) runs only where the signed policy
// enables it. See docs/UNMANAGED.md.
package unmanaged
