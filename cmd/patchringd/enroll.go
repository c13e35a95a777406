package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/patchring/patchring/daemon"
	"github.com/patchring/patchring/daemon/config"
	"github.com/patchring/patchring/daemon/enroll"
	"github.com/patchring/patchring/daemon/nodekey"
	"github.com/patchring/patchring/policy/credential"
	penroll "github.com/patchring/patchring/policy/enroll"
)

func newEnrollCmd(o *options, stderr io.Writer) *cobra.Command {
	var reqFile, credFile string
	var force bool
	cmd := &cobra.Command{
		Use:   "enroll (TOKEN | @TOKENFILE | --request FILE | --credential FILE)",
		Short: "Join the fleet: with an enrollment token, or offline with a request and a signed credential",
		Long: `Enroll this node in the fleet.

With a token (patchring enroll-token create; give it as the argument, or @FILE to read
it from a file): create the node key if there is none, obtain a credential from the
token's issuing service, check it in the fleet document from the token's origin, and
write the agent's config (origin, trusted root, site), the root and the credential.
Nothing is written if any step fails. Then start the agent (patchringd start).

Offline (no issuing service reachable): --request FILE writes a signed request for
patchring ca sign on the admin's machine; --credential FILE installs the credential
that comes back, after checking it is for this node's key (and, when the fleet
document can be fetched, that it verifies in it). A running agent picks it up within
one policy refresh.

A token file ` + enroll.TokenFile + ` beside the config file (/etc/patchring/` + enroll.TokenFile + ` for the
system service) is used the same way by patchringd run at first start. See docs/ENROLL.md.`,
		Example: `  patchringd enroll @/tmp/berlin.token
  patchringd enroll --request /media/usb/$(hostname).request
  patchringd enroll --credential /media/usb/$(hostname).credential`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n := len(args)
			if reqFile != "" {
				n++
			}
			if credFile != "" {
				n++
			}
			if n != 1 {
				return errors.New("give one of: a TOKEN (or @FILE), --request FILE, --credential FILE")
			}
			// The config file may not exist yet: enrolling writes it.
			cfg, err := config.LoadWithFlags(o.configFile, false, o.flags)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			out := cmd.OutOrStdout()
			switch {
			case reqFile != "":
				return writeRequest(out, cfg, reqFile)
			case credFile != "":
				return installCredential(ctx, out, cfg, credFile)
			}
			if enroll.HasCredential(cfg.StateDir) && !force {
				return fmt.Errorf("this node is enrolled already (%s): use --force to enroll it again", filepath.Join(cfg.StateDir, credential.FileName))
			}
			tok, err := readToken(args[0])
			if err != nil {
				return err
			}
			j, err := joinWithToken(ctx, o, cfg, tok, newLogger(cfg, stderr))
			if err != nil {
				return err
			}
			c := j.Credential
			fmt.Fprintf(out, "Enrolled node %s: site %s, tags %s, credential valid until %s (renewed online).\n",
				c.NodeID, c.Site, strings.Join(c.Tags, ","), c.NotAfter.UTC().Format(time.RFC3339))
			fmt.Fprintf(out, "Wrote %s and %s. Restart the agent to follow the fleet (systemctl restart patchringd, patchringd start, or patchringd run).\n", j.ConfigFile, j.RootFile)
			return nil
		},
	}
	cmd.Flags().StringVar(&reqFile, "request", "", "write an offline enrollment request to FILE")
	cmd.Flags().StringVar(&credFile, "credential", "", "install the credential in FILE (from patchring ca sign)")
	cmd.Flags().BoolVar(&force, "force", false, "enroll again although the node has a credential")
	return cmd
}

// readToken reads a token given on the command line, or from a file with @.
func readToken(arg string) (*penroll.Token, error) {
	if path, ok := strings.CutPrefix(arg, "@"); ok {
		return penroll.ReadTokenFile(path)
	}
	tok, err := penroll.ParseToken(arg)
	if err != nil {
		return nil, fmt.Errorf("token argument: %w", err)
	}
	return tok, nil
}

