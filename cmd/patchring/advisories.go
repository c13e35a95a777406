package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchring/patchring/policy/advisory"
	"github.com/patchring/patchring/policy/tufrepo"
)

func newAdvisoriesCmd(a *app) *cobra.Command {
	f := &repoFlags{}
	cmd := &cobra.Command{
		Use:   "advisories",
		Short: "Publish vulnerability advisories (OSV, CISA KEV) as a signed database",
		Long: `Admin tools for vulnerability intelligence: OSV advisories (osv.dev's per-ecosystem
all.zip, a directory of OSV JSON files, or single records) and CISA's Known Exploited
Vulnerabilities catalog become a compact advisory database, published with deltas
from its previous versions as signed targets (advisories/...). Agents verify it like
the policy and match their installed packages against it.`,
	}
	f.bind(cmd)
	cmd.AddCommand(newAdvisoriesImportCmd(a, f), newAdvisoriesShowCmd(a, f))
	return cmd
}

func newAdvisoriesImportCmd(a *app, f *repoFlags) *cobra.Command {
	var kevFile string
	var ecos []string
	cmd := &cobra.Command{
		Use:   "import FILE... --repo DIR --keys DIR",
		Short: "Build the advisory database from OSV files and publish it",
		Example: `  patchring advisories import Debian.zip --kev known_exploited_vulnerabilities.json \
    --ecosystem Debian:12 --repo ./repo --keys ./keys`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			recs, err := advisory.ReadOSVPaths(args...)
			if err != nil {
				return err
			}
			opts := advisory.BuildOptions{Ecosystems: ecos, Now: time.Now()}
			if kevFile != "" {
				raw, err := os.ReadFile(kevFile)
				if err != nil {
					return fmt.Errorf("--kev: %w", err)
				}
				if opts.KEV, err = advisory.ParseKEV(raw, kevFile); err != nil {
					return err
				}
			}
			r, err := f.open(a, true)
			if err != nil {
				return err
			}
			opts.Version = 1
			prev, err := r.AdvisoryDB()
			switch {
			case err == nil:
				opts.Version = prev.Version + 1
			case !errors.Is(err, tufrepo.ErrNoAdvisories):
				return err
			}
			db, skipped, err := advisory.Build(recs, opts)
			if err != nil {
				return err
			}
			if len(db.Entries) == 0 {
				return fmt.Errorf("no advisory in %d records applies to a matchable ecosystem%s; nothing published", len(recs), ecoNote(ecos))
			}
			res, err := r.PublishAdvisories(db)
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(map[string]any{"published": res, "records": len(recs), "entries": len(db.Entries),
					"ecosystems": db.Ecosystems, "kev_catalog": db.KEVCatalog, "skipped": skipped})
			}
			for _, s := range skipped {
				fmt.Fprintf(a.Err, "skipped %s: %s\n", s.ID, s.Reason)
			}
			fmt.Fprintf(a.Out, "Advisory database version %d: %d entries from %d records (%d skipped), ecosystems %v, %d bytes\n",
				db.Version, len(db.Entries), len(recs), len(skipped), db.Ecosystems, res.Bytes)
			for name, n := range res.Deltas {
				fmt.Fprintf(a.Out, "  %s: %d bytes\n", name, n)
			}
			return printVersions(a, "Published", res.Versions)
		},
	}
	cmd.Flags().StringVar(&kevFile, "kev", "", "CISA KEV catalog (known_exploited_vulnerabilities.json)")
	cmd.Flags().StringArrayVar(&ecos, "ecosystem", nil, "keep only this OSV ecosystem, e.g. Debian:12 or Debian for all releases (repeatable)")
	return cmd
}

func ecoNote(ecos []string) string {
	if len(ecos) == 0 {
		return ""
	}
	return fmt.Sprintf(" (--ecosystem %v)", ecos)
}

func newAdvisoriesShowCmd(a *app, f *repoFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "show --repo DIR",
		Short: "Show the published advisory database",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := f.open(a, false)
			if err != nil {
				return err
			}
			db, err := r.AdvisoryDB()
			if err != nil {
				return err
			}
			kev := 0
			for _, e := range db.Entries {
				if e.KEV {
					kev++
				}
			}
			if a.jsonOutput() {
				return a.printJSON(map[string]any{"version": db.Version, "built": db.Built, "entries": len(db.Entries),
					"kev_entries": kev, "kev_catalog": db.KEVCatalog, "ecosystems": db.Ecosystems})
			}
			fmt.Fprintf(a.Out, "Advisory database version %d, built %s: %d entries (%d KEV), ecosystems %v, KEV catalog %q\n",
				db.Version, db.Built, len(db.Entries), kev, db.Ecosystems, db.KEVCatalog)
			return nil
		},
	}
}
