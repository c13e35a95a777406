package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchring/patchring/console/report"
	"github.com/patchring/patchring/console/server"
	"github.com/patchring/patchring/console/store"
	"github.com/patchring/patchring/internal/atomicfile"
)

// maxReportBundle bounds a reports bundle `console import` reads.
const maxReportBundle = 1 << 30

// newBundleExportReportsCmd is `patchring bundle export-reports`: an
// offline site's console records leave on a file.
func newBundleExportReportsCmd(a *app) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "export-reports --out FILE",
		Short: "Write every console record this site's members hold to a file, for an offline site (admin)",
		Long: `Ask the local agent for every console record its site's live members still hold (each signed
by its node) and write them to FILE, to carry to the console and load there with
patchring console import FILE. Records the console already has count as duplicates there;
records stay on their nodes until a console confirms them online.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return errors.New("export-reports: --out is required")
			}
			res, err := a.client().ExportReports(cmd.Context())
			if err != nil {
				return err
			}
			data, err := json.Marshal(res)
			if err != nil {
				return err
			}
			if err := atomicfile.WriteFile(out, append(data, '\n'), 0o600); err != nil {
				return fmt.Errorf("export-reports: %w", err)
			}
			fmt.Fprintf(a.Out, "wrote %d records to %s\n", len(res.Records), out)
			for _, p := range res.Problems {
				fmt.Fprintf(a.Out, "  not collected: %s\n", p)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "file to write the records to")
	return cmd
}

// newConsoleImportCmd is `patchring console import`: records from an
// offline site's bundle, checked exactly as the ingest API checks them.
func newConsoleImportCmd(a *app) *cobra.Command {
	var sf storeFlags
	var fleetRepo, fleetOrigin, fleetRoot string
	cmd := &cobra.Command{
		Use:   "import FILE",
		Short: "Load an offline site's records (patchring bundle export-reports) into the console's database",
		Long: `Read the records of FILE and ingest them as POST /api/v1/ingest would: each must be signed by its
node, from a node the fleet document admits (with --fleet-repo or --fleet-origin), and newer than
what the console has of that node; records it already has count as duplicates.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			recs, err := readReportBundle(args[0])
			if err != nil {
				return fmt.Errorf("console import: %w", err)
			}
			st, err := sf.open(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			log := slog.New(slog.NewTextHandler(a.Err, nil))
			ver, _, cleanup, err := consoleVerifier(ctx, fleetRepo, fleetOrigin, fleetRoot, sf.data, log)
			if err != nil {
				return err
			}
			defer cleanup()
			s := server.New(server.Config{Store: st, Verifier: ver, Logger: log})
			var stored, dup, refused int
			for len(recs) > 0 {
				n := min(len(recs), server.MaxIngestRecords)
				resp, err := s.Ingest(ctx, server.IngestRequest{Records: recs[:n]})
				if err != nil {
					return fmt.Errorf("console import %s: %w (%d stored before)", args[0], err, stored)
				}
				for _, r := range resp.Results {
					switch r.Status {
					case "stored":
						stored++
					case "duplicate":
						dup++
					default:
						refused++
						fmt.Fprintf(a.Out, "refused %s seq %d: %s\n", r.Node, r.Seq, r.Error)
					}
				}
				recs = recs[n:]
			}
			abs, _ := filepath.Abs(args[0])
			if err := st.Audit(ctx, store.AuditEntry{At: time.Now(), Actor: "local admin (" + osUser() + ")", Action: "import reports",
				Detail: fmt.Sprintf("%s: %d stored, %d duplicate, %d refused", abs, stored, dup, refused)}); err != nil {
				return err
			}
			fmt.Fprintf(a.Out, "imported %s: %d stored, %d duplicate, %d refused\n", args[0], stored, dup, refused)
			return nil
		},
	}
	sf.add(cmd)
	cmd.Flags().StringVar(&fleetRepo, "fleet-repo", "", "repository directory to read fleet.json from: records need a valid fleet credential")
	cmd.Flags().StringVar(&fleetOrigin, "fleet-origin", "", "origin URL to fetch fleet.json from through TUF (with --fleet-root)")
	cmd.Flags().StringVar(&fleetRoot, "fleet-root", "", "the fleet's trusted root.json (with --fleet-origin)")
	return cmd
}

// readReportBundle reads a file of export-reports: {"records": [...]}.
func readReportBundle(path string) ([]report.Envelope, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read reports: %w", err)
	}
	defer f.Close()
	dec := json.NewDecoder(bufio.NewReader(io.LimitReader(f, maxReportBundle)))
	dec.DisallowUnknownFields()
	var in struct {
		Records  []json.RawMessage `json:"records"`
		Problems []string          `json:"problems"`
	}
	if err := dec.Decode(&in); err != nil {
		return nil, fmt.Errorf("read reports %s: not a reports bundle: %w", path, err)
	}
	out := make([]report.Envelope, 0, len(in.Records))
	for i, raw := range in.Records {
		env, err := report.ParseEnvelope(raw)
		if err != nil {
			return nil, fmt.Errorf("read reports %s: records[%d]: %w", path, i, err)
		}
		out = append(out, env)
	}
	return out, nil
}
