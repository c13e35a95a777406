// Package tufrepo is the admin side of patchring's trust layer: it creates and
// maintains the fleet's TUF repository (root, targets, snapshot and timestamp
// metadata with consistent snapshots) and its ed25519 signing keys.
//
// The repository is a directory any static web server can serve:
//
//	DIR/metadata/N.root.json, root.json        every root version, and the latest
//	DIR/metadata/N.targets.json, targets.json  versioned targets, and the latest
//	DIR/metadata/N.snapshot.json, snapshot.json
//	DIR/metadata/timestamp.json                the only unversioned entry point
//	DIR/targets/<dir>/<sha256>.<name>          hash-prefixed target files
//	DIR/patchring-repo.json                    admin settings (expiry per role)
//
// Keys live in a separate directory (never inside DIR), one 0600 file per
// key, optionally encrypted with a passphrase (scrypt + NaCl secretbox). The
// policy document is the opaque target "policy.json"; catalog payloads are
// targets under "catalog/<package>/<version>/<file>" whose custom metadata
// is a [CatalogMeta].
//
// Every change is signed in memory first, then written file by file
// (payloads, targets, snapshot, timestamp last) with fsync and rename, so a
// crash leaves the previously published state served.
package tufrepo
