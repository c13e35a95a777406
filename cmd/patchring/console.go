package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/patchring/patchring/console/auth"
	consoleclient "github.com/patchring/patchring/console/client"
	"github.com/patchring/patchring/console/server"
	"github.com/patchring/patchring/console/statuspub"
	"github.com/patchring/patchring/console/store"
	"github.com/patchring/patchring/policy/enroll"
	"github.com/patchring/patchring/policy/tufrepo"
)

// storeFlags are how a console command finds its database.
type storeFlags struct {
	data     string
	postgres string
}

func (f *storeFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.data, "data", "", "directory of the embedded SQLite database")
	cmd.Flags().StringVar(&f.postgres, "postgres", "", "PostgreSQL connection string or URL instead of --data (env PATCHRING_CONSOLE_POSTGRES)")
}

func (f *storeFlags) open(ctx context.Context) (*store.Store, error) {
	pg := f.postgres
	if pg == "" {
		pg = os.Getenv("PATCHRING_CONSOLE_POSTGRES")
	}
	switch {
	case pg != "" && f.data != "":
		return nil, errors.New("give --data or --postgres, not both")
	case pg != "":
		return store.OpenPostgres(ctx, pg)
	case f.data != "":
		return store.OpenSQLite(ctx, f.data)
	}
	return nil, errors.New("where is the console's database? give --data DIR (SQLite) or --postgres DSN")
}

func newConsoleCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "console",
		Short: "Run the fleet console: every site's reports in one database, a web dashboard, a JSON API",
		Long: "The console stores what sites report and shows it. It sees, it does not command: agents take no\n" +
			"instructions from it and it holds no key that can make a node install anything. See docs/CONSOLE.md.",
	}
	cmd.AddCommand(newConsoleServeCmd(a), newConsoleAccountCmd(a), newConsoleTokenCmd(a), newConsoleImportCmd(a))
	return cmd
}

func newConsoleServeCmd(a *app) *cobra.Command {
	var sf storeFlags
	var lc server.ListenConfig
	var fleetRepo, fleetOrigin, fleetRoot string
	var iss issuingFlags
	var statusKey, statusDir, statusPassEnv string
	statusEvery, statusLife := statuspub.DefaultInterval, statuspub.DefaultLifetime
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the console (loopback only unless TLS and accounts are configured)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			log := slog.New(slog.NewTextHandler(a.Err, nil))
			st, err := sf.open(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			ver, fleet, cleanup, err := consoleVerifier(cmd.Context(), fleetRepo, fleetOrigin, fleetRoot, sf.data, log)
			if err != nil {
				return err
			}
			defer cleanup()
			cfg := server.Config{Store: st, Verifier: ver, Logger: log, Secure: lc.CertFile != ""}
			if iss.keyFile != "" {
				// The issuing service inside the console: the same
				// service as patchring ca serve, on the console's address.
				if fleet == nil {
					return errors.New("console serve: --issuer-key needs the fleet document: give --fleet-repo or --fleet-origin")
				}
				if iss.data == "" {
					if sf.data == "" {
						return errors.New("console serve: --issuer-key needs --issuer-data DIR (the tokens and the ledger)")
					}
					iss.data = filepath.Join(sf.data, "issuing")
				}
				if cfg.Issuing, err = iss.server(cmd.Context(), fleet, log); err != nil {
					return fmt.Errorf("console serve: issuing service: %w", err)
				}
				log.Info("console: the issuing service answers enrollment and renewal", "enroll", enroll.PathEnroll, "renew", enroll.PathRenew, "data", iss.data)
			}
			s := server.New(cfg)
			if (statusKey == "") != (statusDir == "") {
				return errors.New("console serve: give both --fleet-status-key and --fleet-status-dir, or neither")
			}
			if statusKey == "" {
				return server.Serve(cmd.Context(), s, lc, log)
			}
			k, err := tufrepo.ReadKeyFile(statusKey, []byte(os.Getenv(statusPassEnv)), true)
			if err != nil {
				return fmt.Errorf("console serve: --fleet-status-key: %w", err)
			}
			if k.Role != tufrepo.RoleFleetStatus {
				return fmt.Errorf("console serve: --fleet-status-key %s is a %s key, not a %s key", statusKey, k.Role, tufrepo.RoleFleetStatus)
			}
			pub, err := statuspub.New(statuspub.Config{Source: st, Key: k.Private, Sink: statuspub.DirSink(statusDir),
				Interval: statusEvery, Lifetime: statusLife, Log: log})
			if err != nil {
				return err
			}
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- pub.Run(ctx) }()
			err = server.Serve(ctx, s, lc, log)
			cancel()
			return errors.Join(err, <-done)
		},
	}
	cmd.Flags().StringVar(&statusKey, "fleet-status-key", "", "the console's fleet-status key file (patchring repo delegate-fleet-status): sign the fleet status for fleet-wide gates")
	cmd.Flags().StringVar(&statusDir, "fleet-status-dir", "", "directory to leave the signed fleet status in, for patchring repo keeper --fleet-status-dir")
	cmd.Flags().StringVar(&statusPassEnv, "fleet-status-passphrase-env", "PATCHRING_FLEET_STATUS_PASSPHRASE", "environment variable holding the key file's passphrase")
	cmd.Flags().DurationVar(&statusEvery, "fleet-status-interval", statusEvery, "how often to publish the fleet status")
	cmd.Flags().DurationVar(&statusLife, "fleet-status-lifetime", statusLife, "how long each signed fleet status stays valid")
	sf.add(cmd)
	cmd.Flags().StringVar(&lc.Addr, "listen", "127.0.0.1:8480", "address to listen on")
	cmd.Flags().StringVar(&lc.CertFile, "tls-cert", "", "TLS certificate (PEM); needed to listen beyond loopback")
	cmd.Flags().StringVar(&lc.KeyFile, "tls-key", "", "TLS private key (PEM)")
	cmd.Flags().StringVar(&fleetRepo, "fleet-repo", "", "repository directory to read fleet.json from: records need a valid fleet credential")
	cmd.Flags().StringVar(&fleetOrigin, "fleet-origin", "", "origin URL to fetch fleet.json from through TUF (with --fleet-root)")
	cmd.Flags().StringVar(&fleetRoot, "fleet-root", "", "the fleet's trusted root.json (with --fleet-origin)")
	iss.add(cmd, "issuer-")
	cmd.Flag("issuer-data").Usage = "the issuing service's data directory (tokens, ledger issued.jsonl; default DATA/issuing)"
	cmd.Flag("issuer-key").Usage = "run the issuing service inside the console with this issuing key (role fleet-issuer): nodes enroll and renew at the console's URL"
	return cmd
}

