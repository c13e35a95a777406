package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchring/patchring/daemon/client"
)

func newPolicyShowCmd(a *app) *cobra.Command {
	var refresh bool
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Show the signed policy as it applies to this node: ring and why, windows, deferral, reboot rules, version, expiry",
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
			tw := tabwriter.NewWriter(a.Out, 0, 4, 2, ' ', 0)
			defer tw.Flush()
			if p.Version == "" {
				fmt.Fprintln(tw, "No verified policy yet.")
				if p.LastError != "" {
					fmt.Fprintf(tw, "Last error:\t%s\n", p.LastError)
				}
				return nil
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
			return nil
		},
	}
	cmd.Flags().BoolVar(&refresh, "refresh", false, "verify the fleet's repository first (admin)")
	return cmd
}
