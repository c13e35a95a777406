package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchring/patchring/daemon/apitypes"
	"github.com/patchring/patchring/daemon/client"
)

func newPolicyShowCmd(a *app) *cobra.Command {
	var refresh bool
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Show the signed policy as it applies to this node: ring and why, gates, windows, deferral, reboot rules and who may restart, transactions, version, expiry",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c := a.client()
			p, err := c.Policy(cmd.Context())
			if refresh {
				p, err = c.RefreshPolicy(cmd.Context())
			}
			if err != nil {
				if client.IsNotFound(err) {
					return fmt.Errorf("this agent has no policy source configured (set policy.origin and policy.root_file)")
				}
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(p)
			}
			printEffectivePolicy(a.Out, p)
			return nil
		},
	}
	cmd.Flags().BoolVar(&refresh, "refresh", false, "verify the fleet's repository first (admin)")
	return cmd
}

// printEffectivePolicy writes what `patchring policy show` shows.
func printEffectivePolicy(w io.Writer, p apitypes.EffectivePolicy) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	if p.Version == "" {
		fmt.Fprintln(tw, "No verified policy yet.")
		if p.LastError != "" {
			fmt.Fprintf(tw, "Last error:\t%s\n", p.LastError)
		}
		return
	}
	state := "in force"
	if p.Expired {
		state = "EXPIRED: installing nothing new"
	}
	fmt.Fprintf(tw, "Policy:\t%s %q (%s)\n", p.Version, p.Name, state)
	fmt.Fprintf(tw, "Expires:\t%s (metadata %s)\n", p.Expires.Format(time.RFC3339), p.MetadataExpires.Format(time.RFC3339))
	fmt.Fprintf(tw, "Verified:\t%s from %s\n", p.Verified.Format(time.RFC3339), orDash(p.Source))
	if p.LastError != "" {
		fmt.Fprintf(tw, "Last refresh:\tfailed: %s (keeping the last good policy)\n", p.LastError)
	}
	fmt.Fprintf(tw, "Ring:\t%s (%s)\n", p.Ring, p.RingWhy)
	fmt.Fprintf(tw, "Deferral:\t%s after an update is first seen\n", orDash(p.Defer))
	printGates(tw, p.Gates)
	if len(p.NextWindows) == 0 {
		fmt.Fprintln(tw, "Windows:\tnone: installs whenever due")
	}
	for i, w := range p.NextWindows {
		label := ""
		if i == 0 {
			label = "Next windows:"
		}
		fmt.Fprintf(tw, "%s\t%s %s - %s\n", label, w.Name, w.Start.Format("Mon 2006-01-02 15:04 MST"), w.End.Format("15:04 MST"))
	}
	r := p.Reboot
	fmt.Fprintf(tw, "Reboot:\tnotify %s ahead; deferrals %s (at most %d); refuse %v; deadline %s, grace %s\n",
		orDash(r.NotifyAhead), orDash(strings.Join(r.DeferChoices, ", ")), r.MaxDeferrals, map[bool]string{true: "allowed", false: "not allowed"}[r.AllowRefuse], orDash(r.Deadline), orDash(r.Grace))
	fmt.Fprintf(tw, "Restart now:\t%s\n", userRestartText(r.UserRestart))
	printTransactions(tw, p.Transactions.AllowRemove, p.Transactions.WithoutRollback)
	printRestarts(tw, p.Restarts, p.Hooks)
}

// printRestarts writes the service restart mode and the reboot hooks.
func printRestarts(w io.Writer, r apitypes.RestartPolicy, h apitypes.RebootHooksPolicy) {
	list := func(globs []string) string {
		if len(globs) == 0 {
			return "none"
		}
		return strings.Join(globs, ", ")
	}
	what := map[string]string{
		"auto":   "restart the services still running replaced code (a process not restarted needs a reboot)",
		"notify": "report the services still running replaced code; restart nothing",
		"never":  "restart nothing; a process still running replaced code needs a reboot",
	}[r.Mode]
	mode := r.Mode
	if mode == "" {
		mode = "notify"
		what = "report the services still running replaced code; restart nothing"
	}
	fmt.Fprintf(w, "Restarts:\t%s: %s; include %s; exclude %s\n", mode, what, list(r.Include), list(r.Exclude))
	hook := func(argv []string, timeout string) string {
		if len(argv) == 0 {
			return "none"
		}
		return strings.Join(argv, " ") + " (timeout " + orDash(timeout) + ")"
	}
	fmt.Fprintf(w, "Hooks:\tbefore reboot %s; after reboot %s\n", hook(h.PreReboot, h.PreTimeout), hook(h.PostReboot, h.PostTimeout))
}

// printGates writes one line per gate of the node's ring (or "none").
func printGates(w io.Writer, gates []apitypes.GatePolicy) {
	if len(gates) == 0 {
		fmt.Fprintln(w, "Gates:\tnone")
	}
	for i, g := range gates {
		label := ""
		if i == 0 {
			label = "Gates:"
		}
		tooFew := "wait for them"
		if g.TooFewReports == "open" {
			tooFew = "open " + orDash(g.OpenAfter) + " after the update is first seen"
		}
		where := ""
		if g.Scope == "fleet" {
			where = " across the fleet"
		}
		fmt.Fprintf(w, "%s\twait for ring %s%s: %g%% success over at least %d reports; with fewer reports: %s\n",
			label, g.Ring, where, g.MinSuccess, g.MinNodes, tooFew)
	}
}

// userRestartText says who may restart on demand for reboot.user_restart.
func userRestartText(v string) string {
	switch v {
	case "none":
		return "root and the admin group only (user_restart: none)"
	case "", "session":
		return "root, the admin group and the user of an active local session (user_restart: session)"
	}
	return v
}

// printTransactions writes the transactions block of the policy.
func printTransactions(w io.Writer, allowRemove, withoutRollback []string) {
	list := func(globs []string) string {
		if len(globs) == 0 {
			return "none"
		}
		return strings.Join(globs, ", ")
	}
	fmt.Fprintf(w, "Transactions:\tmay remove %s; may change without a rollback payload %s\n", list(allowRemove), list(withoutRollback))
}
