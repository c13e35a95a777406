// Package gossip owns patchring's membership and fleet-state gossip on one
// LAN site: a hashicorp/memberlist pool (AES-GCM keyring, one label per
// fleet) wrapped the way Serf wraps it, carrying each node's signed state
// (ring, tags, libp2p addresses, policy version held, update and reboot
// summary, content index), a hint of the highest policy version heard, and an
// advisory reboot lease for headless hosts.
//
// Everything heard through gossip is a hint, never an instruction. Messages
// about a node are signed with that node's libp2p identity key (its node ID
// is its libp2p peer ID), so a fleet member can lie about itself but cannot
// speak for another member. Malformed, oversized, unsigned or stale input is
// counted, logged and dropped.
//
// See docs/GOSSIP.md for the protocol, key rotation and the lease's
// consistency limits.
package gossip
