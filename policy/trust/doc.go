// Package trust is the agent side of patchring's trust layer: it verifies
// the fleet's TUF metadata (go-tuf v2) from a root of trust installed with
// the agent, keeps the last verified state in its state directory, and
// downloads targets (the policy, catalog payloads) checked against the
// signed length and hashes.
//
// Bytes come from a chain of untrusted [Source]s tried in order (the origin
// over HTTP, later peers). The fetch layer owns what go-tuf leaves to it:
// a timeout per request, a minimum transfer rate, the length caps, and a
// correct 404. A 404 for the next root version from a source that is not the
// origin is believed only when the origin, or a second source, confirms it.
//
// Every refresh uses a fresh go-tuf Updater in a scratch directory seeded
// with the last good state; only a complete, verified result replaces that
// state (one atomic file). When a refresh fails the previous state stays in
// force and the error says why ([ErrExpired], [ErrRollback], ...).
package trust