func hostname(cfg config.Config) string {
	if cfg.Hostname != "" {
		return cfg.Hostname
	}
	h, _ := os.Hostname()
	return h
}

// loadIdentity loads or creates the node key; undo removes a key it
// created, for a failed first enrollment.
func loadIdentity(stateDir string) (id *nodekey.Identity, undo func(), err error) {
	keyPath := filepath.Join(stateDir, nodekey.File)
	_, statErr := os.Stat(keyPath)
	created := errors.Is(statErr, fs.ErrNotExist)
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("state dir %s: %w", stateDir, err)
	}
	id, err = nodekey.LoadOrCreate(stateDir)
	if err != nil {
		return nil, nil, err
	}
	undo = func() {}
	if created {
		undo = func() { os.Remove(keyPath) }
	}
	return id, undo, nil
}

func nodeOf(id *nodekey.Identity, cfg config.Config) enroll.Node {
	return enroll.Node{ID: id.ID.String(), Hostname: hostname(cfg), Sign: id.Key.Sign}
}

// joinWithToken creates the node key if needed and enrolls; a key it
// created is removed again when enrollment fails, so nothing is left.
func joinWithToken(ctx context.Context, o *options, cfg config.Config, tok *penroll.Token, log *slog.Logger) (*enroll.Joined, error) {
	id, undo, err := loadIdentity(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	j, err := enroll.Join(ctx, enroll.JoinConfig{Token: tok, Node: nodeOf(id, cfg), StateDir: cfg.StateDir, ConfigFile: o.configFile, Log: log})
	if err != nil {
		undo()
		return nil, err
	}
	return j, nil
}

func writeRequest(out io.Writer, cfg config.Config, path string) error {
	id, _, err := loadIdentity(cfg.StateDir)
	if err != nil {
		return err
	}
	req, err := enroll.WriteRequest(path, nodeOf(id, cfg), time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Wrote the enrollment request of node %s (%s) to %s.\nSign it on the admin's machine (patchring ca sign %s --site S --tags T) and install the result with patchringd enroll --credential FILE.\n",
		req.NodeID, req.Hostname, path, filepath.Base(path))
	return nil
}

func installCredential(ctx context.Context, out io.Writer, cfg config.Config, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("credential: %w", err)
	}
	raw, err := io.ReadAll(io.LimitReader(f, credential.MaxSize+1))
	f.Close()
	if err != nil {
		return fmt.Errorf("credential %s: %w", path, err)
	}
	id, _, err := loadIdentity(cfg.StateDir)
	if err != nil {
		return err
	}
	tr, why := fleetDocument(ctx, cfg)
	c, verified, err := enroll.InstallCredential(cfg.StateDir, raw, id.ID.String(), tr, time.Now())
	if err != nil {
		return fmt.Errorf("credential %s: %w", path, err)
	}
	fmt.Fprintf(out, "Installed the credential of node %s: site %s, tags %s, serial %d, valid until %s.\n",
		c.NodeID, c.Site, strings.Join(c.Tags, ","), c.Serial, c.NotAfter.UTC().Format(time.RFC3339))
	if !verified {
		fmt.Fprintf(out, "Its signature was not checked here (%s); the agent checks it against fleet.json before using it.\n", why)
	}
	return nil
}

