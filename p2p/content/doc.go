// Package content owns patchring's content-addressed store: payload bytes on
// disk keyed by their SHA-256.
//
// Bytes enter the store only through its download area (staging/): Put streams
// a payload into a staging file, verifies size and hash against the values the
// caller took from signed metadata, fsyncs the file, renames it into blobs/ and
// fsyncs the directory. Writer does the same for payloads assembled piece by
// piece from several peers, and can be resumed after an interruption. A reader
// therefore never sees unverified bytes under a hash.
//
// The store keeps its size under Options.MaxBytes by evicting the least
// recently used blobs, never one that is pinned (a pending transaction, a
// rollback window) or open for reading.
//
// Layout of the store directory:
//
//	blobs/<sha256 hex>          verified payloads
//	staging/put-*.tmp           Put in progress (removed at Open: crash leftovers)
//	staging/<sha256 hex>.part   piecewise download in progress (Writer)
//	staging/<sha256 hex>.state  its checkpointed piece list (JSON)
//	pins.json                   pins, written atomically
//
// Partial downloads whose state file is valid and younger than
// Options.PartialTTL survive a restart so that a download resumes; every other
// leftover in staging/ is removed by Open.
package content
