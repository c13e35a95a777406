package tray

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/patchring/patchring/daemon/apitypes"
)

// iconKind is the state the tray icon shows.
type iconKind int

const (
	iconUpToDate iconKind = iota
	iconUpdatesPending
	iconRestartRequired
	iconDeadlineNear
	iconDisconnected
	numIcons
)

func (k iconKind) String() string {
	switch k {
	case iconUpToDate:
		return "up-to-date"
	case iconUpdatesPending:
		return "updates-pending"
	case iconRestartRequired:
		return "restart-required"
	case iconDeadlineNear:
		return "deadline-near"
	case iconDisconnected:
		return "disconnected"
	}
	return fmt.Sprintf("icon(%d)", int(k))
}

// actionKind is what a menu item or notification button does.
type actionKind int

const (
	actNone actionKind = iota
	actRestart
	actDefer
	actRefuse
	actDetails
	actQuit
)

// action is a user's choice, from the menu or a notification.
type action struct {
	kind   actionKind
	choice string // the DeferChoice.Duration for actDefer
}

// Notification action keys.
const (
	keyRestart     = "restart"
	keyDeferPrefix = "defer:"
	keyRefuse      = "refuse"
	keyDetails     = "details"
)

func (a action) key() string {
	switch a.kind {
	case actRestart:
		return keyRestart
	case actDefer:
		return keyDeferPrefix + a.choice
	case actRefuse:
		return keyRefuse
	case actDetails:
		return keyDetails
	}
	return ""
}

// parseActionKey turns a notification action key back into an action; ok is
// false for keys the tray did not send (e.g. "default").
func parseActionKey(key string) (action, bool) {
	switch {
	case key == keyRestart:
		return action{kind: actRestart}, true
	case key == keyRefuse:
		return action{kind: actRefuse}, true
	case key == keyDetails:
		return action{kind: actDetails}, true
	case strings.HasPrefix(key, keyDeferPrefix) && len(key) > len(keyDeferPrefix):
		return action{kind: actDefer, choice: strings.TrimPrefix(key, keyDeferPrefix)}, true
	}
	return action{}, false
}

// menuEntry is one actionable menu item.
type menuEntry struct {
	label   string
	enabled bool
	act     action
}

// view is everything the tray host shows: icon, tooltip, a status line and
// the action items (Quit is always there and not part of items).
type view struct {
	icon    iconKind
	tooltip string
	status  string
	items   []menuEntry
}

// maxMenuChoices is how many deferral choices the menu shows at most.
const maxMenuChoices = 8

// menuSlots is how many action items a menu holds; buildView never makes
// more (Restart now, the choices, Don't restart, Details).
const menuSlots = maxMenuChoices + 3

// Labels the user sees.
const (
	labelDisconnected = "Disconnected from patchringd"
	labelRestartNow   = "Restart now"
	labelRefuse       = "Don't restart"
	labelDetails      = "Details"
	labelQuit         = "Quit"
)

// state returns st.State, derived from Required when the daemon left it
// empty.
func state(st apitypes.RebootStatus) string {
	if st.State != "" {
		return st.State
	}
	if st.Required {
		return apitypes.RebootStateRestartRequired
	}
	return apitypes.RebootStateUpToDate
}

// restartPending says the user has a restart to decide on.
func restartPending(st apitypes.RebootStatus) bool {
	s := state(st)
	return st.Required && (s == apitypes.RebootStateRestartRequired || s == apitypes.RebootStateDeadlineNear)
}

