package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchring/patchring/daemon/apitypes"
)

func newRebootCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "reboot",
		Short: "Show the pending restart; defer it, decline it or restart now, within the policy's limits",
		Long: `reboot shows whether installed updates need a restart, by when it happens, and
what you may do about it. Any local user may defer the restart by one of the
choices the signed policy offers (while deferrals are left and the deadline has not
passed), decline it where the policy allows that, or restart now. patchringd
enforces the limits; a request beyond them is refused with the reason.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newRebootStatusCmd(a), newRebootDeferCmd(a), newRebootNowCmd(a), newRebootRefuseCmd(a))
	return cmd
}

func newRebootStatusCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show whether a restart is required, its deadline and the deferrals left",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := a.client().RebootStatus(cmd.Context())
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(st)
			}
			return printRebootStatus(a.Out, st, time.Now())
		},
	}
}

func newRebootDeferCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "defer DURATION|CHOICE",
		Short: "Postpone the restart by one of the choices the policy offers (see 'patchring reboot status')",
		Example: `  patchring reboot defer 4h
  patchring reboot defer tomorrow`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := a.client().Defer(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(st)
			}
			fmt.Fprintf(a.Out, "Restart deferred until %s.\n", when(st.DeferredUntil, time.Now()))
			fmt.Fprintln(a.Out, deferralsLeft(st))
			return nil
		},
	}
}

func newRebootRefuseCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "refuse",
		Short: "Decline the restart where the policy allows it (it still happens at the deadline)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := a.client().Refuse(cmd.Context())
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(st)
			}
			fmt.Fprintln(a.Out, "You declined the restart; your administrator sees that you did.")
			if !st.EffectiveDeadline.IsZero() {
				fmt.Fprintf(a.Out, "It happens at the deadline, %s, unless you restart before.\n", when(st.EffectiveDeadline, time.Now()))
			}
			return nil
		},
	}
}

func newRebootNowCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "now",
		Short: "Restart the machine now to finish installing updates (a restart must be pending)",
		Long: "now asks the agent to restart the machine to finish installing updates; a restart must be pending.\n" +
			"Root and the agent's admin group may; another user only while logged in at the machine (a seat or\n" +
			"the console, not ssh) and where the policy's reboot.user_restart is session (the default). On a\n" +
			"headless host the restart waits for a free restart slot of its site.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.client().RestartNow(cmd.Context()); err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(map[string]string{"result": "restarting"})
			}
			fmt.Fprintln(a.Out, "Restarting now.")
			return nil
		},
	}
}

// printRebootStatus writes the status for a human.
func printRebootStatus(w io.Writer, st apitypes.RebootStatus, now time.Time) error {
	if st.Unhealthy != "" {
		fmt.Fprintln(w, "UNHEALTHY after the last restart: "+st.Unhealthy)
	}
	if !st.Required {
		fmt.Fprintln(w, "No restart needed.")
		printHookRuns(w, st.Hooks)
		return nil
	}
	switch {
	case st.State == apitypes.RebootStateRebooting:
		fmt.Fprintln(w, "Restarting now.")
	case st.Refused:
		fmt.Fprintln(w, "Restart required; declined by "+st.RefusedBy+".")
	default:
		fmt.Fprintln(w, "Restart required.")
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	row("Required since", when(st.Since, now))
	if st.Reason != "" {
		row("Why", st.Reason)
	}
	if len(st.Packages) > 0 {
		row("Installed", strings.Join(st.Packages, ", "))
	}
	if !st.EffectiveDeadline.IsZero() {
		row("Deadline", when(st.EffectiveDeadline, now)+" (the restart happens by then)")
	}
	if st.Urgent != "" {
		row("Urgent", st.Urgent+" (deadline "+when(st.UrgentDeadline, now)+")")
	}
	if !st.NextAutomatic.IsZero() {
		row("Automatic restart", when(st.NextAutomatic, now))
	}
	if st.DeferredUntil.After(now) {
		row("Deferred until", when(st.DeferredUntil, now))
	}
	if len(st.Choices) > 0 || st.DeferralsUsed > 0 {
		row("Deferrals", deferralsLeft(st))
	}
	if len(st.Choices) > 0 {
		var cs []string
		for _, c := range st.Choices {
			cs = append(cs, fmt.Sprintf("%s (%s)", c.Duration, c.Label))
		}
		row("Choices", strings.Join(cs, ", "))
	}
	if st.CanRefuse && !st.Refused {
		row("Decline", "allowed: patchring reboot refuse")
	}
	if st.Refused {
		row("Declined by", fmt.Sprintf("%s at %s", st.RefusedBy, when(st.RefusedAt, now)))
	}
	if st.ActiveHours != "" {
		row("Active hours", st.ActiveHours+" (no automatic restart then before the deadline)")
	}
	if st.Waiting != "" {
		row("Waiting", st.Waiting)
	}
	if st.LastError != "" {
		row("Last attempt", "failed: "+st.LastError)
	}
	if st.Held != "" {
		row("Held", st.Held+" (tried again later)")
	}
	row("State", st.State)
	if err := tw.Flush(); err != nil {
		return err
	}
	printHookRuns(w, st.Hooks)
	return nil
}

func deferralsLeft(st apitypes.RebootStatus) string {
	switch st.DeferralsLeft {
	case 0:
		return fmt.Sprintf("%d used, none left", st.DeferralsUsed)
	default:
		return fmt.Sprintf("%d used, %d left", st.DeferralsUsed, st.DeferralsLeft)
	}
}

// when shows t in local time with how far it is from now:
// "Mon 2 Mar 18:00 CET (in 3h0m)".
func when(t, now time.Time) string {
	s := t.Local().Format("Mon 2 Jan 2006 15:04 MST")
	d := t.Sub(now).Round(time.Minute)
	switch {
	case d > 0:
		return s + " (in " + shortDuration(d) + ")"
	case d < 0:
		return s + " (" + shortDuration(-d) + " ago)"
	}
	return s + " (now)"
}

// shortDuration writes a whole number of minutes as "2d3h", "3h5m", "3h",
// "45m".
func shortDuration(d time.Duration) string {
	days, h, m := int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour), int(d%time.Hour/time.Minute)
	var b strings.Builder
	if days > 0 {
		fmt.Fprintf(&b, "%dd", days)
	}
	if h > 0 {
		fmt.Fprintf(&b, "%dh", h)
	}
	if m > 0 && days == 0 {
		fmt.Fprintf(&b, "%dm", m)
	}
	if b.Len() == 0 {
		return "0m"
	}
	return b.String()
}

// printHookRuns lists the latest reboot hook runs (at most 5).
func printHookRuns(w io.Writer, runs []apitypes.HookRun) {
	if len(runs) > 5 {
		runs = runs[len(runs)-5:]
	}
	for _, r := range runs {
		res := "ok"
		if !r.OK {
			res = "FAILED: " + r.Error
		}
		fmt.Fprintf(w, "Hook %s at %s: %s (%s)\n", r.Hook, r.At.Format(time.RFC3339), res, r.Command)
	}
}
