package apitypes

import "time"

// Reboot states, the value of RebootStatus.State. They are ordered from
// calm to urgent; the tray picks its icon from them.
const (
	// RebootStateUpToDate: nothing to install, no restart needed.
	RebootStateUpToDate = "up-to-date"
	// RebootStateUpdatesPending: updates are waiting to be installed; no
	// restart is needed yet.
	RebootStateUpdatesPending = "updates-pending"
	// RebootStateRestartRequired: installed updates need a restart before
	// EffectiveDeadline.
	RebootStateRestartRequired = "restart-required"
	// RebootStateDeadlineNear: the effective deadline is close (the policy's
	// notice period); the daemon sends countdown events.
	RebootStateDeadlineNear = "deadline-near"
	// RebootStateRebooting: the daemon has started the restart.
	RebootStateRebooting = "rebooting"
)

// Event types of the local API's event stream that concern reboots. Each
// such Event carries the reboot status as it is after the event.
const (
	// EventRebootStatus: the reboot status changed (a restart became
	// required, a deferral was used, the restart was refused...).
	EventRebootStatus = "reboot-status"
	// EventRebootReminder: the policy says to remind the user now (its
	// "notify ahead" times). The tray shows a notification.
	EventRebootReminder = "reboot-reminder"
	// EventRebootCountdown: the automatic restart is close; it happens at
	// Reboot.NextAutomatic (Reboot.EffectiveDeadline when that is zero). The
	// daemon sends one per countdown step, e.g. 15 minutes and 1 minute before.
	EventRebootCountdown = "reboot-countdown"
	// EventRebooting: the restart starts now.
	EventRebooting = "rebooting"
)

// RebootStatus is the answer of the reboot status route and of the defer and
// refuse routes (the state after the request), and the payload of reboot
// events. Times are zero when they do not apply.
type RebootStatus struct {
	// Required says installed updates need a restart.
	Required bool `json:"required"`
	// Since is when the restart first became required.
	Since time.Time `json:"since,omitzero"`
	// Reason says why, for a human ("Security updates to openssl and the
	// kernel need a restart").
	Reason string `json:"reason,omitempty"`
	// Packages lists what was installed that needs the restart, each as
	// "name version".
	Packages []string `json:"packages,omitempty"`
	// Deadline is Since plus the policy's deadline.
	Deadline time.Time `json:"deadline,omitzero"`
	// EffectiveDeadline is the later of Deadline and Since plus the grace
	// period: the restart happens by then whatever the user chooses.
	EffectiveDeadline time.Time `json:"effective_deadline,omitzero"`
	// UrgentDeadline is the deadline an urgent update set (its urgent
	// rule's reboot_deadline from the install) and Urgent names the rule
	// and the update; EffectiveDeadline is then no later.
	UrgentDeadline time.Time `json:"urgent_deadline,omitzero"`
	Urgent         string    `json:"urgent,omitempty"`
	// DeferralsUsed and DeferralsLeft count the user's deferrals against
	// the policy's maximum.
	DeferralsUsed int `json:"deferrals_used"`
	DeferralsLeft int `json:"deferrals_left"`
	// Choices are the deferrals the policy offers, in the policy's order.
	// They stay listed when DeferralsLeft is 0 so a user sees what exists.
	Choices []DeferChoice `json:"choices,omitempty"`
	// CanRefuse says the policy lets this user decline the restart
	// ("Don't restart"). When false the option is absent and the server
	// refuses a RefuseRequest.
	CanRefuse bool `json:"can_refuse"`
	// RestartDenied, when set, says why the calling user may not restart
	// the machine now (no local session, or the policy allows only root
	// and the admin group); the tray then offers no "Restart now". Empty
	// means the caller may, or the daemon did not say.
	RestartDenied string `json:"restart_denied,omitempty"`
	// Refused says the user declined the restart; it stays true until the
	// machine restarts.
	Refused bool `json:"refused"`
	// RefusedBy names who declined the restart, e.g. "alice (uid 1000)", so
	// the admin sees it; RefusedAt is when.
	RefusedBy string    `json:"refused_by,omitempty"`
	RefusedAt time.Time `json:"refused_at,omitzero"`
	// DeferredUntil is the end of the current deferral.
	DeferredUntil time.Time `json:"deferred_until,omitzero"`
	// NextAutomatic is when the daemon will restart the machine by itself
	// (a maintenance window, the end of a deferral or the deadline).
	NextAutomatic time.Time `json:"next_automatic,omitzero"`
	// ActiveHours are the user's working hours during which no forced
	// restart happens before the deadline, e.g. "08:00-18:00 Europe/Berlin".
	ActiveHours string `json:"active_hours,omitempty"`
	// State is one of the RebootState constants.
	State string `json:"state"`
	// Waiting says what the automatic restart waits for, e.g. a free slot of
	// the site's limit on hosts restarting at once.
	Waiting string `json:"waiting,omitempty"`
	// LastError says why the last restart attempt failed; the daemon tries
	// again later.
	LastError string `json:"last_error,omitempty"`
	// Held says the pre-reboot hook failed and holds the restart (it is
	// tried again later).
	Held string `json:"held,omitempty"`
	// Unhealthy says the post-reboot hook failed after the last restart:
	// the node is not ready. Cleared when a later run passes.
	Unhealthy string `json:"unhealthy,omitempty"`
	// Hooks are the latest runs of the reboot hooks, oldest first.
	Hooks []HookRun `json:"hooks,omitempty"`
}

// HookRun is one run of a reboot hook of the signed policy.
type HookRun struct {
	Hook         string    `json:"hook"` // pre_reboot or post_reboot
	Command      string    `json:"command"`
	At           time.Time `json:"at"`
	OK           bool      `json:"ok"`
	Error        string    `json:"error,omitempty"` // exit status, or timed out
	Output       string    `json:"output,omitempty"`
	DroppedBytes int64     `json:"dropped_bytes,omitempty"`
	Seconds      float64   `json:"seconds"`
}

// DeferChoice is one deferral the policy offers.
type DeferChoice struct {
	// Label names the choice for a human, without the verb: "1 hour",
	// "4 hours", "until tomorrow". The tray shows "Defer " + Label.
	Label string `json:"label"`
	// Duration is the choice as the policy writes it ("1h", "4h",
	// "tomorrow"); it is the key a DeferRequest names.
	Duration string `json:"duration"`
	// Seconds is how long the deferral lasts if chosen now: how far it
	// postpones the planned restart (NextAutomatic, or now when none is
	// planned), cut at the effective deadline.
	Seconds int64 `json:"seconds"`
}

// DeferRequest asks to defer the pending restart by one of the offered
// choices.
type DeferRequest struct {
	// Choice is the Duration of one of RebootStatus.Choices.
	Choice string `json:"choice"`
}

// RefuseRequest asks to decline the pending restart ("Don't restart"); the
// server accepts it only where the policy allows refusing.
type RefuseRequest struct{}

// RestartRequest asks the daemon to restart the machine now.
type RestartRequest struct{}

// Event is one message of the local API's event stream.
type Event struct {
	// Type says what happened, e.g. EventRebootStatus.
	Type string `json:"type"`
	// Reboot is the reboot status after the event, for reboot events.
	Reboot *RebootStatus `json:"reboot,omitempty"`
	// Time is when the daemon emitted the event.
	Time time.Time `json:"time"`
}