// buildView renders the daemon's status (or its absence) into what the tray
// shows.
func buildView(st apitypes.RebootStatus, connected bool, now time.Time, loc *time.Location) view {
	if !connected {
		return view{
			icon:    iconDisconnected,
			status:  labelDisconnected,
			tooltip: "patchring: disconnected from patchringd, retrying",
		}
	}
	v := view{status: statusLine(st, now, loc)}
	switch state(st) {
	case apitypes.RebootStateUpdatesPending:
		v.icon = iconUpdatesPending
	case apitypes.RebootStateRestartRequired:
		v.icon = iconRestartRequired
	case apitypes.RebootStateDeadlineNear, apitypes.RebootStateRebooting:
		v.icon = iconDeadlineNear
	default:
		v.icon = iconUpToDate
	}
	v.tooltip = "patchring: " + v.status
	if st.Reason != "" {
		v.tooltip += "\n" + st.Reason
	}
	switch {
	case state(st) == apitypes.RebootStateRebooting:
		// Nothing left to choose.
	case restartPending(st) && st.Refused:
		v.items = append(v.items, menuEntry{label: labelRestartNow, enabled: st.RestartDenied == "", act: action{kind: actRestart}})
	case restartPending(st):
		v.items = append(v.items, menuEntry{label: labelRestartNow, enabled: st.RestartDenied == "", act: action{kind: actRestart}})
		for _, c := range st.Choices[:min(len(st.Choices), maxMenuChoices)] {
			v.items = append(v.items, menuEntry{
				label:   deferLabel(c, st.DeferralsLeft),
				enabled: st.DeferralsLeft > 0,
				act:     action{kind: actDefer, choice: c.Duration},
			})
		}
		if st.CanRefuse {
			v.items = append(v.items, menuEntry{label: labelRefuse, enabled: true, act: action{kind: actRefuse}})
		}
	}
	if state(st) != apitypes.RebootStateRebooting {
		v.items = append(v.items, menuEntry{label: labelDetails, enabled: true, act: action{kind: actDetails}})
	}
	return v
}

// deferLabel is "Defer 4 hours (2 left)" or "Defer 4 hours (none left)".
func deferLabel(c apitypes.DeferChoice, left int) string {
	name := choiceName(c)
	if left <= 0 {
		return fmt.Sprintf("Defer %s (none left)", name)
	}
	return fmt.Sprintf("Defer %s (%d left)", name, left)
}

// choiceName is the human name of a deferral choice.
func choiceName(c apitypes.DeferChoice) string {
	if c.Label != "" {
		return c.Label
	}
	return c.Duration
}

// statusLine is the first, disabled menu line: "Restart required by Thu 18:00".
func statusLine(st apitypes.RebootStatus, now time.Time, loc *time.Location) string {
	switch state(st) {
	case apitypes.RebootStateRebooting:
		return "Restarting now"
	case apitypes.RebootStateUpdatesPending:
		return "Updates pending"
	case apitypes.RebootStateUpToDate:
		return "Up to date"
	}
	if !st.Required {
		return "Up to date"
	}
	if st.Refused {
		return "Restart declined (you chose not to restart)"
	}
	by := ""
	if !st.EffectiveDeadline.IsZero() {
		by = " by " + formatWhen(st.EffectiveDeadline, now, loc)
	}
	if st.DeferredUntil.After(now) {
		return fmt.Sprintf("Restart deferred until %s (required%s)", formatClock(st.DeferredUntil, now, loc), by)
	}
	return "Restart required" + by
}

// formatWhen shows a time as "Thu 18:00" within a week of now, else as
// "Thu 2 Jan 18:00".
func formatWhen(t, now time.Time, loc *time.Location) string {
	t = t.In(loc)
	if d := t.Sub(now); d > -24*time.Hour && d < 6*24*time.Hour {
		return t.Format("Mon 15:04")
	}
	return t.Format("Mon 2 Jan 15:04")
}

// formatClock shows a time as "18:00" on the same day as now, else like
// formatWhen.
func formatClock(t, now time.Time, loc *time.Location) string {
	t, n := t.In(loc), now.In(loc)
	if t.YearDay() == n.YearDay() && t.Year() == n.Year() {
		return t.Format("15:04")
	}
	return formatWhen(t, now, loc)
}

// promptNotification asks the user to restart. With the tray menu visible it
// carries the short choices (Restart now, Defer <first choice>); in fallback
// mode it carries every choice the menu would.
func promptNotification(st apitypes.RebootStatus, fallback bool, now time.Time, loc *time.Location) Notification {
	n := Notification{
		Summary: statusLine(st, now, loc),
		Urgency: UrgencyNormal,
	}
	var body []string
	if st.Reason != "" {
		body = append(body, st.Reason)
	}
	if len(st.Choices) > 0 && !st.Refused {
		switch st.DeferralsLeft {
		case 0:
			body = append(body, "No deferrals left.")
		case 1:
			body = append(body, "You can defer once more.")
		default:
			body = append(body, fmt.Sprintf("You can defer %d more times.", st.DeferralsLeft))
		}
	}
	n.Body = strings.Join(body, "\n")
	if state(st) == apitypes.RebootStateDeadlineNear {
		n.Urgency = UrgencyCritical
	}
	if fallback {
		n.Expire = -1
		for _, it := range buildView(st, true, now, loc).items {
			if it.enabled {
				n.Actions = append(n.Actions, Action{Key: it.act.key(), Label: it.label})
			}
		}
		return n
	}
	if st.RestartDenied == "" {
		n.Actions = append(n.Actions, Action{Key: keyRestart, Label: labelRestartNow})
	}
	if st.DeferralsLeft > 0 && len(st.Choices) > 0 && !st.Refused {
		c := st.Choices[0]
		n.Actions = append(n.Actions, Action{Key: keyDeferPrefix + c.Duration, Label: "Defer " + choiceName(c)})
	}
	return n
}