// consoleVerifier picks the console's NodeVerifier: the fleet's
// credentials when a fleet document source is given (also returned), else
// self-certified nodes with a warning.
func consoleVerifier(ctx context.Context, repoDir, origin, rootFile, data string, log *slog.Logger) (server.NodeVerifier, enroll.FleetSource, func(), error) {
	fleet, cleanup, err := fleetDocSource(ctx, repoDir, origin, rootFile, data, log)
	if err != nil {
		return nil, nil, cleanup, err
	}
	if fleet == nil {
		log.Warn("no fleet document (--fleet-repo or --fleet-origin): nodes are self-certified, anyone reaching the ingest API can invent nodes and claim any site")
		return server.SelfCertified{}, nil, cleanup, nil
	}
	return server.FleetVerifier{Fleet: fleet}, fleet, cleanup, nil
}

// fleetDocSource is where the console reads the fleet document: the
// repository directory, or the origin through TUF verified from the
// fleet's root (kept under --data or a temporary directory); nil when
// neither is given.
func fleetDocSource(ctx context.Context, repoDir, origin, rootFile, data string, log *slog.Logger) (enroll.FleetSource, func(), error) {
	nop := func() {}
	switch {
	case repoDir != "" && origin != "":
		return nil, nop, errors.New("give --fleet-repo or --fleet-origin, not both")
	case origin == "" && rootFile != "":
		return nil, nop, errors.New("--fleet-root needs --fleet-origin")
	case repoDir != "":
		f := repoFleet{dir: repoDir}
		if _, err := f.Fleet(ctx); err != nil {
			return nil, nop, fmt.Errorf("--fleet-repo: fleet document: %w", err)
		}
		return f, nop, nil
	case origin != "":
		if rootFile == "" {
			return nil, nop, errors.New("--fleet-origin needs --fleet-root root.json (the fleet's trusted root)")
		}
		root, err := os.ReadFile(rootFile)
		if err != nil {
			return nil, nop, fmt.Errorf("--fleet-root: %w", err)
		}
		dir, cleanup := filepath.Join(data, "fleet-tuf"), nop
		if data == "" {
			if dir, err = os.MkdirTemp("", "patchring-console-fleet-"); err != nil {
				return nil, nop, fmt.Errorf("fleet document state: %w", err)
			}
			cleanup = func() { os.RemoveAll(dir) }
		}
		of, err := enroll.NewOriginFleet(origin, root, dir, log)
		if err != nil {
			cleanup()
			return nil, nop, err
		}
		return of, cleanup, nil
	}
	return nil, nop, nil
}

