package policy

import (
	"path"
	"time"

	"github.com/robfig/cron/v3"
)

// SchemaVersion is the only policy schema this package reads and writes.
const SchemaVersion = 1

// Sources of updates, used by Update.Source and auto_approve rules.
const (
	SourceApt     = "apt"     // OS vendor packages through apt
	SourceCatalog = "catalog" // third-party payloads from the signed catalog
	SourceDnf     = "dnf"     // OS vendor packages through dnf (RPM-based systems)
)

// Classifications of updates.
const (
	ClassSecurity    = "security"
	ClassBugfix      = "bugfix"
	ClassEnhancement = "enhancement"
	ClassOther       = "other"
)

// Severities of updates, lowest first. An empty severity counts as unknown.
const (
	SeverityUnknown  = "unknown"
	SeverityLow      = "low"
	SeverityMedium   = "medium"
	SeverityHigh     = "high"
	SeverityCritical = "critical"
)

var (
	sources         = []string{SourceApt, SourceCatalog, SourceDnf}
	classifications = []string{ClassSecurity, ClassBugfix, ClassEnhancement, ClassOther}
	severities      = []string{SeverityUnknown, SeverityLow, SeverityMedium, SeverityHigh, SeverityCritical}
)

// severityRank orders severities; unknown values rank with "unknown".
func severityRank(s string) int {
	for i, v := range severities {
		if v == s {
			return i
		}
	}
	return 0
}

// MaxPause is the longest a ring may be paused by one pauses entry; a longer
// pause has to be renewed by publishing a new policy.
const MaxPause = 35 * 24 * time.Hour

// Window actions.
const (
	WindowAllow = "allow" // installs may run only inside allow windows (if a ring has any)
	WindowBlock = "block" // installs never run inside a block window
)

// Policy is a whole ring policy. Field names in YAML and JSON are the json
// tags. Build one with Parse or ParseJSON; a Policy built in Go must pass
// Validate before it is evaluated.
type Policy struct {
	Schema  int       `json:"schema"`
	Name    string    `json:"name,omitempty"`
	Expires time.Time `json:"expires"` // after this, agents install nothing

	Rings   []Ring   `json:"rings"`
	Windows []Window `json:"windows,omitempty"`

	AutoApprove []AutoApproval `json:"auto_approve,omitempty"`
	Approve     []Approval     `json:"approve,omitempty"`
	Deny        []Approval     `json:"deny,omitempty"`
	Pins        []Pin          `json:"pins,omitempty"`
	Expedite    []Expedite     `json:"expedite,omitempty"`
	Pauses      []Pause        `json:"pauses,omitempty"`
	Rollbacks   []Rollback     `json:"rollbacks,omitempty"`

	Reboot      Reboot       `json:"reboot"`
	PeerSharing PeerSharing  `json:"peer_sharing"`
	HealthCheck *HealthCheck `json:"health_check,omitempty"`
	// Transactions limits what an install transaction may do besides
	// installing the approved versions.
	Transactions Transactions `json:"transactions,omitzero"`
	// Console is the fleet console sites report to (none: they do not
	// report). It is here, in the signed policy, so that nobody who can
	// edit a node's local files can redirect its reports.
	Console *Console `json:"console,omitempty"`
	// SelfUpdate governs updates of the agent's own package.
	SelfUpdate SelfUpdate `json:"self_update,omitzero"`

	valid bool // set by Validate once the compiled fields below are ready
}

// Ring is a named stage of the rollout. Rings are listed in rollout order; a
// node joins the first ring one of whose selectors matches it, else the
// default ring.
type Ring struct {
	Name        string          `json:"name"`
	Default     bool            `json:"default,omitempty"`
	Select      []Selector      `json:"select,omitempty"`
	Defer       Duration        `json:"defer"`              // wait this long after an update was first seen
	Deadline    Duration        `json:"deadline,omitempty"` // after this long since first seen, install outside allow windows too (0: never)
	Gates       []Gate          `json:"gates,omitempty"`
	Reboot      *RebootOverride `json:"reboot,omitempty"`
	HealthCheck *HealthCheck    `json:"health_check,omitempty"`
}

// Selector matches nodes; every field that is set must match (tags: the node
// has all of them). At least one field is set.
type Selector struct {
	Tags     []string `json:"tags,omitempty"`
	Hostname string   `json:"hostname,omitempty"` // glob, e.g. "lab-*"
	Site     string   `json:"site,omitempty"`     // glob
	// Percent selects nodes whose stable bucket (a hash of the node ID) is
	// below this share of all nodes, 0 < Percent <= 100, two decimals.
	Percent float64 `json:"percent,omitempty"`
}

