package main

import "github.com/spf13/cobra"

// newCaCmd is the fleet authority's command. (Minimal on this branch: the
// admin subcommands init/sign/list/revoke/show/issuer live on another
// branch; this one adds serve.)
func newCaCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ca",
		Short: "The fleet's authority: node credentials, issuing keys, revocation",
	}
	for _, sub := range []func(*app) *cobra.Command{
		newCaServeCmd,
	} {
		cmd.AddCommand(sub(a))
	}
	return cmd
}
