// Package apitypes holds the request and response types of patchringd's
// local API. It depends on the standard library only, so the CLI and the
// tray can import it without pulling in the daemon.
package apitypes

import "time"

// APIVersion is the prefix of every route of the local API.
const APIVersion = "/v1"

// Error is the JSON body of every failed local API call.
type Error struct {
	// Error says what went wrong, for a human.
	Error string `json:"error"`
	// Code is a stable machine-readable reason, e.g. "access-denied".
	Code string `json:"code,omitempty"`
}

// Error codes the client turns back into typed errors.
const (
	CodeAccessDenied = "access-denied"
	CodeNotFound     = "not-found"
	CodeBadRequest   = "bad-request"
	CodeConflict     = "conflict"
	CodeInternal     = "internal"
	CodeUnavailable  = "unavailable"
	// CodeTooMany: the caller holds too many connections or streams.
	CodeTooMany = "too-many"
)

// Status is the answer of GET /v1/status: the node and one section per
// subsystem.
type Status struct {
	NodeID    string    `json:"node_id"`
	Hostname  string    `json:"hostname"`
	Version   string    `json:"version"`
	Started   time.Time `json:"started"`
	Uptime    Duration  `json:"uptime"`
	StateDir  string    `json:"state_dir"`
	Socket    string    `json:"socket"`
	StartedAt int       `json:"start_count"` // how many times this state dir has been started
	// Caller describes how the daemon sees the client: its uid and what it
	// may do.
	Caller     Caller            `json:"caller"`
	Subsystems []SubsystemStatus `json:"subsystems"`
}

// Caller is the identity of a local API client as the server sees it.
type Caller struct {
	UID   int    `json:"uid"`
	Admin bool   `json:"admin"`
	Can   string `json:"can"` // "read-write" or "read"
}

// SubsystemStatus is one section of the status: inventory, policy, engine,
// gossip, reboot...
type SubsystemStatus struct {
	Name    string            `json:"name"`
	State   string            `json:"state"` // e.g. "ok", "degraded", "error", "off"
	Summary string            `json:"summary"`
	Details map[string]string `json:"details,omitempty"`
}

// Duration is a time.Duration that marshals as a Go duration string.
type Duration time.Duration

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) {
	return []byte(time.Duration(d).String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}