// Gate holds a ring back until another ring did well with the same update:
// at least MinNodes nodes of Ring reported (succeeded or failed) and at least
// MinSuccess percent of those succeeded.
//
// While fewer than MinNodes reports have arrived (the gated ring is small,
// slow, or has no member on the node's site) the gate does what
// TooFewReports says: TooFewReportsWait (the default) holds the ring until
// enough reports arrive; TooFewReportsOpen opens it once OpenAfter has
// passed since the update was first seen, unless a report that did arrive
// was a failure that keeps the success rate below MinSuccess. A gate with
// enough reports never opens by time.
type Gate struct {
	Ring          string   `json:"ring"`
	MinSuccess    float64  `json:"min_success"`               // percent, 0..100
	MinNodes      int      `json:"min_nodes"`                 // reports needed, >= 1
	TooFewReports string   `json:"too_few_reports,omitempty"` // wait (default) or open
	OpenAfter     Duration `json:"open_after,omitempty"`      // with too_few_reports: open, since first seen
}

// Values of Gate.TooFewReports.
const (
	TooFewReportsWait = "wait"
	TooFewReportsOpen = "open"
)

// Window is a recurring maintenance window: it opens at every match of Cron
// (5 fields, minute resolution, wall-clock time in TZ) and stays open for
// Duration. Allow windows are the only times installs may run in the rings
// they name (all rings when Rings is empty); block windows stop installs.
//
// Daylight saving time: a start that falls in a skipped hour moves forward by
// the length of the gap (02:30 on a spring-forward night opens at 03:30); a
// start that occurs twice opens once, at the first occurrence. Duration is
// elapsed time.
type Window struct {
	Name     string   `json:"name"`
	Action   string   `json:"action"` // allow or block
	Cron     string   `json:"cron"`
	Duration Duration `json:"duration"`
	TZ       string   `json:"tz"` // IANA name, "UTC" or "Local" (the node's own zone)
	Rings    []string `json:"rings,omitempty"`

	sched *schedule
}

// AutoApproval approves every update that matches all the criteria that are
// set. At least one criterion is set; match everything with packages: ["*"].
type AutoApproval struct {
	Name            string   `json:"name,omitempty"`
	Sources         []string `json:"sources,omitempty"`         // apt, catalog, dnf
	Classifications []string `json:"classifications,omitempty"` // security, bugfix, enhancement, other
	MinSeverity     string   `json:"min_severity,omitempty"`    // low, medium, high, critical
	Packages        []string `json:"packages,omitempty"`        // globs
	Rings           []string `json:"rings,omitempty"`           // empty: all rings
}

// Approval is an explicit approve or deny entry: a package glob and a
// version glob (empty: any version), optionally limited to rings.
type Approval struct {
	Package string   `json:"package"`
	Version string   `json:"version,omitempty"`
	Rings   []string `json:"rings,omitempty"`
	Reason  string   `json:"reason,omitempty"`
}

// Pin holds a package (glob) at versions matching Version (glob): updates to
// any other version are not installed.
type Pin struct {
	Package string   `json:"package"`
	Version string   `json:"version"`
	Rings   []string `json:"rings,omitempty"`
	Reason  string   `json:"reason,omitempty"`
}

// Expedite installs exactly Package at Version at once, regardless of
// approvals, deferral, gates, windows and pauses. Deny entries, rollback
// orders and pins still win.
type Expedite struct {
	Package string   `json:"package"`
	Version string   `json:"version"`
	Rings   []string `json:"rings,omitempty"`
	Reason  string   `json:"reason,omitempty"`
}

// Pause stops installs in a ring from From until Until (at most MaxPause).
type Pause struct {
	Ring   string    `json:"ring"`
	From   time.Time `json:"from"`
	Until  time.Time `json:"until"`
	Reason string    `json:"reason,omitempty"`
}

// Rollback orders nodes of the given rings (all when empty) that have
// Package at a version matching Version (glob) to leave that version, and
// keeps it from being installed there again.
type Rollback struct {
	Package string   `json:"package"`
	Version string   `json:"version"`
	Rings   []string `json:"rings,omitempty"`
	Reason  string   `json:"reason,omitempty"`
}

// Reboot holds the fleet-wide reboot rules; rings may override parts of them.
type Reboot struct {
	NotifyAhead  Duration     `json:"notify_ahead"`
	DeferChoices []Duration   `json:"defer_choices,omitzero"`
	MaxDeferrals int          `json:"max_deferrals"`
	AllowRefuse  AllowRefuse  `json:"allow_refuse,omitzero"`
	Deadline     Duration     `json:"deadline"` // counted from when the update became due
	Grace        Duration     `json:"grace"`    // counted from when the restart became pending
	ActiveHours  *ActiveHours `json:"active_hours,omitempty"`
	Headless     *Headless    `json:"headless,omitempty"`
	// UserRestart says who may restart the machine on demand besides root
	// and the agent's admin group: UserRestartSession (the default, also
	// when empty) or UserRestartNone.
	UserRestart string `json:"user_restart,omitempty"`
}

// Values of reboot.user_restart.
const (
	// UserRestartSession lets the user of an active local session (a seat
	// or the console, not a remote login) restart on demand.
	UserRestartSession = "session"
	// UserRestartNone lets only root and the admin group restart on demand.
	UserRestartNone = "none"
)

