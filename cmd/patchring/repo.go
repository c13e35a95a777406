package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/patchring/patchring/policy"
	"github.com/patchring/patchring/policy/credential"
	"github.com/patchring/patchring/policy/tufrepo"
)

// defaultPassphraseEnv is the environment variable read for the key
// passphrase unless --passphrase-env names another.
const defaultPassphraseEnv = "PATCHRING_KEY_PASSPHRASE"

// repoFlags are the flags every command working on a repository shares.
type repoFlags struct {
	dir     string
	keys    string
	passEnv string
}

func (f *repoFlags) bind(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&f.dir, "repo", os.Getenv("PATCHRING_REPO"), "repository directory (env PATCHRING_REPO)")
	cmd.PersistentFlags().StringVar(&f.keys, "keys", os.Getenv("PATCHRING_KEYS"), "signing keys directory, never inside the repository (env PATCHRING_KEYS)")
	cmd.PersistentFlags().StringVar(&f.passEnv, "passphrase-env", defaultPassphraseEnv, "environment variable holding the key passphrase")
}

func (f *repoFlags) needDir() error {
	if f.dir == "" {
		return errors.New("--repo DIR is required (or set PATCHRING_REPO)")
	}
	return nil
}

func (f *repoFlags) needKeys() error {
	if err := f.needDir(); err != nil {
		return err
	}
	if f.keys == "" {
		return errors.New("--keys KEYDIR is required (or set PATCHRING_KEYS)")
	}
	return nil
}

// readPassphrase prompts on the terminal (twice with confirm). It fails
// when standard input is not a terminal.
func readPassphrase(a *app, prompt string, confirm bool) (string, error) {
	in, ok := a.In.(*os.File)
	if !ok || !term.IsTerminal(int(in.Fd())) {
		return "", errors.New("standard input is not a terminal")
	}
	fmt.Fprint(a.Err, prompt)
	p1, err := term.ReadPassword(int(in.Fd()))
	fmt.Fprintln(a.Err)
	if err != nil {
		return "", err
	}
	if len(p1) == 0 {
		return "", errors.New("empty passphrase")
	}
	if confirm {
		fmt.Fprint(a.Err, "Repeat the passphrase: ")
		p2, err := term.ReadPassword(int(in.Fd()))
		fmt.Fprintln(a.Err)
		if err != nil {
			return "", err
		}
		if string(p1) != string(p2) {
			return "", errors.New("the passphrases differ")
		}
	}
	return string(p1), nil
}