// detailsNotification lists what was installed and why the restart.
func detailsNotification(st apitypes.RebootStatus, now time.Time, loc *time.Location) Notification {
	n := Notification{Summary: "patchring: " + statusLine(st, now, loc), Urgency: UrgencyLow}
	var b strings.Builder
	if st.Reason != "" {
		b.WriteString(st.Reason)
		b.WriteString("\n")
	}
	if len(st.Packages) > 0 {
		b.WriteString("\nInstalled:\n")
		for _, p := range st.Packages {
			b.WriteString("• " + p + "\n")
		}
	}
	if st.Required {
		b.WriteString("\n")
		if !st.Since.IsZero() {
			fmt.Fprintf(&b, "Required since: %s\n", formatWhen(st.Since, now, loc))
		}
		if st.Refused && st.RefusedBy != "" {
			fmt.Fprintf(&b, "Declined by: %s\n", st.RefusedBy)
		}
		if !st.EffectiveDeadline.IsZero() {
			fmt.Fprintf(&b, "Deadline: %s\n", formatWhen(st.EffectiveDeadline, now, loc))
		}
		if total := st.DeferralsUsed + st.DeferralsLeft; total > 0 {
			fmt.Fprintf(&b, "Deferrals left: %d of %d\n", st.DeferralsLeft, total)
		}
		if !st.NextAutomatic.IsZero() {
			fmt.Fprintf(&b, "Automatic restart: %s\n", formatWhen(st.NextAutomatic, now, loc))
		}
		if st.ActiveHours != "" {
			fmt.Fprintf(&b, "No forced restart during active hours %s before the deadline\n", st.ActiveHours)
		}
	}
	if b.Len() == 0 {
		b.WriteString("No restart is needed.")
	}
	n.Body = strings.TrimRight(b.String(), "\n")
	return n
}

// countdownNotification warns that the automatic restart is minutes away.
func countdownNotification(st apitypes.RebootStatus, at time.Time) Notification {
	when := st.NextAutomatic
	if when.IsZero() {
		when = st.EffectiveDeadline
	}
	summary := "Restarting now"
	left := when.Sub(at)
	switch mins := int(math.Ceil(left.Minutes())); {
	case left > 0 && left < 45*time.Second:
		secs := int(math.Ceil(left.Seconds()))
		summary = fmt.Sprintf("Restarting in %d seconds", secs)
		if secs == 1 {
			summary = "Restarting in 1 second"
		}
	case mins == 1:
		summary = "Restarting in 1 minute"
	case mins > 1:
		summary = fmt.Sprintf("Restarting in %d minutes", mins)
	}
	body := "Save your work."
	if st.Reason != "" {
		body += "\n" + st.Reason
	}
	var actions []Action
	if st.RestartDenied == "" {
		actions = []Action{{Key: keyRestart, Label: labelRestartNow}}
	}
	return Notification{
		Summary: summary,
		Body:    body,
		Actions: actions,
		Urgency: UrgencyCritical,
		Expire:  -1,
	}
}

// failureNotification tells the user a choice did not go through.
func failureNotification(what string, err error) Notification {
	return Notification{
		Summary: "Could not " + what,
		Body:    err.Error(),
		Urgency: UrgencyNormal,
	}
}

// describe names an action for messages: "defer the restart".
func (a action) describe() string {
	switch a.kind {
	case actRestart:
		return "restart now"
	case actDefer:
		return "defer the restart"
	case actRefuse:
		return "decline the restart"
	}
	return "do that"
}
