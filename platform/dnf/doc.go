// Package dnf is patchring's backend for RPM-family package management. It
// owns parsing what dnf prints, as pure functions over bytes that are
// tested on fixtures in dnf's formats and fuzzed:
//
//   - `dnf check-update`: the available updates (ParseCheckUpdate),
//     including dnf's wrapped columns and the "Obsoleting Packages" section;
//
//   - `dnf updateinfo list` (dnf 4) and `dnf advisory list` (dnf 5): which
//     package versions fix which advisory, of which type and severity
//     (ParseUpdateinfoList);
//
//   - `dnf updateinfo info`: an advisory's details, CVEs and bugs
//     (ParseUpdateinfoInfo);
//
//   - `dnf --assumeno install|remove`: the transaction table, what a
//     transaction would change (ParseTransaction);
//
//   - a repository's repomd.xml and primary metadata (ParseRepomd,
//     ParsePrimary): the size and SHA-256 of each package file, vouched
//     for by the signed repomd.xml;
//
//   - rpm queries (ParseRPMQuery) and `dnf needs-restarting -r`;
//
// and joining updates with security advisories (Classify). A Backend runs
// the real dnf and rpm where they are installed (Linux), on the running
// system or an installroot (Options.Root): refresh, upgradable updates
// with their advisories, verified payloads (Payloads), placing verified
// files (Place) and installing, upgrading and downgrading from them in
// one dnf transaction (Apply), simulating (Simulate), rpm's lock
// (WaitLock), free space, interrupted transactions (Duplicates) and
// needs-restarting. A failing scriptlet, which rpm and dnf let pass, is an
// error (ScriptletError). Elsewhere New reports that dnf is unavailable.
package dnf