// open opens the repository; with signing set it makes sure encrypted key
// files can be decrypted, asking for the passphrase on the terminal when
// the environment variable is not set.
func (f *repoFlags) open(a *app, signing bool) (*tufrepo.Repo, error) {
	keys := f.keys
	if signing {
		if err := f.needKeys(); err != nil {
			return nil, err
		}
	} else if err := f.needDir(); err != nil {
		return nil, err
	}
	pass := os.Getenv(f.passEnv)
	r, err := tufrepo.Open(f.dir, keys, pass)
	if err != nil || !signing {
		return r, err
	}
	err = r.Unlock()
	if errors.Is(err, tufrepo.ErrPassphraseRequired) {
		p, perr := readPassphrase(a, "Passphrase for the keys in "+keys+": ", false)
		if perr != nil {
			return nil, fmt.Errorf("key files in %s are encrypted: set %s or run from a terminal (%v)", keys, f.passEnv, perr)
		}
		if r, err = tufrepo.Open(f.dir, keys, p); err != nil {
			return nil, err
		}
		err = r.Unlock()
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}

func newRepoCmd(a *app) *cobra.Command {
	f := &repoFlags{}
	cmd := &cobra.Command{
		Use:   "repo",
		Short: "Create, sign, refresh and serve the fleet's signed (TUF) repository",
		Long: `Admin tools for the fleet's TUF repository: root, targets, snapshot and timestamp
metadata signed with keys kept outside the repository. Agents trust only what it signs.`,
	}
	f.bind(cmd)
	cmd.AddCommand(newRepoInitCmd(a, f), newRepoRefreshCmd(a, f), newRepoRotateKeyCmd(a, f),
		newRepoAddKeyCmd(a, f), newRepoRemoveKeyCmd(a, f), newRepoStatusCmd(a, f), newRepoServeCmd(a, f), newRepoKeeperCmd(a, f),
		newRepoDelegateFleetStatusCmd(a, f))
	return cmd
}

// parseRoleMap checks role=value pairs.
func parseRoleMap[T any](flag string, in map[string]string, parse func(string) (T, error)) (map[string]T, error) {
	out := map[string]T{}
	for role, s := range in {
		if !slices.Contains(tufrepo.Roles(), role) {
			return nil, fmt.Errorf("--%s %s=%s: unknown role %q; use %s", flag, role, s, role, strings.Join(tufrepo.Roles(), ", "))
		}
		v, err := parse(s)
		if err != nil {
			return nil, fmt.Errorf("--%s %s=%s: %v", flag, role, s, err)
		}
		out[role] = v
	}
	return out, nil
}

func newRepoInitCmd(a *app, f *repoFlags) *cobra.Command {
	var thresholds, expires map[string]string
	var encrypt, noFleet bool
	cmd := &cobra.Command{
		Use:   "init --repo DIR --keys KEYDIR",
		Short: "Create a repository with fresh ed25519 keys for every role, and the fleet CA",
		Long: `Create a repository with root, targets, snapshot and timestamp metadata and fresh
ed25519 keys (one per unit of threshold) written to KEYDIR with mode 0600.
KEYDIR must not be inside DIR. Key files are encrypted when the passphrase
variable (--passphrase-env, default ` + defaultPassphraseEnv + `) is set, or with --encrypt
which asks for a passphrase. Install DIR/metadata/1.root.json with every agent.

It also creates the fleet CA key (KEYDIR, same format and passphrase) and
publishes fleet.json naming it: from then on agents admit only members with a
credential the CA (or an issuer it delegated) signed, and take their site and
tags from it (see docs/TRUST.md). --no-fleet-ca leaves it out (agents then
admit any holder of the gossip key, with a warning); an existing repository
gets its CA with ` + "`patchring ca init`" + `.`,
		Example: `  patchring repo init --repo /srv/patchring --keys ~/.patchring-keys --threshold root=2 --expires timestamp=1d,snapshot=7d`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.needKeys(); err != nil {
				return err
			}
			th, err := parseRoleMap("threshold", thresholds, func(s string) (int, error) {
				n, err := strconv.Atoi(s)
				if err != nil || n < 1 {
					return 0, errors.New("not a positive number")
				}
				return n, nil
			})
			if err != nil {
				return err
			}
			ex, err := parseRoleMap("expires", expires, func(s string) (time.Duration, error) {
				return policy.ParseDuration(s)
			})
			if err != nil {
				return err
			}
			pass := os.Getenv(f.passEnv)
			if pass == "" && encrypt {
				if pass, err = readPassphrase(a, "New passphrase for the key files: ", true); err != nil {
					return fmt.Errorf("--encrypt: %v (or set %s)", err, f.passEnv)
				}
			}
			r, err := tufrepo.Init(f.dir, f.keys, tufrepo.Options{Thresholds: th, Expiries: ex, Passphrase: pass})
			if err != nil {
				return err
			}
			var ca string
			if !noFleet {
				doc, err := r.InitFleet()
				if err != nil {
					return fmt.Errorf("repo init: fleet CA: %w", err)
				}
				ca = credential.SignerIDOf(doc.CA[0]).String()
			}
			st := r.Status(0)
			if a.jsonOutput() {
				return a.printJSON(st)
			}
			fmt.Fprintf(a.Out, "Initialized repository %s (keys in %s%s).\n", f.dir, f.keys, map[bool]string{true: ", encrypted", false: ""}[pass != ""])
			printRoles(a, st)
			if ca != "" {
				fmt.Fprintf(a.Out, "\nFleet CA %s created (key in %s), published in fleet.json: agents need a credential it signed.\n", ca, f.keys)
			} else {
				fmt.Fprintf(a.Out, "\nNo fleet CA (--no-fleet-ca): any holder of the gossip key is a member.\n")
			}
			fmt.Fprintf(a.Out, "\nInstall %s/metadata/1.root.json with every agent as its root of trust.\n", strings.TrimSuffix(f.dir, "/"))
			return nil
		},
	}
	cmd.Flags().BoolVar(&noFleet, "no-fleet-ca", false, "do not create the fleet CA (agents admit any holder of the gossip key)")
	cmd.Flags().StringToStringVar(&thresholds, "threshold", nil, "signatures each role needs, e.g. root=2,targets=1 (default 1)")
	cmd.Flags().StringToStringVar(&expires, "expires", nil, "metadata lifetime per role, e.g. timestamp=1d,snapshot=7d,targets=90d,root=365d")
	cmd.Flags().BoolVar(&encrypt, "encrypt", false, "ask for a passphrase to encrypt the key files when the passphrase variable is not set")
	return cmd
}

