package main

import (
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchring/patchring/daemon/apitypes"
)

func newUpdatesCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "updates",
		Short: "List every applicable update with the policy's decision and why",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			u, err := a.client().Updates(cmd.Context())
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(u)
			}
			if len(u.Updates) == 0 {
				if u.Planned.IsZero() {
					fmt.Fprintln(a.Out, "No plan yet: the agent has not looked for updates.")
				} else {
					fmt.Fprintf(a.Out, "Up to date (checked %s).\n", u.Planned.Format(time.RFC3339))
				}
				return nil
			}
			fixes := fixesByUpdate(cmd.Context(), a)
			tw := tabwriter.NewWriter(a.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PACKAGE\tINSTALLED\tAVAILABLE\tCLASS\tCVES FIXED\tDECISION\tREASON")
			for _, d := range u.Updates {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.Package, orDash(d.Installed), d.Version, orDash(d.Classification), fixes[d.Package+"="+d.Version], d.Action, d.Reason)
			}
			return tw.Flush()
		},
	}
}

func newHistoryCmd(a *app) *cobra.Command {
	var limit int
	var steps bool
	cmd := &cobra.Command{
		Use:   "history",
		Short: "Show install and rollback transactions, newest first, with their steps",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			txs, err := a.client().History(cmd.Context(), limit)
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(txs)
			}
			if len(txs) == 0 {
				fmt.Fprintln(a.Out, "No transactions yet.")
				return nil
			}
			for _, tx := range txs {
				printTx(a, tx, steps)
			}
			return nil
		},
	}
	cmd.Flags().IntVarP(&limit, "limit", "n", 20, "how many transactions to show (0: all)")
	cmd.Flags().BoolVar(&steps, "steps", true, "show each transaction's journaled steps")
	return cmd
}

func printTx(a *app, tx apitypes.Transaction, steps bool) {
	outcome := tx.Outcome
	if outcome == "" {
		outcome = "open"
	}
	word := "packages"
	if len(tx.Items) == 1 {
		word = "package"
	}
	fmt.Fprintf(a.Out, "#%d %s %s of %d %s  [%s]\n", tx.ID, tx.Started.Format("2006-01-02 15:04:05"), tx.Kind, len(tx.Items), word, outcome)
	for _, it := range tx.Items {
		line := fmt.Sprintf("    %-28s %s -> %s", it.Package, orDash(it.From), orDash(it.To))
		var notes []string
		if it.Action != "" {
			notes = append(notes, it.Action)
		}
		if it.Action != "" && !it.Requested {
			notes = append(notes, "by apt's solver")
		}
		switch it.Result {
		case "":
		case "stuck":
			notes = append(notes, "now at "+orDash(it.Now)+" (neither old nor new)")
		default:
			notes = append(notes, it.Result)
		}
		if len(notes) > 0 {
			line += "  (" + strings.Join(notes, ", ") + ")"
		}
		fmt.Fprintln(a.Out, line)
	}
	if tx.Batch != 0 {
		fmt.Fprintf(a.Out, "    part of failed batch #%d, tried on its own\n", tx.Batch)
	}
	fmt.Fprintf(a.Out, "    why: %s\n", tx.Reason)
	if tx.Error != "" {
		fmt.Fprintf(a.Out, "    error: %s\n", tx.Error)
	}
	if tx.RolledBackBy != 0 {
		fmt.Fprintf(a.Out, "    rolled back by #%d\n", tx.RolledBackBy)
	}
	for _, r := range tx.Restarted {
		fmt.Fprintf(a.Out, "    service %s\n", r)
	}
	for _, s := range tx.Stale {
		fmt.Fprintf(a.Out, "    still on replaced code: %s\n", s)
	}
	if tx.RebootRequired {
		fmt.Fprintln(a.Out, "    reboot required")
		for _, r := range tx.RebootReasons {
			fmt.Fprintf(a.Out, "      because %s\n", r)
		}
	}
	if steps {
		for _, s := range tx.Steps {
			line := fmt.Sprintf("    %s  %-13s %-7s", s.At.Format("15:04:05.000"), s.Name, s.Status)
			if s.Detail != "" {
				line += " " + s.Detail
			}
			fmt.Fprintln(a.Out, line)
		}
	}
}

func newRollbackCmd(a *app) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "rollback TX",
		Short: "Roll back an install transaction to the versions it replaced (admin)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseUint(strings.TrimPrefix(args[0], "#"), 10, 64)
			if err != nil {
				return fmt.Errorf("rollback: %q is not a transaction number (see patchring history)", args[0])
			}
			tx, err := a.client().Rollback(cmd.Context(), id, reason)
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(tx)
			}
			printTx(a, tx, true)
			return nil
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the history")
	return cmd
}

func newInstallCmd(a *app) *cobra.Command {
	var now bool
	cmd := &cobra.Command{
		Use:   "install --now PACKAGE[=VERSION]",
		Short: "Install an applicable update now, outside windows and deferrals (admin; a policy deny still wins)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !now {
				return fmt.Errorf("install: the agent installs on the policy's schedule; pass --now to install at once")
			}
			pkg, version, _ := strings.Cut(args[0], "=")
			tx, err := a.client().Install(cmd.Context(), pkg, version)
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(tx)
			}
			printTx(a, tx, true)
			if tx.Outcome != "installed" {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&now, "now", false, "install now")
	return cmd
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
