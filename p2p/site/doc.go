// Package site owns patchring's site coordination: for a payload several
// nodes of a site (one LAN) need, exactly one of them, chosen by rendezvous
// (highest random weight) hashing over the live members of the site, fetches
// it over the WAN; the others wait for it to appear on the LAN and fetch it
// from peers, with a timeout fallback to the origin. If the chosen node
// leaves the member list, the next one in rendezvous order takes over.
//
// The package knows nothing of memberlist or libp2p: the daemon passes the
// live members and the holders of a payload as functions, and the fetching
// as a Fetcher.
package site
