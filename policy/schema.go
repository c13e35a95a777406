package policy

import (
	"net/netip"
	"path"
	"slices"
	"strings"
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
	// Unmanaged governs how agents find the LAN's devices that run no
	// agent (passive observation, on unless switched off; the active
	// sweep, off unless enabled for a site or subnet).
	Unmanaged Unmanaged `json:"unmanaged,omitzero"`
	// Urgent approves updates that fix dangerous vulnerabilities (KEV, a
	// severity) faster than the rings' normal pace.
	Urgent []Urgent `json:"urgent,omitempty"`
	// RestartServices says which services an install may restart.
	RestartServices RestartServices `json:"restart_services,omitzero"`
	// RebootHooks run before and after a reboot.
	RebootHooks RebootHooks `json:"reboot_hooks,omitzero"`

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
	// Scope is whose reports count: the node's own site (ScopeSite, the
	// default: what the site's members gossip) or every site
	// (ScopeFleet: the fleet status document the console signs, in which
	// MinNodes is the minimum sample size across the fleet).
	Scope string `json:"scope,omitempty"`
}

// Values of Gate.Scope.
const (
	ScopeSite  = "site"
	ScopeFleet = "fleet"
)

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
	// Margin (allow windows): an install does not start when the window
	// closes sooner than this, so a typical install finishes inside it.
	// An install that started is never stopped by the window's end.
	Margin Duration `json:"margin,omitempty"`

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