// fleetDocument fetches fleet.json from the configured origin through
// TUF, into a scratch directory, for a check before installing; it
// returns nil and why when that is not possible (an offline site).
func fleetDocument(ctx context.Context, cfg config.Config) (*credential.Trust, string) {
	if cfg.Policy.Origin == "" {
		return nil, "no origin configured"
	}
	root, err := os.ReadFile(cfg.Policy.RootFile)
	if err != nil {
		return nil, err.Error()
	}
	scratch, err := os.MkdirTemp(cfg.StateDir, ".enroll-")
	if err != nil {
		return nil, err.Error()
	}
	defer os.RemoveAll(scratch)
	of, err := penroll.NewOriginFleet(cfg.Policy.Origin, root, scratch, nil)
	if err != nil {
		return nil, err.Error()
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	tr, err := of.Fleet(ctx)
	if err != nil {
		return nil, "fleet document not reachable: " + err.Error()
	}
	return tr, ""
}

// enrollAtStart enrolls with the token file beside the config file when the
// node has no credential yet, before the agent starts. A service that does
// not answer is retried with backoff until ctx ends; a refused token is
// renamed to TOKEN.refused and the agent starts unenrolled. It returns the
// configuration to run with (reloaded after enrolling).
func enrollAtStart(ctx context.Context, o *options, cfg config.Config, log *slog.Logger) (config.Config, error) {
	path := tokenFile(o)
	if _, err := os.Stat(path); err != nil || enroll.HasCredential(cfg.StateDir) {
		return cfg, nil
	}
	tok, err := penroll.ReadTokenFile(path)
	if err != nil {
		log.Error("enrollment token file unusable; starting unenrolled", "file", path, "err", err)
		return cfg, nil
	}
	wait := 5 * time.Second
	for {
		j, err := joinWithToken(ctx, o, cfg, tok, log)
		if err == nil {
			// The secret is spent: the token file goes.
			if rerr := os.Remove(path); rerr != nil {
				log.Warn("remove used token file", "file", path, "err", rerr)
			}
			log.Info("enrolled with the token file", "file", path, "site", j.Credential.Site, "tags", j.Credential.Tags)
			return config.LoadWithFlags(o.configFile, true, o.flags)
		}
		var ref *penroll.RefusedError
		if errors.As(err, &ref) && ref.Reason.Final() {
			log.Error("enrollment token refused; starting unenrolled", "file", path, "reason", ref.Reason, "err", err)
			if rerr := os.Rename(path, path+".refused"); rerr != nil {
				log.Warn("set the refused token file aside", "err", rerr)
			}
			return cfg, nil
		}
		log.Warn("enrollment failed; retrying", "file", path, "err", err, "in", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return cfg, fmt.Errorf("enrollment with %s interrupted: %w", path, err)
		case <-t.C:
		}
		wait = min(2*wait, 5*time.Minute)
	}
}

// tokenPoll is how often an agent without a credential looks for a token
// file dropped beside its config while it runs.
const tokenPoll = 3 * time.Second

// runEnrolling runs d until ctx ends. An agent that runs with neither a
// credential nor a token file (its package installed before the token was
// dropped) looks for the token file every tokenPoll: once one is there, it
// stops d, enrolls with the file as at first start (enrollAtStart) and
// runs a new daemon with the configuration enrolling wrote.
func runEnrolling(ctx context.Context, o *options, cfg config.Config, d *daemon.Daemon, log *slog.Logger) error {
	for {
		if enroll.HasCredential(cfg.StateDir) || tokenFileExists(o) {
			// Enrolled, or a token file enrollAtStart could not use
			// (logged): nothing to wait for.
			return d.Run(ctx)
		}
		rctx, cancel := context.WithCancel(ctx)
		dropped := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(tokenPoll)
			defer t.Stop()
			for {
				select {
				case <-rctx.Done():
					return
				case <-t.C:
					if tokenFileExists(o) {
						close(dropped)
						cancel()
						return
					}
				}
			}
		}()
		err := d.Run(rctx)
		cancel()
		wg.Wait()
		select {
		case <-dropped:
		default:
			return err
		}
		if err != nil {
			return err
		}
		log.Info("an enrollment token file was dropped: the agent stopped to enroll with it", "file", tokenFile(o))
		if cfg, err = enrollAtStart(ctx, o, cfg, log); err != nil {
			return err
		}
		if d, err = daemon.New(cfg, log); err != nil {
			return err
		}
	}
}

// tokenFile is the token file patchringd run looks for: beside the config.
func tokenFile(o *options) string { return filepath.Join(filepath.Dir(o.configFile), enroll.TokenFile) }

func tokenFileExists(o *options) bool {
	_, err := os.Stat(tokenFile(o))
	return err == nil
}
