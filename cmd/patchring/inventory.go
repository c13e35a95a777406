package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// The CLI reads the inventory as the JSON the local API serves; these
// views name the fields it shows (docs/inventory.md has the full schema).
type invView struct {
	TakenAt  time.Time `json:"taken_at"`
	ScanMS   float64   `json:"scan_ms"`
	Hostname string    `json:"hostname"`
	OS       *struct {
		PrettyName    string    `json:"pretty_name"`
		KernelRelease string    `json:"kernel_release"`
		Architecture  string    `json:"architecture"`
		BootTime      time.Time `json:"boot_time"`
		UptimeSeconds float64   `json:"uptime_seconds"`
		TimeZone      string    `json:"time_zone"`
		Unavailable   []unavail `json:"unavailable"`
	} `json:"os"`
	Hardware *struct {
		CPU struct {
			Model                   string `json:"model"`
			Sockets, Cores, Threads int
		} `json:"cpu"`
		Memory struct {
			TotalBytes     uint64 `json:"total_bytes"`
			AvailableBytes uint64 `json:"available_bytes"`
		} `json:"memory"`
		Filesystems []struct {
			Mountpoint string `json:"mountpoint"`
			Type       string `json:"type"`
			SizeBytes  uint64 `json:"size_bytes"`
			AvailBytes uint64 `json:"avail_bytes"`
		} `json:"filesystems"`
		DMI struct {
			SysVendor     string `json:"sys_vendor"`
			ProductName   string `json:"product_name"`
			ProductSerial string `json:"product_serial"`
			BIOSVersion   string `json:"bios_version"`
		} `json:"dmi"`
		Virt struct {
			VM        string `json:"vm"`
			Container string `json:"container"`
		} `json:"virtualization"`
		Unavailable []unavail `json:"unavailable"`
	} `json:"hardware"`
	Network *struct {
		Interfaces []struct {
			Name      string   `json:"name"`
			MAC       string   `json:"mac"`
			Up        bool     `json:"up"`
			Addresses []string `json:"addresses"`
		} `json:"interfaces"`
		DefaultRoutes []struct {
			Family, Interface, Gateway string
		} `json:"default_routes"`
	} `json:"network"`
	Packages *struct {
		Managers []string `json:"managers"`
		Items    []struct {
			Manager, Name, Version, Architecture, Status string
		} `json:"items"`
		Counts struct {
			Total, Present int
			ConfigFiles    int `json:"config_files"`
			Broken         int
		} `json:"counts"`
		Kernels struct {
			Running          string `json:"running"`
			Newest           string `json:"newest"`
			RunningInstalled bool   `json:"running_installed"`
		} `json:"kernels"`
		Unavailable []unavail `json:"unavailable"`
	} `json:"packages"`
	Reboot *struct {
		Required bool      `json:"required"`
		Reasons  []string  `json:"reasons"`
		Packages []string  `json:"packages"`
		Since    time.Time `json:"since"`
	} `json:"reboot"`
	Restart *struct {
		Units []struct {
			Unit string `json:"unit"`
			PIDs []int  `json:"pids"`
		} `json:"units"`
		Scanned int `json:"scanned"`
	} `json:"restart"`
	Security *struct {
		Vulnerabilities []struct {
			Name, Status, Detail string
		} `json:"vulnerabilities"`
		ASLR        int       `json:"aslr"`
		SecureBoot  string    `json:"secure_boot"`
		Unavailable []unavail `json:"unavailable"`
	} `json:"security"`
}

type unavail struct {
	Source string `json:"source"`
	Reason string `json:"reason"`
}

var inventorySections = []string{"os", "hardware", "network", "packages", "reboot", "restart", "security"}

func newInventoryCmd(a *app) *cobra.Command {
	var section string
	var rescan bool
	cmd := &cobra.Command{
		Use:   "inventory",
		Short: "Show what this endpoint is and runs: OS, hardware, network, packages, reboot, restarts, security",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if section != "" && !contains(inventorySections, section) {
				return fmt.Errorf("--section %q: use one of %s", section, strings.Join(inventorySections, ", "))
			}
			c := a.client()
			raw, err := c.Inventory(cmd.Context())
			if rescan {
				raw, err = c.Rescan(cmd.Context())
			}
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				if section != "" {
					var m map[string]json.RawMessage
					if err := json.Unmarshal(raw, &m); err != nil {
						return err
					}
					raw = m[section]
				}
				return a.printJSON(raw)
			}
			var v invView
			if err := json.Unmarshal(raw, &v); err != nil {
				return fmt.Errorf("inventory: decode: %w", err)
			}
			printInventory(a.Out, &v, section)
			return nil
		},
	}
	cmd.Flags().StringVar(&section, "section", "", "show one section: "+strings.Join(inventorySections, "|"))
	cmd.Flags().BoolVar(&rescan, "rescan", false, "take a fresh inventory first (admin)")
	cmd.AddCommand(newInventoryHistoryCmd(a))
	return cmd
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func gib(b uint64) string { return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30)) }

