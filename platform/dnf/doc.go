// Package dnf is patchring's backend for RPM-family package management. It
// owns parsing what dnf prints, as pure functions over bytes that are
// tested on fixtures in dnf's formats and fuzzed:
//
//   - `dnf check-update`: the available updates (ParseCheckUpdate),
//     including dnf's wrapped columns and the "Obsoleting Packages" section;
//   - `dnf updateinfo list` (dnf 4) and `dnf advisory list` (dnf 5): which
//     package versions fix which advisory, of which type and severity
//     (ParseUpdateinfoList);
//   - `dnf updateinfo info`: an advisory's details, CVEs and bugs
//     (ParseUpdateinfoInfo);
//
// and joining updates with security advisories (Classify). A Backend runs
// the real dnf where it is installed (Linux); elsewhere New reports that
// dnf is unavailable.
package dnf
