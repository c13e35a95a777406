package main

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchring/patchring/console/store"
)

// newFleetVulnsCmd is `patchring fleet --console URL vulns`: the fleet's
// exposure as the console has it.
func newFleetVulnsCmd(a *app, consoleURL, consoleTokenFile *string) *cobra.Command {
	var f store.VulnFilter
	cmd := &cobra.Command{
		Use:   "vulns",
		Short: "Show the fleet's vulnerability exposure from the console: CVE x package, nodes exposed, at which sites",
		Long: "vulns reads the console named by --console: every vulnerability a node reported through a package,\n" +
			"worst first (KEV or critical first), with the nodes exposed and their sites. With --cve, --package\n" +
			"(a binary or source package), --site or --kev it also lists the nodes the filter selects.\n" +
			"`patchring vulns` shows this node's own exposure.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if *consoleURL == "" {
				return errors.New("fleet vulns reads the fleet console: give --console URL (this node's own exposure: patchring vulns)")
			}
			c, err := newConsoleClient(*consoleURL, *consoleTokenFile)
			if err != nil {
				return err
			}
			f.CVE = strings.ToUpper(f.CVE)
			p, err := c.Vulns(cmd.Context(), f)
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(p)
			}
			tw := tabwriter.NewWriter(a.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "CVE\tPACKAGE\tSEVERITY\tKEV\tFIXED IN\tNODES\tNO FIX\tSITES")
			for _, e := range p.Exposures {
				var sites []string
				for _, s := range e.Sites {
					sites = append(sites, fmt.Sprintf("%s (%d)", s.Site, s.Nodes))
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", e.ID, e.Package, e.Severity, yesNo(e.KEV), orDash(e.FixedIn), e.Nodes, e.NoFix, strings.Join(sites, ", "))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if !f.Filtered() {
				if len(p.Exposures) == 0 {
					fmt.Fprintln(a.Out, "No node reports an open vulnerability.")
				}
				return nil
			}
			fmt.Fprintf(a.Out, "\n%d exposed node(s):\n", len(p.Nodes))
			tw = tabwriter.NewWriter(a.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "HOST\tSITE\tRING\tCVE\tPACKAGE\tINSTALLED\tFIXED IN\tFIX")
			for _, n := range p.Nodes {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n.Hostname, n.Site, orDash(n.Ring), n.ID, n.Package, n.Version, orDash(n.FixedIn), orDash(n.Fix))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&f.CVE, "cve", "", "only this vulnerability (CVE-2026-1234)")
	cmd.Flags().StringVar(&f.Package, "package", "", "only this package (binary or source name)")
	cmd.Flags().StringVar(&f.Site, "site", "", "only this site")
	cmd.Flags().BoolVar(&f.KEV, "kev", false, "only entries of CISA's Known Exploited Vulnerabilities catalog")
	return cmd
}

// consoleUnmanaged is `patchring fleet --console URL unmanaged`: every
// site's unmanaged devices as the console has them.
func consoleUnmanaged(a *app, cmd *cobra.Command, url, tokenFile string) error {
	c, err := newConsoleClient(url, tokenFile)
	if err != nil {
		return err
	}
	devs, err := c.Unmanaged(cmd.Context(), "")
	if err != nil {
		return err
	}
	if a.jsonOutput() {
		return a.printJSON(devs)
	}
	tw := tabwriter.NewWriter(a.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SITE\tMAC\tVENDOR\tADDRESSES\tHOSTNAME\tFIRST SEEN\tLAST SEEN\tSEEN BY")
	for _, d := range devs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.Site, d.MAC, orDash(d.Vendor), orDash(strings.Join(d.Addrs, ",")), orDash(d.Hostname),
			d.FirstSeen.Local().Format(time.DateTime), d.LastSeen.Local().Format(time.DateTime), strings.Join(d.SeenByHosts, ","))
	}
	return tw.Flush()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
