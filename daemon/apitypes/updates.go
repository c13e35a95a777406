package apitypes

import "time"

// UpdateDecision is one applicable update and what the policy decided.
type UpdateDecision struct {
	Source         string    `json:"source"`
	Package        string    `json:"package"`
	Version        string    `json:"version"`
	Installed      string    `json:"installed,omitempty"`
	Classification string    `json:"classification,omitempty"`
	FirstSeen      time.Time `json:"first_seen,omitzero"`
	Ring           string    `json:"ring,omitempty"`
	Action         string    `json:"action"`
	At             time.Time `json:"at,omitzero"`
	Reason         string    `json:"reason"`
	Rule           string    `json:"rule,omitempty"`
}

// Updates is the answer of GET /v1/updates.
type Updates struct {
	Planned time.Time        `json:"planned,omitzero"`
	Updates []UpdateDecision `json:"updates"`
}

// Transaction is one journaled install or rollback.
type Transaction struct {
	ID             uint64    `json:"id"`
	Kind           string    `json:"kind"`
	Items          []TxItem  `json:"items"`
	Reason         string    `json:"reason"`
	PolicyVersion  string    `json:"policy_version,omitempty"`
	Started        time.Time `json:"started"`
	Ended          time.Time `json:"ended,omitzero"`
	Outcome        string    `json:"outcome,omitempty"`
	Error          string    `json:"error,omitempty"`
	Steps          []TxStep  `json:"steps"`
	RolledBackBy   uint64    `json:"rolled_back_by,omitempty"`
	RebootRequired bool      `json:"reboot_required,omitempty"`
	// Batch is the failed batch transaction this one isolates a part of.
	Batch uint64 `json:"batch,omitempty"`
	// Restarted lists the services restarted after the install ("food
	// (sysv): restarted"), Stale the processes left running replaced
	// code, RebootReasons why the reboot is required.
	Restarted     []string `json:"restarted,omitempty"`
	Stale         []string `json:"stale,omitempty"`
	RebootReasons []string `json:"reboot_reasons,omitempty"`
}

// TxItem is one package a transaction changes.
type TxItem struct {
	Source  string `json:"source"`
	Package string `json:"package"`
	From    string `json:"from"` // "" when the transaction adds the package
	To      string `json:"to"`   // "" when the transaction removes it
	SHA256  string `json:"sha256,omitempty"`
	// Action is upgrade, downgrade, install (added) or remove; empty for
	// transactions journaled before whole transactions.
	Action string `json:"action,omitempty"`
	// Requested is true for the updates asked for; false for what apt's
	// solver added.
	Requested bool `json:"requested,omitempty"`
	// Result is where the package ended: installed, removed, restored,
	// unchanged or stuck (neither old nor new; Now says where).
	Result string `json:"result,omitempty"`
	Now    string `json:"now,omitempty"`
}

// TxStep is one journal entry.
type TxStep struct {
	Name   string    `json:"name"`
	At     time.Time `json:"at"`
	Status string    `json:"status"`
	Detail string    `json:"detail,omitempty"`
}

// InstallRequest asks for an update to be installed now (admin).
type InstallRequest struct {
	Package string `json:"package"`
	Version string `json:"version,omitempty"`
}

// RollbackRequest asks for a transaction to be rolled back (admin).
type RollbackRequest struct {
	ID     uint64 `json:"id"`
	Reason string `json:"reason,omitempty"`
}
