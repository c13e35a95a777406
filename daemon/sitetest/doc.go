// Package sitetest owns patchring's multi-process site tests and the WAN
// benchmark of payload sharing: real patchringd processes, each in its own
// network namespace on a site LAN bridge, behind a WAN link shaped with
// tc tbf to an origin namespace that serves the vendor's apt repository
// (indices and, through a redirect, a pool host standing for the vendor's
// CDN) and the fleet's signed (TUF) policy. Bytes that crossed the WAN are
// read from the link's interface counters and, per origin host, from a
// classifying qdisc on the site router.
//
// Nodes may be rpm-based (dnf sandboxes, the vendor's signed dnf
// repository behind the same WAN) and may belong to several sites (what
// their credentials name).
//
// The tests need root, iproute2 (ip, tc), apt and dpkg (and dnf, rpm and
// createrepo_c for the rpm nodes). Everything they
// create (namespaces, links, processes, files) is named per run and removed
// when the test ends, also on failure. The package has no code outside its
// tests.
package sitetest
