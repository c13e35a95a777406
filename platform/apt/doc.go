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
// Parsers of the tools' output are pure functions over bytes, tested on
// output recorded from real Debian hosts (testdata) and fuzzed. The package
// does not journal, decide or roll back by itself: the update engine in
// daemon/ does that on top of this API.
package apt
