package apitypes

import "time"

// EffectivePolicy is the signed policy as it applies to this node.
type EffectivePolicy struct {
	Version          string       `json:"version,omitempty"`
	Name             string       `json:"name,omitempty"`
	Expires          time.Time    `json:"expires,omitzero"`
	Expired          bool         `json:"expired"`
	MetadataExpires  time.Time    `json:"metadata_expires,omitzero"`
	TimestampVersion int64        `json:"timestamp_version,omitempty"`
	Source           string       `json:"source,omitempty"`
	Verified         time.Time    `json:"verified,omitzero"`
	LastTry          time.Time    `json:"last_try,omitzero"`
	LastError        string       `json:"last_error,omitempty"`
	Ring             string       `json:"ring,omitempty"`
	RingWhy          string       `json:"ring_why,omitempty"`
	Defer            string       `json:"defer,omitempty"`
	NextWindows      []WindowTime `json:"next_windows,omitempty"`
	Reboot           RebootPolicy `json:"reboot"`
}

// WindowTime is one upcoming maintenance window.
type WindowTime struct {
	Name  string    `json:"name"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// RebootPolicy is the reboot rules for this node.
type RebootPolicy struct {
	NotifyAhead  string   `json:"notify_ahead,omitempty"`
	DeferChoices []string `json:"defer_choices,omitempty"`
	MaxDeferrals int      `json:"max_deferrals"`
	AllowRefuse  bool     `json:"allow_refuse"`
	Deadline     string   `json:"deadline,omitempty"`
	Grace        string   `json:"grace,omitempty"`
}

// BundleImportRequest asks the agent to import an offline bundle (admin).
type BundleImportRequest struct {
	Path string `json:"path"` // absolute; the agent reads it
}

// BundleImport is what an import did.
type BundleImport struct {
	Path          string   `json:"path"`
	Files         int      `json:"files"`
	PolicyVersion string   `json:"policy_version,omitempty"`
	Policy        string   `json:"policy,omitempty"`
	Payloads      int      `json:"payloads"`
	Skipped       []string `json:"skipped,omitempty"`
}
