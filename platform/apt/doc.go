// Package apt is patchring's backend for Debian-family package management.
// It drives the real apt-get, apt-cache, apt-mark, dpkg and dpkg-query,
// either against the host or against a sandboxed root (see Options and the
// apttest package), and owns:
//
//   - discovery: refreshing the indices and listing upgradable packages with
//     their origin, archive, security classification and the payload URI,
//     size and SHA256 that apt verified from the signed indices;
//   - installation: placing already-verified payloads where apt uses them
//     without downloading again, installing exact versions non-interactively,
//     downgrading for rollbacks, finishing interrupted dpkg runs;
//   - state: installed versions, dpkg's audit, the dpkg frontend lock and who
//     holds it, free disk space and the reboot-required flag.
//
// A Backend made with New(ctx, Options{}) drives the host; with
// Options{AptConfig: sandbox.AptConfig} (see apttest.Sandbox) the same code
// drives a sandboxed root, because the backend reads its paths and dpkg's
// options back from apt-config.
//
// The update engine's path through the API: Refresh; Upgradable (or
// Candidate for a specific version) gives the payload's URI, size and
// SHA256 from the indices apt verified; the engine fetches and verifies the
// payload, then WaitLock, FreeSpace, Place and Install with NoDownload (and
// AllowDowngrades for a rollback); InstalledVersion confirms the result.
//
// Recovering from a failed maintainer script: Install returns an
// *InstallError whose Failed and Output name the package and show dpkg's
// messages; InstalledVersion then reports ErrNotConfigured and Audit lists
// the package. Once the cause is fixed (in the tests, the file the postinst
// checks is removed), ConfigurePending (dpkg --configure -a) finishes the
// configuration. Alternatively, Install of the previous version with
// AllowDowngrades unpacks it over the broken one and configures it, which
// works when the previous version's own scripts succeed. After a crash,
// call ConfigurePending before anything else.
//
// State is read from files where that is exact, because the engine asks
// often: installed versions come from dpkg's database read in-process
// (platform/dpkgstatus, as dpkg-query -W sees it), and Upgradable's answer
// is kept until dpkg's database or apt's configuration, sources,
// preferences or lists change (memo_linux.go). Both were a process per
// question before, and those processes were most of an agent's CPU.
//
// Parsers of the tools' output are pure functions over bytes, tested on
// output recorded from real Debian hosts (testdata) and fuzzed. The package
// does not journal, decide or roll back by itself: the update engine in
// daemon/ does that on top of this API.
package apt