// Urgent is a rule for updates that fix dangerous vulnerabilities, as the
// signed advisory database tells the node: it matches an update that fixes
// a CVE in CISA's KEV catalog (KEV) or of at least MinSeverity (either
// criterion that is set suffices). A matching update is approved by the
// rule; with NoDeferral it skips the ring's deferral and installs in the
// next window (gates, windows, pauses, pins and deny entries still apply);
// RebootDeadline shortens the reboot deadline for the restart it needs.
// Updates no urgent rule matches keep the rings' normal pace.
type Urgent struct {
	Name           string   `json:"name,omitempty"`
	KEV            bool     `json:"kev,omitempty"`
	MinSeverity    string   `json:"min_severity,omitempty"` // low, medium, high, critical
	Rings          []string `json:"rings,omitempty"`        // empty: all rings
	NoDeferral     bool     `json:"no_deferral,omitempty"`
	RebootDeadline Duration `json:"reboot_deadline,omitempty"`
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

// Unmanaged governs the discovery of devices that run no agent. Its zero
// value is the default: passive observation on, nothing sent.
type Unmanaged struct {
	// Enabled switches discovery off when false (nil: on). Off, nothing
	// is observed, recorded, exchanged or sent.
	Enabled *bool `json:"enabled,omitempty"`
	// Interval is how often the neighbour table is read and the site's
	// sightings exchanged (0: DefaultUnmanagedInterval).
	Interval Duration `json:"interval,omitempty"`
	// Expiry is how long a device stays listed unseen (0:
	// DefaultUnmanagedExpiry).
	Expiry Duration `json:"expiry,omitempty"`
	// MaxPerNode and MaxPerSite cap the devices a node records and a
	// site view lists (0: the defaults).
	MaxPerNode int `json:"max_per_node,omitempty"`
	MaxPerSite int `json:"max_per_site,omitempty"`
	// Sweep, when set, enables the active ARP sweep for the sites and
	// subnets it names.
	Sweep *Sweep `json:"sweep,omitempty"`
}

// Sweep enables the active sweep: ARP requests to every address of a
// node's directly attached IPv4 subnets, by one node per site at a time.
// It runs on nodes whose site is in Sites, and on the attached subnets
// that lie inside one of Subnets; with both set, both must match; at least
// one must be set.
type Sweep struct {
	Sites   []string `json:"sites,omitempty"`
	Subnets []string `json:"subnets,omitempty"`
	// Rate is the most probes a node sends per second (0: DefaultSweepRate).
	Rate int `json:"rate,omitempty"`
	// Every is how often the site sweeps (0: DefaultSweepEvery).
	Every Duration `json:"every,omitempty"`
}

// Unmanaged discovery defaults and bounds.
const (
	DefaultUnmanagedInterval = time.Minute
	DefaultUnmanagedExpiry   = 24 * time.Hour
	DefaultUnmanagedPerNode  = 1024
	DefaultUnmanagedPerSite  = 4096
	MaxUnmanagedPerNode      = 16384
	MaxUnmanagedPerSite      = 65536
	DefaultSweepRate         = 20
	MaxSweepRate             = 1000
	DefaultSweepEvery        = 6 * time.Hour
	// MinSweepPrefix is the widest IPv4 subnet a sweep covers (/20, 4096
	// addresses); wider attached subnets are not swept.
	MinSweepPrefix = 20
)

// UnmanagedOn reports whether discovery is on (the default).
func (u Unmanaged) UnmanagedOn() bool { return u.Enabled == nil || *u.Enabled }

// EffectiveInterval is the observation and exchange interval in force.
func (u Unmanaged) EffectiveInterval() time.Duration {
	return cmpDur(u.Interval, DefaultUnmanagedInterval)
}

// EffectiveExpiry is the expiry in force.
func (u Unmanaged) EffectiveExpiry() time.Duration { return cmpDur(u.Expiry, DefaultUnmanagedExpiry) }

// Caps are the per-node and per-site caps in force.
func (u Unmanaged) Caps() (perNode, perSite int) {
	perNode, perSite = u.MaxPerNode, u.MaxPerSite
	if perNode <= 0 {
		perNode = DefaultUnmanagedPerNode
	}
	if perSite <= 0 {
		perSite = DefaultUnmanagedPerSite
	}
	return perNode, perSite
}

// EffectiveRate is the sweep's probe rate in force (probes per second).
func (s *Sweep) EffectiveRate() int {
	if s == nil || s.Rate <= 0 {
		return DefaultSweepRate
	}
	return s.Rate
}

// EffectiveEvery is how often the site sweeps.
func (s *Sweep) EffectiveEvery() time.Duration {
	if s == nil {
		return DefaultSweepEvery
	}
	return cmpDur(s.Every, DefaultSweepEvery)
}

// SweepSubnets returns the subnets the sweep may cover on a node of site
// with the given attached subnets: nil when the sweep is not enabled
// there. Each result is an attached IPv4 subnet (masked) no wider than
// MinSweepPrefix.
func (u Unmanaged) SweepSubnets(site string, attached []netip.Prefix) []netip.Prefix {
	s := u.Sweep
	if !u.UnmanagedOn() || s == nil || (len(s.Sites) == 0 && len(s.Subnets) == 0) {
		return nil
	}
	if len(s.Sites) > 0 && !slices.Contains(s.Sites, site) {
		return nil
	}
	var allowed []netip.Prefix
	for _, sn := range s.Subnets {
		if pf, err := netip.ParsePrefix(sn); err == nil {
			allowed = append(allowed, pf.Masked())
		}
	}
	var out []netip.Prefix
	for _, a := range attached {
		a = a.Masked()
		if !a.Addr().Is4() || a.Bits() < MinSweepPrefix || slices.Contains(out, a) {
			continue
		}
		in := len(allowed) == 0
		for _, pf := range allowed {
			if pf.Bits() <= a.Bits() && pf.Contains(a.Addr()) {
				in = true
			}
		}
		if in {
			out = append(out, a)
		}
	}
	return out
}

func cmpDur(d Duration, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d.Std()
}

// Values of restart_services.mode.
const (
	// RestartAuto restarts the services whose processes still map files
	// an install replaced, within the include/exclude lists; a process
	// that is not restarted leaves the reboot required.
	RestartAuto = "auto"
	// RestartNotify restarts nothing and reports the services that need a
	// restart; they do not make the reboot required (the default: an
	// admin opts in to restarts, or to reboots with never).
	RestartNotify = "notify"
	// RestartNever restarts nothing: a process still mapping a replaced
	// file makes the reboot required, naming the process.
	RestartNever = "never"
)

// RestartServices says what the agent does after an install with the
// processes that still map files the install replaced (their service, as
// needrestart would find it). Services are named as their service manager
// names them: a systemd unit ("nginx.service"; "nginx" matches too) or a
// SysV init script ("nginx").
type RestartServices struct {
	Mode string `json:"mode,omitempty"` // auto, notify (default) or never
	// Include, when set, limits restarts to services matching one of its
	// globs; it is also the only way to let the agent restart a
	// session-critical service (the display manager, a user's session,
	// logind, D-Bus, the agent itself), which must be named by a glob
	// without wildcards.
	Include []string `json:"include,omitempty"`
	// Exclude lists services never restarted (it wins over Include).
	Exclude []string `json:"exclude,omitempty"`
}

// RestartMode is the restart_services mode in force.
func (p *Policy) RestartMode() string {
	if p == nil || p.RestartServices.Mode == "" {
		return RestartNotify
	}
	return p.RestartServices.Mode
}

// sessionCritical are services whose restart would end the user's session
// or the agent's own work: restarted only when Include names them exactly.
var sessionCritical = []string{
	"display-manager", "gdm", "gdm3", "lightdm", "sddm", "xdm", "lxdm", "slim",
	"user@*", "session-*", "systemd-logind", "dbus", "dbus-broker", "getty@*", "serial-getty@*",
	"systemd-journald", "systemd-udevd", "init", "patchringd", "patchring",
}

// SessionCritical reports whether service is one the agent never restarts
// unless listed by name in restart_services.include.
func SessionCritical(service string) bool {
	return matchAny(sessionCritical, serviceBase(service))
}

// serviceBase drops a systemd ".service" or ".scope" suffix.
func serviceBase(s string) string {
	for _, suf := range []string{".service", ".scope"} {
		if b, ok := strings.CutSuffix(s, suf); ok {
			return b
		}
	}
	return s
}

// matchService reports whether a glob of restart_services names service.
func matchService(globs []string, service string) bool {
	return matchAny(globs, service) || matchAny(globs, serviceBase(service))
}

// MayRestart reports whether the policy lets the agent restart service
// after an install, and if not, why (for the journal and reboot status).
func (p *Policy) MayRestart(service string) (bool, string) {
	switch p.RestartMode() {
	case RestartNever:
		return false, "restart_services is never"
	case RestartNotify:
		return false, "restart_services is notify"
	}
	rs := p.RestartServices
	if matchService(rs.Exclude, service) {
		return false, "excluded by restart_services.exclude"
	}
	if SessionCritical(service) {
		for _, g := range rs.Include {
			if g == service || g == serviceBase(service) {
				return true, ""
			}
		}
		return false, "session-critical (name it in restart_services.include to allow)"
	}
	if len(rs.Include) > 0 && !matchService(rs.Include, service) {
		return false, "not in restart_services.include"
	}
	return true, ""
}

// Hook is a command (argv, no shell) the agent runs around a reboot:
// bounded in time and output, in a clean environment, as the agent's user.
type Hook struct {
	Command []string `json:"command"`
	Timeout Duration `json:"timeout"`
	// MaxOutput is how many bytes of the hook's output are kept (its
	// tail), for the history and the fleet view. Zero: DefaultHookOutput.
	MaxOutput int `json:"max_output,omitempty"`
}

// Reboot hook bounds.
const (
	DefaultHookTimeout = 5 * time.Minute
	MaxHookTimeout     = time.Hour
	DefaultHookOutput  = 16 << 10
	MaxHookOutput      = 1 << 20
)

// OutputLimit is the number of output bytes kept.
func (h *Hook) OutputLimit() int {
	if h == nil || h.MaxOutput <= 0 {
		return DefaultHookOutput
	}
	return h.MaxOutput
}

// RebootHooks are the commands run before a reboot (drain a load balancer
// member, stop a database cleanly: a failure holds the reboot) and after
// the machine is back (a readiness check: a failure marks the node
// unhealthy).
type RebootHooks struct {
	PreReboot  *Hook `json:"pre_reboot,omitempty"`
	PostReboot *Hook `json:"post_reboot,omitempty"`
}
