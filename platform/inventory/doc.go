// Package inventory owns what an endpoint knows about itself: one Collect
// call takes a Snapshot of the operating system, hardware, network,
// installed packages, reboot and restart needs and security posture, from
// the real sources of each OS (files under /proc, /sys and /etc, the dpkg
// database, rpm, the Windows registry, pkgutil and system_profiler).
//
// A missing or unreadable source never fails a scan: the section records
// it in its Unavailable list with a reason. Diff tells what changed
// between two snapshots and Digest condenses one for gossip.
//
// The package is platform code: collectors live in files with an OS
// suffix; the parsers they use are portable and tested on recorded output.
package inventory
