package main

import (
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/patchring/patchring/tray"
)

func newTrayCmd(a *app) *cobra.Command {
	var verbose bool
	cmd := &cobra.Command{
		Use:   "tray",
		Short: "Show restart status in the system tray and let you restart or defer",
		Long: `tray puts a patchring icon in the desktop's system tray (StatusNotifierItem).
Its menu says whether a restart is required and by when, and offers "Restart now",
the deferrals the policy allows with how many are left, and "Don't restart" where
the policy allows declining. Desktop notifications carry the same choices; on a
desktop without a tray host they are the only way, and carry every choice.

It runs until you pick Quit or it is stopped, and reconnects when patchringd
restarts. Desktop sessions start it from the XDG autostart entry
patchring-tray.desktop.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			level := slog.LevelInfo
			if verbose {
				level = slog.LevelDebug
			}
			log := slog.New(slog.NewTextHandler(a.Err, &slog.HandlerOptions{Level: level}))
			return tray.Run(cmd.Context(), a.client(), tray.Options{Log: log})
		},
	}
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "log debug detail")
	return cmd
}
