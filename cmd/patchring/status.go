package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchring/patchring/internal/version"
)

func newVersionCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of this CLI",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if a.jsonOutput() {
				return a.printJSON(map[string]string{"version": version.Version})
			}
			fmt.Fprintln(a.Out, "patchring", version.Version)
			return nil
		},
	}
}

func newStatusCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show this node: identity, version, uptime and each subsystem",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := a.client().Status(cmd.Context())
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(st)
			}
			tw := tabwriter.NewWriter(a.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "Node:\t%s\n", st.NodeID)
			fmt.Fprintf(tw, "Hostname:\t%s\n", st.Hostname)
			fmt.Fprintf(tw, "Version:\t%s\n", st.Version)
			fmt.Fprintf(tw, "Uptime:\t%s (since %s, start #%d)\n", time.Duration(st.Uptime), st.Started.Format(time.RFC3339), st.StartedAt)
			fmt.Fprintf(tw, "State dir:\t%s\n", st.StateDir)
			fmt.Fprintf(tw, "You:\tuid %d, may %s\n", st.Caller.UID, st.Caller.Can)
			for _, s := range st.Subsystems {
				if s.Name == "policy" && s.Details["identity"] != "" {
					fmt.Fprintf(tw, "Credential:\t%s\n", s.Details["identity"])
				}
				if s.Name == "policy" && s.Details["warning"] != "" {
					fmt.Fprintf(tw, "Warning:\t%s\n", s.Details["warning"])
				}
			}
			tw.Flush()
			fmt.Fprintln(a.Out)
			tw = tabwriter.NewWriter(a.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SUBSYSTEM\tSTATE\tSUMMARY")
			policy := false
			for _, s := range st.Subsystems {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Name, s.State, s.Summary)
				policy = policy || s.Name == "policy"
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if !policy {
				fmt.Fprintln(a.Out, "\nNo signed policy configured: this agent installs nothing. Enroll it: drop an enrollment token\n"+
					"(patchring enroll-token create) into /etc/patchring/enroll.token, beside patchringd's config file,\n"+
					"and the agent enrolls with it within seconds; or run patchringd enroll @TOKENFILE. By hand: copy the\n"+
					"fleet's root.json to /etc/patchring/root.json, set policy.origin and policy.root_file in\n"+
					"/etc/patchring/patchringd.yaml and restart patchringd (see README.md, Install).")
			}
			return nil
		},
	}
}