func newRepoRefreshCmd(a *app, f *repoFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "refresh",
		Short: "Re-sign timestamp and snapshot (and targets or root when past half their lifetime)",
		Long: `Re-sign timestamp and snapshot with new versions and expiry dates; targets and root
are re-signed too when less than half of their lifetime is left. Run it more often
than the timestamp lifetime (e.g. from cron), or agents stop trusting the repository.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := f.open(a, true)
			if err != nil {
				return err
			}
			v, err := r.Refresh()
			if err != nil {
				return err
			}
			return printVersions(a, "Refreshed", v)
		},
	}
}

func newRepoRotateKeyCmd(a *app, f *repoFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "rotate-key ROLE",
		Short: "Replace every key of a role with fresh ones (a new root version agents follow)",
		Long: `Replace every key of ROLE (root, targets, snapshot or timestamp) with as many fresh
keys. The change is a new root version signed by the current root keys and, for
root, by the new ones too, so agents that trust the old root follow it. The old
key files move to KEYDIR/retired/.`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: tufrepo.Roles(),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := f.open(a, true)
			if err != nil {
				return err
			}
			ids, err := r.RotateKey(args[0])
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(map[string]any{"role": args[0], "new_key_ids": ids, "versions": r.Versions()})
			}
			fmt.Fprintf(a.Out, "Rotated %s keys; new key IDs:\n", args[0])
			for _, id := range ids {
				fmt.Fprintln(a.Out, "  "+id)
			}
			return printVersions(a, "Published", r.Versions())
		},
	}
}

func newRepoAddKeyCmd(a *app, f *repoFlags) *cobra.Command {
	return &cobra.Command{
		Use:       "add-key ROLE",
		Short:     "Add a fresh key to a role (a new root version)",
		Args:      cobra.ExactArgs(1),
		ValidArgs: tufrepo.Roles(),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := f.open(a, true)
			if err != nil {
				return err
			}
			id, err := r.AddKey(args[0])
			if err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(map[string]any{"role": args[0], "key_id": id, "versions": r.Versions()})
			}
			fmt.Fprintf(a.Out, "Added %s key %s\n", args[0], id)
			return printVersions(a, "Published", r.Versions())
		},
	}
}

func newRepoRemoveKeyCmd(a *app, f *repoFlags) *cobra.Command {
	return &cobra.Command{
		Use: "remove-key ROLE KEYID",
		Long: `Revoke a key of ROLE (a new root version signed by the current root keys); KEYID may be
a unique prefix of at least 8 characters, as repo status shows it. Its file moves to
KEYDIR/retired/. A role never keeps fewer keys than its threshold.`,
		Short: "Revoke a key of a role (a new root version); its file moves to KEYDIR/retired/",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := f.open(a, true)
			if err != nil {
				return err
			}
			if err := r.RemoveKey(args[0], args[1]); err != nil {
				return err
			}
			if a.jsonOutput() {
				return a.printJSON(map[string]any{"role": args[0], "removed_key_id": args[1], "versions": r.Versions()})
			}
			fmt.Fprintf(a.Out, "Removed %s key %s\n", args[0], args[1])
			return printVersions(a, "Published", r.Versions())
		},
	}
}

func newRepoStatusCmd(a *app, f *repoFlags) *cobra.Command {
	within, offlineWarn := "2d", "14d"
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show versions, expiry dates, thresholds, keys, and what expires soon",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			w, err := policy.ParseDuration(within)
			if err != nil {
				return fmt.Errorf("--within %q: %v", within, err)
			}
			ow, err := policy.ParseDuration(offlineWarn)
			if err != nil {
				return fmt.Errorf("--warn-offline %q: %v", offlineWarn, err)
			}
			r, err := f.open(a, false)
			if err != nil {
				return err
			}
			st := r.Status(w)
			warnings := st.Warnings(ow)
			if a.jsonOutput() {
				return a.printJSON(struct {
					tufrepo.Status
					Warnings []tufrepo.Warning `json:"warnings"`
				}{st, append([]tufrepo.Warning{}, warnings...)})
			}
			fmt.Fprintf(a.Out, "Repository %s: %d target(s)%s\n", st.Dir, st.Targets, map[bool]string{true: ", unpublished changes", false: ""}[st.Staged])
			printRoles(a, st)
			if len(st.ExpiringSoon) > 0 {
				fmt.Fprintf(a.Out, "\nExpiring within %s: %s.\n", policy.FormatDuration(w), strings.Join(st.ExpiringSoon, ", "))
			}
			for _, wn := range warnings {
				when := "expires in " + policy.FormatDuration(wn.Expires.Sub(st.Now).Truncate(time.Second))
				if wn.Expired {
					when = "EXPIRED at " + wn.Expires.Format(time.RFC3339)
				}
				fmt.Fprintf(a.Out, "WARNING: %s %s: %s\n", wn.Role, when, wn.Action)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&within, "within", within, "also list roles expiring within this span")
	cmd.Flags().StringVar(&offlineWarn, "warn-offline", offlineWarn, "warn this long before root or targets (offline keys) expire; snapshot and timestamp warn once half their lifetime is gone")
	return cmd
}

// printRoles writes a table of the roles of st.
func printRoles(a *app, st tufrepo.Status) {
	tw := tabwriter.NewWriter(a.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROLE\tVERSION\tEXPIRES\tTHRESHOLD\tKEYS (present/total)\tKEY IDS")
	for _, rs := range st.Roles {
		present := 0
		ids := make([]string, 0, len(rs.Keys))
		for _, k := range rs.Keys {
			mark := ""
			if k.Present {
				present++
			} else {
				mark = " (absent)"
			}
			ids = append(ids, shortID(k.ID)+mark)
		}
		exp := rs.Expires.Format(time.RFC3339)
		switch {
		case rs.Expired:
			exp += " EXPIRED"
		case slices.Contains(st.ExpiringSoon, rs.Role):
			exp += " (soon)"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d/%d\t%s\n", rs.Role, rs.Version, exp, rs.Threshold, present, len(rs.Keys), strings.Join(ids, ", "))
	}
	tw.Flush()
}

func shortID(id string) string {
	if len(id) > 16 {
		return id[:16]
	}
	return id
}

func printVersions(a *app, what string, v tufrepo.Versions) error {
	if a.jsonOutput() {
		return a.printJSON(v)
	}
	fmt.Fprintf(a.Out, "%s: root %d, targets %d, snapshot %d, timestamp %d\n", what, v.Root, v.Targets, v.Snapshot, v.Timestamp)
	return nil
}

func newRepoServeCmd(a *app, f *repoFlags) *cobra.Command {
	listen := "127.0.0.1:8080"
	cmd := &cobra.Command{
		Use:   "serve --repo DIR [--listen ADDR]",
		Short: "Serve the repository over HTTP (any static web server works too)",
		Long: `Serve DIR/metadata and DIR/targets over plain HTTP until interrupted. Everything
served is signed, so HTTP is enough for integrity; put a TLS proxy in front for
privacy. Nothing outside metadata/ and targets/ is served.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.needDir(); err != nil {
				return err
			}
			if _, err := tufrepo.Open(f.dir, "", ""); err != nil {
				return err
			}
			return serveRepo(cmd.Context(), a, f.dir, listen)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", listen, "address to listen on")
	return cmd
}