// readPassword reads a password from the terminal without echo, or one line
// from standard input when it is not a terminal.
func readPassword(a *app) (string, error) {
	if f, ok := a.In.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(a.Err, "Password: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(a.Err)
		return string(b), err
	}
	line, err := bufio.NewReader(a.In).ReadString('\n')
	if err != nil && line == "" {
		return "", fmt.Errorf("read password from standard input: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func newConsoleAccountCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "account", Short: "Manage console accounts"}
	var sf storeFlags
	var role string
	var replace bool
	add := &cobra.Command{
		Use:   "add NAME",
		Short: "Create an account (the password is read from the terminal or standard input)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !server.ValidRole(role) {
				return fmt.Errorf("--role %q: use viewer or operator", role)
			}
			pw, err := readPassword(a)
			if err != nil {
				return err
			}
			hash, err := auth.HashPassword(pw)
			if err != nil {
				return err
			}
			st, err := sf.open(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			ctx := cmd.Context()
			if err := st.PutAccount(ctx, store.Account{Name: args[0], PasswordHash: hash, Role: role, CreatedAt: time.Now()}, replace); err != nil {
				if errors.Is(err, store.ErrExists) {
					return fmt.Errorf("account %s exists (give --replace to set its password and role)", args[0])
				}
				return err
			}
			if err := st.Audit(ctx, store.AuditEntry{At: time.Now(), Actor: "local admin (" + osUser() + ")", Action: "put account", Detail: args[0] + " as " + role}); err != nil {
				return err
			}
			fmt.Fprintf(a.Out, "account %s (%s) saved\n", args[0], role)
			return nil
		},
	}
	sf.add(add)
	add.Flags().StringVar(&role, "role", server.RoleViewer, "viewer (reads) or operator (reads, manages tokens, forgets nodes)")
	add.Flags().BoolVar(&replace, "replace", false, "replace the password and role of an existing account")
	cmd.AddCommand(add)
	return cmd
}

func newConsoleTokenCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Manage API tokens"}
	var sf storeFlags
	var account, label string
	add := &cobra.Command{
		Use:   "add",
		Short: "Create an API token for an account and print it (once)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := sf.open(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			ctx := cmd.Context()
			if _, err := st.Account(ctx, account); err != nil {
				return err
			}
			id, secret, err := server.NewToken(ctx, st, account, label, time.Now())
			if err != nil {
				return err
			}
			if err := st.Audit(ctx, store.AuditEntry{At: time.Now(), Actor: "local admin (" + osUser() + ")", Action: "create API token", Detail: fmt.Sprintf("%s %q for %s", id, label, account)}); err != nil {
				return err
			}
			fmt.Fprintln(a.Out, secret)
			return nil
		},
	}
	sf.add(add)
	add.Flags().StringVar(&account, "account", "", "the account the token acts as")
	add.Flags().StringVar(&label, "label", "cli", "what the token is for")
	add.MarkFlagRequired("account")
	cmd.AddCommand(add)
	return cmd
}

func osUser() string {
	if u := os.Getenv("SUDO_USER"); u != "" {
		return u
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return fmt.Sprint("uid ", os.Getuid())
}

// newConsoleClient reads the API token (tokenFile, else the environment's
// PATCHRING_CONSOLE_TOKEN) for a console client.
func newConsoleClient(url, tokenFile string) (*consoleclient.Client, error) {
	tok := os.Getenv("PATCHRING_CONSOLE_TOKEN")
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return nil, fmt.Errorf("console token: %w", err)
		}
		tok = strings.TrimSpace(string(b))
	}
	return &consoleclient.Client{URL: url, Token: tok}, nil
}

// consoleFleet prints the console's fleet overview: `patchring fleet
// --console URL`.
func consoleFleet(a *app, cmd *cobra.Command, url, tokenFile string) error {
	c, err := newConsoleClient(url, tokenFile)
	if err != nil {
		return err
	}
	rows, err := c.Overview(cmd.Context())
	if err != nil {
		return err
	}
	if a.jsonOutput() {
		return a.printJSON(rows)
	}
	tw := tabwriter.NewWriter(a.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RING\tSITE\tNODES\tUP TO DATE\tPENDING\tFAILED\tREBOOT PENDING\tCOMPLIANCE")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%.0f%%\n", orDash(r.Ring), r.Site, r.Nodes, r.UpToDate, r.Pending, r.Failed, r.RebootPending, 100*float64(r.UpToDate)/float64(max(r.Nodes, 1)))
	}
	return tw.Flush()
}
