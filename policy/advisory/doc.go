// Package advisory owns patchring's vulnerability intelligence data: it
// parses advisories in the OSV format (https://ossf.github.io/osv-schema/,
// as osv.dev publishes them per ecosystem: Debian's DSA, DLA and DEBIAN-CVE
// records, the rpm distributions' records) and CISA's Known Exploited
// Vulnerabilities catalog (JSON), builds from them a compact, versioned
// advisory database per ecosystem and release (source package -> affected
// ranges, aliases, severity, KEV flag; withdrawn records dropped), computes
// and applies deltas between two versions of it, and matches a node's
// installed packages against it with the package manager's own version
// rules (platform/vercmp).
//
// The database and its deltas are published as TUF targets by the admin's
// tools (policy/tufrepo) and verified by the agent like every other target;
// nothing in this package trusts its input: every parser returns an error
// naming the record and field it refused.
package advisory