// serveRepo serves dir on addr until ctx is done.
func serveRepo(ctx context.Context, a *app, dir, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	srv := &http.Server{Handler: tufrepo.Handler(dir), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	fmt.Fprintf(a.Out, "Serving %s on http://%s/ (metadata/ and targets/); interrupt to stop.\n", dir, ln.Addr())
	return serveUntil(ctx, srv, ln)
}

// serveUntil serves srv on ln until ctx ends, then shuts it down (5 s for
// requests in flight). A server that fails before that is an error.
func serveUntil(ctx context.Context, srv *http.Server, ln net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(shutCtx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

func newRepoKeeperCmd(a *app, f *repoFlags) *cobra.Command {
	var expires map[string]string
	listen, warnOffline, statusDir := "", "14d", ""
	cmd := &cobra.Command{
		Use:   "keeper --repo DIR --keys ONLINE_KEYDIR [--expires timestamp=1h,snapshot=1d] [--listen ADDR] [--fleet-status-dir DIR]",
		Short: "Keep the repository fresh: re-sign timestamp and snapshot before they expire (online keys only)",
		Long: `Run until interrupted, re-signing the timestamp, and the snapshot, once less than half
of their lifetime is left, so agents keep trusting the repository with no admin action.
ONLINE_KEYDIR needs only the snapshot and timestamp key files: root and targets keys stay
offline, and the keeper warns in its log from --warn-offline before they expire.
--expires records new snapshot/timestamp lifetimes for this fleet's repository (kept in
DIR/patchring-repo.json). With --listen it also serves DIR like patchring repo serve;
otherwise serve DIR with any static web server or CDN (see docs/REPOSITORY.md).
With --fleet-status-dir it also publishes the fleet console's signed fleet status left
there (patchring console serve --fleet-status-dir), after checking it against the
fleet-status delegation (patchring repo delegate-fleet-status).`,
		Example: `  patchring repo keeper --repo /srv/patchring --keys /etc/patchring-keeper/keys --expires timestamp=6h,snapshot=2d`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.needKeys(); err != nil {
				return err
			}
			ex, err := parseRoleMap("expires", expires, func(s string) (time.Duration, error) {
				return policy.ParseDuration(s)
			})
			if err != nil {
				return err
			}
			for role := range ex {
				if !slices.Contains(tufrepo.OnlineRoles, role) {
					return fmt.Errorf("--expires %s: the keeper sets only %s lifetimes; set %s with patchring repo init", role, strings.Join(tufrepo.OnlineRoles, " and "), role)
				}
			}
			r, err := f.open(a, false)
			if err != nil {
				return err
			}
			if len(ex) > 0 {
				if err := r.SetExpiries(ex); err != nil {
					return err
				}
			}
			ow, err := policy.ParseDuration(warnOffline)
			if err != nil {
				return fmt.Errorf("--warn-offline %q: %v", warnOffline, err)
			}
			k := &tufrepo.Keeper{Dir: f.dir, KeysDir: f.keys, Passphrase: os.Getenv(f.passEnv), Warn: ow,
				Log: slog.New(slog.NewTextHandler(a.Err, nil)), FleetStatusDir: statusDir}
			// A first pass now, so a missing key or passphrase fails here.
			if _, err := k.Once(); err != nil {
				return err
			}
			ctx := cmd.Context()
			if listen == "" {
				return k.Run(ctx)
			}
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			errc := make(chan error, 1)
			go func() { errc <- k.Run(ctx) }()
			err = serveRepo(ctx, a, f.dir, listen)
			cancel()
			return errors.Join(err, <-errc)
		},
	}
	cmd.Flags().StringToStringVar(&expires, "expires", nil, "new lifetimes for this fleet, e.g. timestamp=1h,snapshot=1d")
	cmd.Flags().StringVar(&listen, "listen", "", "also serve the repository over HTTP on this address")
	cmd.Flags().StringVar(&warnOffline, "warn-offline", "14d", "warn this long before root or targets expire")
	cmd.Flags().StringVar(&statusDir, "fleet-status-dir", "", "publish the fleet console's signed fleet status from this directory")
	return cmd
}

func newRepoDelegateFleetStatusCmd(a *app, f *repoFlags) *cobra.Command {
	var keyDir string
	cmd := &cobra.Command{
		Use:   "delegate-fleet-status --repo DIR --keys KEYDIR --console-keys CONSOLE_KEYDIR",
		Short: "Let the fleet console sign the fleet status document (and nothing else) for fleet-wide gates",
		Long: `Delegate the TUF role fleet-status, allowed the one path fleet-status.json, to the
fleet console's key, and publish the targets metadata (needs the targets key). The console's
key is taken from CONSOLE_KEYDIR (the newest fleet-status key file there) or created there
when it has none; copy it to the console (patchring console serve --fleet-status-key).
Running it again with a new key rotates it. A stolen console key can only change the numbers
gates of scope fleet read and when deferrals start: never what is approved. See docs/CONSOLE.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.needKeys(); err != nil {
				return err
			}
			if keyDir == "" {
				return errors.New("delegate-fleet-status: --console-keys is required")
			}
			k, err := newestFleetStatusKey(keyDir)
			if err != nil {
				return err
			}
			if k == nil {
				if k, err = tufrepo.NewFleetStatusKey(keyDir, os.Getenv(f.passEnv), time.Now()); err != nil {
					return err
				}
				fmt.Fprintf(a.Out, "created the console's key %s\n", k.Path)
			}
			r, err := f.open(a, true)
			if err != nil {
				return err
			}
			v, err := r.DelegateFleetStatus(k.Public)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.Out, "delegated %s (path %s) to key %s in targets v%d\n", tufrepo.RoleFleetStatus, tufrepo.FleetStatusTarget, k.ID, v.Targets)
			return nil
		},
	}
	cmd.Flags().StringVar(&keyDir, "console-keys", "", "directory of the console's fleet-status key (created there if missing)")
	return cmd
}

// newestFleetStatusKey returns the newest fleet-status key file in dir, or
// nil when there is none.
func newestFleetStatusKey(dir string) (*tufrepo.Key, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("console keys: %w", err)
	}
	var newest *tufrepo.Key
	for _, e := range entries {
		if e.IsDir() || !strings.HasPrefix(e.Name(), tufrepo.RoleFleetStatus+"-") {
			continue
		}
		k, err := tufrepo.ReadKeyFile(filepath.Join(dir, e.Name()), nil, false)
		if err != nil {
			return nil, err
		}
		if k.Role == tufrepo.RoleFleetStatus && (newest == nil || k.Created.After(newest.Created)) {
			newest = k
		}
	}
	return newest, nil
}
