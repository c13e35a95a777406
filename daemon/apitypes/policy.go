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
	// Gates hold this node's ring until other rings did well with an
	// update.
	Gates        []GatePolicy       `json:"gates,omitempty"`
	Reboot       RebootPolicy       `json:"reboot"`
	Transactions TransactionsPolicy `json:"transactions"`
	Identity     Identity           `json:"identity"`
	// Restarts says which services an install restarts.
	Restarts RestartPolicy `json:"restart_services"`
	// Hooks are the commands run around a reboot.
	Hooks RebootHooksPolicy `json:"reboot_hooks,omitzero"`
}

// RestartPolicy is restart_services: Mode auto, notify or never, with the
// include and exclude globs.
type RestartPolicy struct {
	Mode    string   `json:"mode"`
	Include []string `json:"include,omitempty"`
	Exclude []string `json:"exclude,omitempty"`
}

// RebootHooksPolicy names the reboot hooks (argv and timeout of each).
type RebootHooksPolicy struct {
	PreReboot   []string `json:"pre_reboot,omitempty"`
	PreTimeout  string   `json:"pre_timeout,omitempty"`
	PostReboot  []string `json:"post_reboot,omitempty"`
	PostTimeout string   `json:"post_timeout,omitempty"`
}

// GatePolicy is one gate of this node's ring: Ring must show MinSuccess
// percent success over at least MinNodes reports; with fewer reports the
// gate waits (TooFewReports "wait") or opens OpenAfter past the update's
// first sighting ("open").
type GatePolicy struct {
	Ring          string  `json:"ring"`
	MinSuccess    float64 `json:"min_success"`
	MinNodes      int     `json:"min_nodes"`
	TooFewReports string  `json:"too_few_reports"`
	OpenAfter     string  `json:"open_after,omitempty"`
	// Scope is "fleet" when the gate counts every site (the console's
	// signed fleet status); empty: the node's own site.
	Scope string `json:"scope,omitempty"`
}

// TransactionsPolicy says what an install transaction may do besides
// upgrading and adding packages: remove packages matching AllowRemove,
// change packages matching WithoutRollback without a payload to roll back
// to.
type TransactionsPolicy struct {
	AllowRemove     []string `json:"allow_remove,omitempty"`
	WithoutRollback []string `json:"without_rollback,omitempty"`
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
	// UserRestart is who besides root and the admin group may restart on
	// demand: "session" (the user of an active local session) or "none".
	UserRestart string `json:"user_restart,omitempty"`
}

// BundleImportRequest asks the agent to import an offline bundle (admin).
type BundleImportRequest struct {
	Path string `json:"path"` // absolute; the agent reads it
}

// BundleImport is what an import did.
type BundleImport struct {
	Path          string `json:"path"`
	Files         int    `json:"files"`
	PolicyVersion string `json:"policy_version,omitempty"`
	Policy        string `json:"policy,omitempty"`
	Payloads      int    `json:"payloads"`
	// AdvisoryDB: the signed advisory database went into the content
	// store (the bundle's metadata names one).
	AdvisoryDB bool `json:"advisory_db,omitempty"`
	// AptFiles is the number of files of the pinned apt snapshot (Release
	// files, indices, packages) put into the content store, and
	// AptReleases the Release files the apt proxy took as current.
	AptFiles    int      `json:"apt_files,omitempty"`
	AptReleases int      `json:"apt_releases,omitempty"`
	Skipped     []string `json:"skipped,omitempty"`
}

// Identity is this node's fleet credential as the agent checked it against
// the verified fleet document (part of GET /v1/policy and `patchring
// status`).
type Identity struct {
	// Enforced: the repository publishes a fleet document, so members need
	// credentials and site and tags come from them. Without one, the gossip
	// key alone admits (the transition) and site and tags come from the
	// local configuration.
	Enforced bool      `json:"enforced"`
	Site     string    `json:"site,omitempty"`
	Tags     []string  `json:"tags,omitempty"`
	Hostname string    `json:"hostname,omitempty"`
	Serial   uint64    `json:"serial,omitempty"`
	Expires  time.Time `json:"expires,omitzero"`
	// Problem is "" for a valid credential, else "missing", "expired",
	// "revoked", "not yet valid", "invalid" with Detail saying why.
	Problem string `json:"problem,omitempty"`
	Detail  string `json:"detail,omitempty"`
}
