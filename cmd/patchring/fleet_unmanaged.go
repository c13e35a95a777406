package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchring/patchring/daemon/client"
)

func newFleetUnmanagedCmd(a *app, consoleURL, consoleTokenFile *string) *cobra.Command {
	return &cobra.Command{
		Use:   "unmanaged",
		Short: "List the devices on this node's site that run no agent: MAC, vendor, addresses, host name, first and last seen, seen by",
		Long: "unmanaged lists what the site's agents observed on their LAN (neighbour tables and the ARP, NDP,\n" +
			"DHCP and mDNS traffic they receive; an ARP sweep where the signed policy enables one), less the\n" +
			"site's members. See docs/UNMANAGED.md for what is observed and what is sent.\n" +
			"With --console URL it lists every site's devices as their reporters sent them to the console.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if *consoleURL != "" {
				return consoleUnmanaged(a, cmd, *consoleURL, *consoleTokenFile)
			}
			u, err := a.client().Unmanaged(cmd.Context())
			if client.IsNotFound(err) {
				return fmt.Errorf("this agent does not discover unmanaged devices (an older agent)")
			}
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(u)
			}
			if !u.Enabled {
				fmt.Fprintln(a.Out, "Discovery of unmanaged devices is off by policy (unmanaged.enabled: false).")
				return nil
			}
			sweep := "off"
			if u.Sweep {
				sweep = fmt.Sprintf("on, %d probes sent by this node", u.Probes)
			}
			fmt.Fprintf(a.Out, "Site %s: %d unmanaged devices (this node saw %d; sightings of %d members merged; sweep %s)\n",
				orDash(u.Site), len(u.Devices), u.Observed, u.Members, sweep)
			if u.Dropped > 0 {
				fmt.Fprintf(a.Out, "%d more devices are left out by the site cap (unmanaged.max_per_site).\n", u.Dropped)
			}
			if len(u.Devices) == 0 {
				return nil
			}
			tw := tabwriter.NewWriter(a.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "MAC\tVENDOR\tADDRESSES\tHOSTNAME\tFIRST SEEN\tLAST SEEN\tSEEN BY")
			for _, d := range u.Devices {
				var by []string
				for _, id := range d.SeenBy {
					by = append(by, shortID(id))
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.MAC, orDash(d.Vendor), orDash(strings.Join(d.Addrs, ",")), orDash(d.Hostname),
					d.FirstSeen.Local().Format(time.DateTime), d.LastSeen.Local().Format(time.DateTime), strings.Join(by, ","))
			}
			return tw.Flush()
		},
	}
}
