// Package discovery owns LAN discovery of a site's gossip pool: a beacon
// that broadcasts this node's gossip address on the site's subnet (UDP,
// port 7947 by default, at start and every 5 to 10 s) and hands the
// addresses it hears to the gossip pool as candidate seeds.
//
// A beacon is authenticated with HMAC-SHA256 under a key derived from the
// fleet's gossip key and label, carries the sender's time (beacons further
// than a minute from ours, or not newer than the sender's last one, are
// dropped) and is accepted only from the site's subnets. It is a hint,
// never membership: whoever is offered still has to pass memberlist's
// AES-GCM keyring to join. Malformed, oversized, unauthenticated, stale,
// replayed and foreign datagrams are counted (Stats) and dropped.
//
// See docs/GOSSIP.md for the datagram format and its limits.
package discovery