func printInventory(w io.Writer, v *invView, only string) {
	show := func(s string) bool { return only == "" || only == s }
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	fmt.Fprintf(tw, "Scanned:\t%s (%.0f ms)\n", v.TakenAt.Format(time.RFC3339), v.ScanMS)
	un := func(list []unavail) {
		for _, u := range list {
			fmt.Fprintf(tw, "  unavailable:\t%s: %s\n", u.Source, u.Reason)
		}
	}
	if o := v.OS; o != nil && show("os") {
		fmt.Fprintf(tw, "\nOS\n  name:\t%s\n  kernel:\t%s (%s)\n  booted:\t%s (up %s)\n  time zone:\t%s\n",
			o.PrettyName, o.KernelRelease, o.Architecture, o.BootTime.Format(time.RFC3339),
			(time.Duration(o.UptimeSeconds) * time.Second).Round(time.Minute), o.TimeZone)
		un(o.Unavailable)
	}
	if h := v.Hardware; h != nil && show("hardware") {
		fmt.Fprintf(tw, "\nHardware\n  cpu:\t%s (%d sockets, %d cores, %d threads)\n  memory:\t%s (%s available)\n",
			h.CPU.Model, h.CPU.Sockets, h.CPU.Cores, h.CPU.Threads, gib(h.Memory.TotalBytes), gib(h.Memory.AvailableBytes))
		fmt.Fprintf(tw, "  system:\t%s %s, serial %s, BIOS %s\n  virtualization:\tvm=%s container=%s\n",
			orDash(h.DMI.SysVendor), orDash(h.DMI.ProductName), orDash(h.DMI.ProductSerial), orDash(h.DMI.BIOSVersion),
			orDash(h.Virt.VM), orDash(h.Virt.Container))
		for _, f := range h.Filesystems {
			fmt.Fprintf(tw, "  fs %s:\t%s, %s free of %s\n", f.Mountpoint, f.Type, gib(f.AvailBytes), gib(f.SizeBytes))
		}
		un(h.Unavailable)
	}
	if n := v.Network; n != nil && show("network") {
		fmt.Fprintln(tw, "\nNetwork")
		for _, i := range n.Interfaces {
			state := "down"
			if i.Up {
				state = "up"
			}
			fmt.Fprintf(tw, "  %s:\t%s %s %s\n", i.Name, state, orDash(i.MAC), strings.Join(i.Addresses, " "))
		}
		for _, r := range n.DefaultRoutes {
			fmt.Fprintf(tw, "  default route:\t%s via %s dev %s\n", r.Family, orDash(r.Gateway), r.Interface)
		}
	}
	if p := v.Packages; p != nil && show("packages") {
		fmt.Fprintf(tw, "\nPackages (%s)\n  installed:\t%d (%d with config files only, %d broken)\n  kernel:\trunning %s, newest installed %s\n",
			strings.Join(p.Managers, ", "), p.Counts.Present, p.Counts.ConfigFiles, p.Counts.Broken, p.Kernels.Running, orDash(p.Kernels.Newest))
		un(p.Unavailable)
		if only == "packages" {
			fmt.Fprintln(tw, "\n  NAME\tVERSION\tARCH\tSTATUS")
			for _, it := range p.Items {
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", it.Name, it.Version, it.Architecture, it.Status)
			}
		}
	}
	if r := v.Reboot; r != nil && show("reboot") {
		fmt.Fprintf(tw, "\nReboot\n  required:\t%v\n", r.Required)
		for _, why := range r.Reasons {
			fmt.Fprintf(tw, "  why:\t%s\n", why)
		}
		if len(r.Packages) > 0 {
			fmt.Fprintf(tw, "  packages:\t%s\n", strings.Join(r.Packages, ", "))
		}
	}
	if r := v.Restart; r != nil && show("restart") {
		fmt.Fprintf(tw, "\nServices needing a restart (%d processes scanned)\n", r.Scanned)
		if len(r.Units) == 0 {
			fmt.Fprintln(tw, "  none")
		}
		for _, u := range r.Units {
			fmt.Fprintf(tw, "  %s:\tpids %v\n", orDash(u.Unit), u.PIDs)
		}
	}
	if s := v.Security; s != nil && show("security") {
		fmt.Fprintf(tw, "\nSecurity\n  ASLR:\t%d\n  Secure Boot:\t%s\n", s.ASLR, orDash(s.SecureBoot))
		for _, vu := range s.Vulnerabilities {
			fmt.Fprintf(tw, "  %s:\t%s\n", vu.Name, vu.Detail)
		}
		un(s.Unavailable)
	}
}

func newInventoryHistoryCmd(a *app) *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:   "history",
		Short: "List changes between inventory scans: packages added, removed, upgraded, downgraded; kernel; reboot",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			raw, err := a.client().InventoryHistory(cmd.Context(), limit)
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(raw)
			}
			var recs []struct {
				At      time.Time `json:"at"`
				Changes []struct {
					Kind, Package, From, To, Detail string
				} `json:"changes"`
			}
			if err := json.Unmarshal(raw, &recs); err != nil {
				return fmt.Errorf("inventory history: decode: %w", err)
			}
			if len(recs) == 0 {
				fmt.Fprintln(a.Out, "No changes recorded yet.")
				return nil
			}
			tw := tabwriter.NewWriter(a.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TIME\tCHANGE\tPACKAGE\tFROM\tTO")
			for _, r := range recs {
				for _, c := range r.Changes {
					pkg := c.Package
					if pkg == "" {
						pkg = c.Detail
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.At.Format("2006-01-02 15:04:05"), c.Kind, orDash(pkg), orDash(c.From), orDash(c.To))
				}
			}
			return tw.Flush()
		},
	}
	cmd.Flags().IntVarP(&limit, "limit", "n", 50, "how many scans with changes to show (0: all)")
	return cmd
}
