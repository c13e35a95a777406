// Package policy owns patchring's ring policy and catalog metadata: the
// schema admins write (YAML) and sign (canonical JSON), its validation with
// errors that name file, line, column and field, and the pure evaluation that
// turns a policy, a node's facts, the updates it sees and the fleet's progress
// at a given time into per-update decisions with reasons.
//
// Nothing in this package reads the clock, the file system or the network:
// callers pass the time, the bytes and the facts in. The TUF layer that signs
// and verifies policies lives in policy/tuf.
//
// A *Policy is usable only after Parse, ParseJSON or Validate succeeded on it;
// Evaluate and the window helpers rely on the schedules, time zones and
// patterns that validation compiles.
package policy
