// Command patchring is the command-line tool for users and admins of a
// patchring fleet: it talks to the local patchringd through its local API and
// carries the admin's offline tools (repository, keys, policy, catalog).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/patchring/patchring/daemon/client"
)

// app holds what every command shares: output streams, the output format and
// the way to reach the daemon.
type app struct {
	Out, Err io.Writer
	In       io.Reader
	Output   string // "text" or "json"
	Socket   string
}

// client returns a local API client for the configured socket.
func (a *app) client() *client.Client {
	return &client.Client{Socket: a.Socket}
}

// printJSON writes v as indented JSON to a.Out.
func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.Out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// jsonOutput reports whether the user asked for -o json.
func (a *app) jsonOutput() bool { return a.Output == "json" }

// commands lists the constructors of the top-level commands. Each area of
// the CLI lives in its own file and adds itself here.
var commands = []func(*app) *cobra.Command{
	newVersionCmd,
	newStatusCmd,
	newRebootCmd,
	newInventoryCmd,
	newUpdatesCmd,
	newVulnsCmd,
	newHistoryCmd,
	newRollbackCmd,
	newInstallCmd,
	newFleetCmd,
	newBundleCmd,
	newPeersCmd,
	newRepoCmd,
	newCaCmd,
	newPolicyCmd,
	newCatalogCmd,
	newAdvisoriesCmd,
	newDebugCmd,
	newTrayCmd,
	newCaCmd,
	newEnrollTokenCmd,
	newConsoleCmd,
}

func newRootCmd(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:           "patchring",
		Short:         "patchring: endpoint patch management for users and admins",
		Long:          "patchring shows and steers the local patchringd agent (status, inventory, updates, reboots)\nand carries the admin's tools for the fleet's signed repository (keys, policy, catalog).",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(a.Out)
	root.SetErr(a.Err)
	root.SetIn(a.In)
	root.PersistentFlags().StringVar(&a.Socket, "socket", a.Socket, "path of patchringd's local API socket (env PATCHRING_SOCKET)")
	root.PersistentFlags().StringVarP(&a.Output, "output", "o", "text", "output format: text or json")
	root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		if a.Output != "text" && a.Output != "json" {
			return fmt.Errorf("--output %q: use text or json", a.Output)
		}
		return nil
	}
	for _, c := range commands {
		root.AddCommand(c(a))
	}
	return root
}

func main() {
	a := &app{Out: os.Stdout, Err: os.Stderr, In: os.Stdin, Socket: client.DefaultSocket()}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd(a).ExecuteContext(ctx)
	stop()
	if err != nil {
		var exit *exitError
		if errors.As(err, &exit) {
			if exit.msg != "" {
				fmt.Fprintln(os.Stderr, "patchring:", exit.msg)
			}
			os.Exit(exit.code)
		}
		fmt.Fprintln(os.Stderr, "patchring:", err)
		os.Exit(1)
	}
}

// exitError ends the program with a given exit code; msg may be empty when
// the command already printed what went wrong.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }
