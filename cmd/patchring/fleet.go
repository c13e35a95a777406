package main

import (
	"fmt"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchring/patchring/daemon/apitypes"
	"github.com/patchring/patchring/daemon/client"
)

func fleetOrHint(a *app, cmd *cobra.Command) (apitypes.Fleet, error) {
	f, err := a.client().Fleet(cmd.Context())
	if client.IsNotFound(err) {
		return f, fmt.Errorf("this agent does not gossip with its site (set gossip.enabled and gossip.key_file)")
	}
	return f, err
}

func newFleetCmd(a *app) *cobra.Command {
	var consoleURL, consoleTokenFile string
	cmd := &cobra.Command{
		Use:   "fleet",
		Short: "Show every member of this node's site: ring, status, policy version, updates, reboot state, last seen",
		Long: "fleet shows the site as its members describe themselves over the encrypted gossip pool.\n" +
			"It is a view, not an authority: agents act only on signed metadata.\n" +
			"Once the repository publishes fleet.json, members need a credential the fleet CA signed;\n" +
			"nodes refused or dropped (no credential, forged, expired, revoked, another fleet's) are listed\n" +
			"below the members with the reason.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if consoleURL != "" {
				return consoleFleet(a, cmd, consoleURL, consoleTokenFile)
			}
			f, err := fleetOrHint(a, cmd)
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(f)
			}
			sort.Slice(f.Members, func(i, j int) bool { return f.Members[i].Hostname < f.Members[j].Hostname })
			tw := tabwriter.NewWriter(a.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "HOST\tRING\tPKG\tSTATE\tPOLICY\tPENDING\tINSTALLED\tFAILED\tREBOOT\tCVES C/H/M/L (KEV)\tLAST SEEN")
			for _, m := range f.Members {
				reboot := "-"
				switch {
				case m.Unhealthy:
					reboot = "UNHEALTHY (post-reboot hook failed)"
				case m.RebootHeld:
					reboot = "held (pre-reboot hook failed)"
				case m.RebootRefused:
					reboot = "refused by user"
				case m.RebootRequired:
					reboot = "required"
					if !m.RebootDeadline.IsZero() {
						reboot += " by " + m.RebootDeadline.Format("Jan 2 15:04")
					}
				}
				host := m.Hostname
				if m.Local {
					host += " (this node)"
				}
				seen := "-"
				if !m.LastSeen.IsZero() {
					seen = time.Since(m.LastSeen).Round(time.Second).String() + " ago"
				}
				state := m.Liveness
				if m.Visiting {
					state += ", visiting from " + m.Site
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\tv%d\t%d\t%d\t%d\t%s\t%s\t%s\n", host, orDash(m.Ring), orDash(m.Format), state, m.PolicyVersion, m.Pending, m.Installed, m.Failed, reboot, exposureText(m.Exposure), seen)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if len(f.Refused) == 0 {
				return nil
			}
			fmt.Fprintf(a.Out, "\nRefused: %d node(s) without a valid credential (not members: not counted, not served)\n", len(f.Refused))
			tw = tabwriter.NewWriter(a.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NODE\tADDRESS\tREASON\tTIMES\tLAST")
			for _, r := range f.Refused {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", r.NodeID, orDash(r.Addr), r.Reason, r.Count, time.Since(r.At).Round(time.Second).String()+" ago")
			}
			return tw.Flush()
		},
	}
	cmd.PersistentFlags().StringVar(&consoleURL, "console", "", "read the whole fleet (rings x sites) from this console URL instead of this node's site (fleet, fleet vulns, fleet unmanaged)")
	cmd.PersistentFlags().StringVar(&consoleTokenFile, "console-token-file", "", "file holding a console API token (default: env PATCHRING_CONSOLE_TOKEN)")
	cmd.AddCommand(newFleetKeysCmd(a), newFleetKeygenCmd(a), newFleetRotateKeyCmd(a), newFleetUnmanagedCmd(a, &consoleURL, &consoleTokenFile),
		newFleetVulnsCmd(a, &consoleURL, &consoleTokenFile))
	cmd.AddCommand(&cobra.Command{
		Use:   "rollout",
		Short: "Summarize each ring of the site: done, pending, failed, compliance",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := fleetOrHint(a, cmd)
			if err != nil {
				return err
			}
			type ringSum struct {
				Ring       string  `json:"ring"`
				Nodes      int     `json:"nodes"`
				Done       int     `json:"up_to_date"`
				Pending    int     `json:"pending"`
				Failed     int     `json:"failed"`
				Reboot     int     `json:"reboot_required"`
				Compliance float64 `json:"compliance_pct"`
			}
			sums := map[string]*ringSum{}
			var order []string
			for _, m := range f.Members {
				if m.Liveness != "alive" && !m.Local {
					continue
				}
				r := m.Ring
				if r == "" {
					r = "(no policy)"
				}
				s := sums[r]
				if s == nil {
					s = &ringSum{Ring: r}
					sums[r] = s
					order = append(order, r)
				}
				s.Nodes++
				switch {
				case m.Failed > 0:
					s.Failed++
				case m.Pending > 0:
					s.Pending++
				default:
					s.Done++
				}
				if m.RebootRequired {
					s.Reboot++
				}
			}
			sort.Strings(order)
			var out []ringSum
			for _, r := range order {
				s := sums[r]
				s.Compliance = 100 * float64(s.Done) / float64(s.Nodes)
				out = append(out, *s)
			}
			if a.jsonOutput() {
				return a.printJSON(out)
			}
			tw := tabwriter.NewWriter(a.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "RING\tNODES\tUP TO DATE\tPENDING\tFAILED\tREBOOT REQUIRED\tCOMPLIANCE")
			for _, s := range out {
				fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%.0f%%\n", s.Ring, s.Nodes, s.Done, s.Pending, s.Failed, s.Reboot, s.Compliance)
			}
			return tw.Flush()
		},
	})
	return cmd
}

func newPeersCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "peers",
		Short: "Show this node's payload traffic: bytes from and to each peer, bytes from the origin, apt bytes from the vendor and from peers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := a.client().Peers(cmd.Context())
			if client.IsNotFound(err) {
				return fmt.Errorf("this agent does not share payloads with peers (set p2p.enabled)")
			}
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(p)
			}
			fmt.Fprintf(a.Out, "From peers: %s  from the origin: %s  to peers: %s  bandwidth optimization: %.0f%%\n",
				bytesStr(p.FromPeers), bytesStr(p.FromOrigin), bytesStr(p.ToPeers), p.BandwidthOptimization)
			tw := tabwriter.NewWriter(a.Out, 0, 4, 2, ' ', 0)
			if len(p.Apt) > 0 {
				fmt.Fprintln(tw, "APT\tFROM VENDOR\tFROM PEERS\tFROM STORE\tREFUSED")
				for _, t := range p.Apt {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", t.Kind, bytesStr(t.FromVendor), bytesStr(t.FromPeers), bytesStr(t.FromStore), t.Refused)
				}
				if err := tw.Flush(); err != nil {
					return err
				}
			}
			if len(p.Peers) == 0 {
				return nil
			}
			fmt.Fprintln(tw, "PEER\tIN\tOUT\tBAD DATA\tFAILURES\tLAST ERROR")
			for _, pr := range p.Peers {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\n", pr.ID, bytesStr(pr.BytesIn), bytesStr(pr.BytesOut), pr.BadData, pr.Failures, orDash(pr.LastError))
			}
			return tw.Flush()
		},
	}
}

func bytesStr(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
