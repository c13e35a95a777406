// Package apttest is the harness for driving the real apt-get, apt-cache,
// dpkg and dpkg-query in sandboxed roots, shared by tests and the demo.
// It owns:
//
//   - building real .deb files with nfpm (BuildDeb): name, version with
//     epoch and revision, architecture, relations, files, conffiles and
//     maintainer scripts, including a postinst that fails on demand;
//   - publishing a real apt repository over HTTP on 127.0.0.1 (Repo):
//     pool/, Packages(.gz) and a Release file with MD5Sum and SHA256 sections,
//     with a configurable Origin, Label, Suite and Codename so that a
//     repository can look like Debian's bookworm-security;
//   - a sandbox root (Sandbox): a temporary directory laid out like a Debian
//     system's package state and an APT_CONFIG file that points apt and dpkg
//     at it, so that real installs, upgrades and downgrades run without
//     touching the host;
//   - holding the dpkg lock from a real dpkg process (HoldLock) and checking
//     that the host's package database was not touched (SnapshotHostDB).
//
// The package does not import "testing": constructors return values with a
// Close method, and the Must* variants take the small TB interface that
// *testing.T, *testing.B and *testing.F satisfy and register their cleanup
// with it.
package apttest

// TB is the part of testing.TB the harness uses.
type TB interface {
	Helper()
	Cleanup(func())
	Fatalf(format string, args ...any)
}
