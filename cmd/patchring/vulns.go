package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/patchring/patchring/daemon/apitypes"
)

func newVulnsCmd(a *app) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "vulns",
		Short: "List the vulnerabilities this node is exposed to, worst first",
		Long: `Lists the CVEs the installed packages are exposed to according to the signed
advisory database (OSV, CISA KEV), worst first: severity and CVSS score, KEV, the
first fixed version and whether the update that fixes it is available, approved or
pending ("none": no fix published for this release). CPU vulnerabilities the kernel
reports join the list.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := a.client().Vulns(cmd.Context())
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(v)
			}
			ad := v.Advisories
			switch {
			case ad.Version == 0 && ad.Error != "":
				fmt.Fprintf(a.Out, "No advisory database: %s\n", ad.Error)
			case ad.Version == 0:
				fmt.Fprintln(a.Out, "No advisory database yet.")
			default:
				fmt.Fprintf(a.Out, "Advisory database version %d (built %s, %d entries, KEV catalog %s)\n", ad.Version, ad.Built, ad.Entries, orDash(ad.KEVCatalog))
				if ad.Stale {
					fmt.Fprintf(a.Out, "STALE: the last refresh was refused: %s\n", ad.Error)
				}
			}
			s := v.Summary
			fmt.Fprintf(a.Out, "Exposure: %d critical, %d high, %d medium, %d low, %d unknown; %d KEV; %d without an available fix\n",
				s.Critical, s.High, s.Medium, s.Low, s.Unknown, s.KEV, s.NoFix)
			if len(v.Findings) > 0 {
				tw := tabwriter.NewWriter(a.Out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "PACKAGE\tVERSION\tCVE\tSEVERITY\tKEV\tFIXED IN\tFIX\tUPDATE")
				for _, f := range v.Findings {
					if !all && f.Severity == "low" {
						continue
					}
					kev := ""
					if f.KEV {
						kev = "KEV"
					}
					sev := f.Severity
					if f.Score > 0 {
						sev = fmt.Sprintf("%s %.1f", f.Severity, f.Score)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f.Package, f.Version, f.ID, sev, orDash(kev), orDash(f.FixedIn), f.Fix, orDash(f.Update))
				}
				if err := tw.Flush(); err != nil {
					return err
				}
			}
			var cpu []string
			for _, c := range v.CPU {
				if c.Status == "vulnerable" {
					cpu = append(cpu, c.Name)
				}
			}
			if len(cpu) > 0 {
				fmt.Fprintf(a.Out, "CPU vulnerable (kernel): %s\n", strings.Join(cpu, ", "))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "list low-severity findings too")
	return cmd
}

// updateCVEs is what one update fixes: its CVEs and their worst severity.
type updateCVEs struct {
	CVEs  []string
	Worst string
	KEV   bool
}

var severityRank = map[string]int{"none": 1, "low": 2, "medium": 3, "high": 4, "critical": 5}

// fixesByUpdate reads the node's exposure and returns, per "package=version"
// of an update, the CVEs it fixes; nil when the agent has no advisories.
func fixesByUpdate(ctx context.Context, a *app) map[string]*updateCVEs {
	v, err := a.client().Vulns(ctx)
	if err != nil {
		return nil
	}
	out := map[string]*updateCVEs{}
	for _, f := range v.Findings {
		if f.Update == "" {
			continue
		}
		k := f.Package + "=" + f.Update
		u := out[k]
		if u == nil {
			u = &updateCVEs{}
			out[k] = u
		}
		u.CVEs = append(u.CVEs, f.ID)
		u.KEV = u.KEV || f.KEV
		if severityRank[f.Severity] > severityRank[u.Worst] {
			u.Worst = f.Severity
		}
	}
	return out
}

func (u *updateCVEs) String() string {
	if u == nil {
		return "-"
	}
	s := fmt.Sprintf("%d (%s", len(u.CVEs), orDash(u.Worst))
	if u.KEV {
		s += ", KEV"
	}
	list := u.CVEs
	if len(list) > 3 {
		list = append(list[:3:3], "...")
	}
	return s + ") " + strings.Join(list, ",")
}

// exposureText is a member's exposure in the fleet view: counts by
// severity and KEV, "-" when it matched no advisory database.
func exposureText(v apitypes.VulnSummary) string {
	if v.Version == 0 {
		return "-"
	}
	s := fmt.Sprintf("%d/%d/%d/%d", v.Critical, v.High, v.Medium, v.Low)
	if v.KEV > 0 {
		s += fmt.Sprintf(" (%d KEV)", v.KEV)
	}
	return s
}
