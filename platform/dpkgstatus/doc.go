// Package dpkgstatus owns reading dpkg's package database: the status file
// (/var/lib/dpkg/status) and the journal of not yet merged updates next to
// it (/var/lib/dpkg/updates/NNNN), parsed directly and fast.
//
// The parser works on a []byte, allocates a constant number of times per
// call (not per package): every string it returns is a slice of one arena
// holding only the fields it keeps, and repeated values (architectures,
// status triples) are interned. It never panics on malformed input and
// names the line of the first problem.
package dpkgstatus