// RebootOverride replaces, for one ring, the reboot rules that are set.
type RebootOverride struct {
	NotifyAhead  *Duration    `json:"notify_ahead,omitempty"`
	DeferChoices []Duration   `json:"defer_choices,omitzero"`
	MaxDeferrals *int         `json:"max_deferrals,omitempty"`
	Deadline     *Duration    `json:"deadline,omitempty"`
	Grace        *Duration    `json:"grace,omitempty"`
	ActiveHours  *ActiveHours `json:"active_hours,omitempty"`
	Headless     *Headless    `json:"headless,omitempty"`
	UserRestart  string       `json:"user_restart,omitempty"`
}

// AllowRefuse lists the rings and tags whose users may refuse a reboot
// outright (until the deadline).
type AllowRefuse struct {
	Rings []string `json:"rings,omitempty"`
	Tags  []string `json:"tags,omitempty"`
}

// ActiveHours is the daily span, in wall-clock time of TZ, when users work and
// reboots are not forced. Start after End spans midnight.
type ActiveHours struct {
	Start string `json:"start"` // "08:00"
	End   string `json:"end"`   // "18:00"
	TZ    string `json:"tz"`

	loc        *time.Location
	start, end int // minutes after midnight
}

// Headless sets when nodes without a user session reboot by themselves: in
// the window given by Cron, Duration and TZ, at most MaxConcurrent nodes (0:
// no limit) of one group at a time, where Per is "site" or "tag:<glob>"
// (nodes grouped by their first tag matching the glob).
type Headless struct {
	Cron          string   `json:"cron"`
	Duration      Duration `json:"duration"`
	TZ            string   `json:"tz"`
	MaxConcurrent int      `json:"max_concurrent,omitempty"`
	Per           string   `json:"per"`

	sched *schedule
}

// Console names the fleet console: its base URL (https, or http on a
// loopback address only) and, optionally, the hex SHA-256 of its TLS
// certificate's public key (SubjectPublicKeyInfo), which agents then
// accept instead of the system's certificate authorities.
type Console struct {
	URL    string `json:"url"`
	TLSPin string `json:"tls_pin,omitempty"`
}

// PeerSharing sets whether nodes share payloads with peers and the caps on
// their upload and WAN download rates (0: unlimited).
type PeerSharing struct {
	Enabled    bool `json:"enabled"`
	UploadRate Rate `json:"upload_rate"`
	WANRate    Rate `json:"wan_rate"`
}

// Transactions says what an install transaction may do besides upgrading
// and adding packages. By default nothing: a transaction whose solution
// removes a package is refused, and so is one for which the previous
// version of a package it changes cannot be had for a rollback.
type Transactions struct {
	// AllowRemove lists package globs (e.g. "linux-image-*") that apt's
	// solution may remove; the removal is journaled with the payload that
	// reinstalls it on rollback.
	AllowRemove []string `json:"allow_remove,omitempty"`
	// WithoutRollback lists package globs that may be changed even when
	// the payload of their installed version is no longer offered by any
	// source nor kept in the content store (the node then reports that
	// it cannot roll that package back).
	WithoutRollback []string `json:"without_rollback,omitempty"`
}

// RemovalAllowed reports whether a transaction may remove pkg.
func (p *Policy) RemovalAllowed(pkg string) bool { return matchAny(p.Transactions.AllowRemove, pkg) }

// RollbackOptional reports whether pkg may be changed without a payload of
// its installed version for a rollback.
func (p *Policy) RollbackOptional(pkg string) bool {
	return matchAny(p.Transactions.WithoutRollback, pkg)
}

func matchAny(globs []string, s string) bool {
	for _, g := range globs {
		if ok, _ := path.Match(g, s); ok {
			return true
		}
	}
	return false
}

// SelfUpdate governs how the agent updates its own package (a catalog
// payload like any other): after installing itself, the new agent must be
// healthy (service running, local API answering, gossip rejoined, policy
// verified) within HealthDeadline of its start, or the previous package is
// restored.
type SelfUpdate struct {
	// HealthDeadline is how long a freshly installed agent has to come
	// back healthy. Zero: DefaultSelfHealthDeadline.
	HealthDeadline Duration `json:"health_deadline,omitempty"`
}

// Self-update health deadline bounds.
const (
	DefaultSelfHealthDeadline = 5 * time.Minute
	MaxSelfHealthDeadline     = time.Hour
)

// SelfHealthDeadline is the self-update health deadline in force.
func (p *Policy) SelfHealthDeadline() time.Duration {
	if p == nil || p.SelfUpdate.HealthDeadline <= 0 {
		return DefaultSelfHealthDeadline
	}
	return p.SelfUpdate.HealthDeadline.Std()
}

// HealthCheck is a command (argv, no shell) the engine runs after an
// install; a non-zero exit or a timeout counts as a failed install.
type HealthCheck struct {
	Command []string `json:"command"`
	Timeout Duration `json:"timeout"`
}

// schedule is a compiled window recurrence.
type schedule struct {
	spec *cron.SpecSchedule // Location is UTC: the spec is matched against wall-clock time
	loc  *time.Location
	dur  time.Duration
}
