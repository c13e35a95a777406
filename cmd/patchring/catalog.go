package main

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/patchring/patchring/policy/tufrepo"
)

func newCatalogCmd(a *app) *cobra.Command {
	f := &repoFlags{}
	cmd := &cobra.Command{
		Use:   "catalog",
		Short: "Publish third-party payloads as signed catalog targets",
		Long: `Admin tools for the catalog: third-party payloads (packages not in a vendor
repository) published as signed targets catalog/<package>/<version>/<file> with
their metadata (package, version, what they apply to, reboot, severity,
classification, CVEs). Agents verify every byte against the signed hashes.`,
	}
	f.bind(cmd)
	cmd.AddCommand(newCatalogAddCmd(a, f), newCatalogListCmd(a, f), newCatalogRemoveCmd(a, f))
	return cmd
}

func newCatalogAddCmd(a *app, f *repoFlags) *cobra.Command {
	var m tufrepo.CatalogMeta
	cmd := &cobra.Command{
		Use:   "add FILE [--package NAME --version V]",
		Short: "Add a payload to the catalog and publish it",
		Long: `Add a .deb or .rpm payload to the catalog and publish it. The entry records
the payload's format: agents install only their own package manager's format
(apt: .deb, dnf: .rpm). An .rpm's package name, [epoch:]version-release and
architecture are read from its header (with the rpm tool), so --package and
--version may be left out; given, they must agree with it. A .deb needs both.`,
		Example: `  patchring catalog add ./zoom_6.1.0_amd64.deb --package zoom --version 6.1.0 \
    --applies-to debian-12 --reboot --severity high --classification security --cve CVE-2024-45678
  patchring catalog add ./acme-agent-2.4.1-1.x86_64.rpm \
    --applies-to rhel-9 --applies-to fedora-41 --applies-to arch:x86_64`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := fillFromPackage(cmd.Context(), args[0], &m); err != nil {
				return fmt.Errorf("catalog add: %w", err)
			}
			var missing []string
			if m.Package == "" {
				missing = append(missing, "--package")
			}
			if m.Version == "" {
				missing = append(missing, "--version")
			}
			if len(missing) > 0 {
				return fmt.Errorf("%s required", strings.Join(missing, " and "))
			}
			if err := m.Validate(); err != nil {
				return fmt.Errorf("catalog entry for %s:\n%w", args[0], err)
			}
			r, err := f.open(a, true)
			if err != nil {
				return err
			}
			name, err := r.AddCatalogFile(args[0], m)
			if err != nil {
				return err
			}
			v, err := r.Publish()
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(map[string]any{"target": name, "versions": v})
			}
			fmt.Fprintf(a.Out, "Added %s\n", name)
			return printVersions(a, "Published", v)
		},
	}
	cmd.Flags().StringVar(&m.Package, "package", "", "package name (read from an .rpm's header when left out)")
	cmd.Flags().StringVar(&m.Version, "version", "", "package version (exact, as the package manager writes it: dpkg's version, or rpm's [epoch:]version-release; read from an .rpm's header when left out)")
	cmd.Flags().StringArrayVar(&m.AppliesTo, "applies-to", nil, "what the payload applies to, e.g. debian-12, rhel-9, fedora-41, arch:x86_64 (repeatable)")
	cmd.Flags().BoolVar(&m.Reboot, "reboot", false, "installing it needs a reboot")
	cmd.Flags().StringVar(&m.Severity, "severity", "", "severity: "+strings.Join(tufrepo.Severities, ", "))
	cmd.Flags().StringVar(&m.Classification, "classification", "", "classification, e.g. security, bugfix, feature")
	cmd.Flags().StringArrayVar(&m.CVEs, "cve", nil, "CVE fixed, e.g. CVE-2024-45678 (repeatable)")
	return cmd
}

// catalogEntries returns the catalog targets of r.
func catalogEntries(r *tufrepo.Repo) []tufrepo.Target {
	var out []tufrepo.Target
	for _, t := range r.ListTargets() {
		if strings.HasPrefix(t.Name, tufrepo.CatalogPrefix) {
			out = append(out, t)
		}
	}
	return out
}

func newCatalogListCmd(a *app, f *repoFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the catalog's signed payloads",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := f.open(a, false)
			if err != nil {
				return err
			}
			entries := catalogEntries(r)
			if a.jsonOutput() {
				if entries == nil {
					entries = []tufrepo.Target{}
				}
				return a.printJSON(entries)
			}
			if len(entries) == 0 {
				fmt.Fprintln(a.Out, "The catalog is empty.")
				return nil
			}
			tw := tabwriter.NewWriter(a.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PACKAGE\tVERSION\tFORMAT\tSIZE\tREBOOT\tSEVERITY\tCLASS\tCVES\tTARGET")
			for _, e := range entries {
				c := e.Catalog
				if c == nil {
					c = &tufrepo.CatalogMeta{Package: "?", Version: "?"}
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", c.Package, c.Version, dash(c.Format), e.Length, strconv.FormatBool(c.Reboot),
					dash(c.Severity), dash(c.Classification), dash(strings.Join(c.CVEs, ",")), e.Name)
			}
			return tw.Flush()
		},
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newCatalogRemoveCmd(a *app, f *repoFlags) *cobra.Command {
	var pkg, version string
	cmd := &cobra.Command{
		Use:   "remove [TARGET...] [--package NAME --version V]",
		Short: "Remove payloads from the catalog and publish",
		Long: `Remove catalog targets by name (as catalog list shows them), or every file of
--package (and --version, if given), then publish. Agents stop seeing them at their
next refresh; the payload files are deleted from the repository.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 && pkg == "" {
				return errors.New("name targets to remove, or give --package (and --version)")
			}
			if version != "" && pkg == "" {
				return errors.New("--version needs --package")
			}
			r, err := f.open(a, true)
			if err != nil {
				return err
			}
			names := args
			for _, n := range args {
				if !strings.HasPrefix(n, tufrepo.CatalogPrefix) {
					return fmt.Errorf("%s is not a catalog target (names start with %s; see patchring catalog list)", n, tufrepo.CatalogPrefix)
				}
			}
			if pkg != "" {
				for _, e := range catalogEntries(r) {
					if e.Catalog != nil && e.Catalog.Package == pkg && (version == "" || e.Catalog.Version == version) {
						names = append(names, e.Name)
					}
				}
				if len(names) == len(args) {
					return fmt.Errorf("no catalog entry for package %s%s", pkg, map[bool]string{true: " version " + version, false: ""}[version != ""])
				}
			}
			slices.Sort(names)
			names = slices.Compact(names)
			for _, n := range names {
				if err := r.RemoveTarget(n); err != nil {
					return err
				}
			}
			v, err := r.Publish()
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(map[string]any{"removed": names, "versions": v})
			}
			for _, n := range names {
				fmt.Fprintf(a.Out, "Removed %s\n", n)
			}
			return printVersions(a, "Published", v)
		},
	}
	cmd.Flags().StringVar(&pkg, "package", "", "remove every file of this package")
	cmd.Flags().StringVar(&version, "version", "", "with --package: only this version")
	return cmd
}
