// Command patchringd is the patchring agent: one per endpoint. It runs in
// the foreground with `patchringd run`, or as an OS service managed with
// `patchringd install|uninstall|start|stop|status`.
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
	"runtime"
	"syscall"

	"github.com/kardianos/service"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/patchring/patchring/daemon"
	"github.com/patchring/patchring/daemon/config"
	"github.com/patchring/patchring/internal/version"
)

const serviceName = "patchringd"

func main() {
	if err := newRootCmd(os.Stdout, os.Stderr).Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "patchringd:", err)
		os.Exit(1)
	}
}

// options are the flags every subcommand shares.
type options struct {
	configFile string
	cfg        config.Config
	flags      *pflag.FlagSet
}

// load reads the config file under the flags: defaults < file < flags.
// A config file named with --config must exist; the default one may not.
func (o *options) load() (config.Config, error) {
	return config.LoadWithFlags(o.configFile, o.flags.Lookup("config").Changed, o.flags)
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	o := &options{cfg: config.Default()}
	root := &cobra.Command{
		Use:           "patchringd",
		Short:         "patchringd is the patchring agent that runs on every endpoint",
		Version:       version.Version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	o.flags = root.PersistentFlags()
	o.flags.StringVar(&o.configFile, "config", config.DefaultFile(), "configuration file")
	config.BindFlags(o.flags, &o.cfg)

	root.AddCommand(&cobra.Command{
		Use:   "run",
		Short: "Run the agent in the foreground (or under the OS service manager)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := o.load()
			if errors.Is(err, fs.ErrNotExist) && tokenFileExists(o) {
				// The config is what enrolling with the token writes.
				cfg, err = config.LoadWithFlags(o.configFile, false, o.flags)
			}
			if err != nil {
				return err
			}
			// At first start, a token file beside the config enrolls
			// the node before the agent starts.
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			cfg, err = enrollAtStart(ctx, o, cfg, newLogger(cfg, stderr))
			stop()
			if err != nil {
				return err
			}
			return run(o, cfg, stderr)
		},
	})
	for _, action := range []struct{ name, short string }{
		{"install", "Install patchringd as an OS service (systemd, SysV init, Windows service, launchd) with the given flags"},
		{"uninstall", "Remove the OS service"},
		{"start", "Start the OS service"},
		{"stop", "Stop the OS service"},
		{"status", "Show whether the OS service is running"},
	} {
		action := action
		root.AddCommand(&cobra.Command{
			Use:   action.name,
			Short: action.short,
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, args []string) error {
				if _, err := o.load(); err != nil {
					return err
				}
				return control(cmd.OutOrStdout(), action.name, o)
			},
		})
	}
	root.AddCommand(newEnrollCmd(o, stderr))
	root.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Run: func(cmd *cobra.Command, args []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "patchringd", version.Version)
		},
	})
	return root
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(cfg.LogLevel))
	hopts := &slog.HandlerOptions{Level: lvl}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, hopts))
	}
	return slog.New(slog.NewTextHandler(w, hopts))
}

// program adapts the daemon to kardianos/service.
type program struct {
	o      *options
	cfg    config.Config
	log    *slog.Logger
	cancel context.CancelFunc
	done   chan error
}

func (p *program) Start(s service.Service) error {
	d, err := daemon.New(p.cfg, p.log)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	p.done = make(chan error, 1)
	go func() { p.done <- runEnrolling(ctx, p.o, p.cfg, d, p.log) }()
	return nil
}

func (p *program) Stop(s service.Service) error {
	if p.cancel == nil {
		return nil
	}
	p.cancel()
	return <-p.done
}

func run(o *options, cfg config.Config, stderr io.Writer) error {
	log := newLogger(cfg, stderr)
	if n, ok := maxProcs(cfg.MaxProcs, os.Getenv("GOMAXPROCS")); ok {
		runtime.GOMAXPROCS(n)
	}
	if cfg.Policy.Origin == "" {
		// A freshly installed package: the agent runs (inventory, local
		// API) but follows no policy until it is given one.
		log.Warn("no signed policy configured: this agent installs nothing; enroll it: drop an enrollment token into " + tokenFile(o) +
			" (the agent enrolls with it within seconds) or run patchringd enroll TOKEN; or set policy.origin and policy.root_file (the fleet's root.json) in the config file and restart patchringd")
	}
	if service.Interactive() {
		d, err := daemon.New(cfg, log)
		if err != nil {
			return err
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return runEnrolling(ctx, o, cfg, d, log)
	}
	p := &program{o: o, cfg: cfg, log: log}
	s, err := service.New(p, serviceConfig(nil))
	if err != nil {
		return fmt.Errorf("service: %w", err)
	}
	return s.Run()
}

// maxProcs is the GOMAXPROCS the agent sets from its max_procs setting,
// and whether it sets one: not when the GOMAXPROCS environment variable
// is set (it wins) or max_procs is 0 (Go's default, every core). The
// default is one: an agent spends most of its life idle, and with a
// second P each wakeup also wakes an idle thread to look for work (an
// idle agent in a 20-member site: 0.74 % of a core with every core,
// 0.55 % with one); apt, dpkg and dnf run as their own processes, and
// one core hashes and encrypts far faster than a LAN delivers.
func maxProcs(setting int, env string) (int, bool) {
	if env != "" || setting <= 0 {
		return 0, false
	}
	return setting, true
}

// serviceConfig describes the service; args are the flags recorded for
// `run` at install time.
func serviceConfig(args []string) *service.Config {
	return &service.Config{
		Name:        serviceName,
		DisplayName: "patchring agent",
		Description: "patchring endpoint patch manager agent: inventory, signed policy, updates, reboots.",
		Arguments:   append([]string{"run"}, args...),
		Dependencies: []string{
			"Wants=network-online.target",
			"After=network-online.target",
		},
		Option: service.KeyValue{
			"Restart":           "on-failure",
			"SuccessExitStatus": "0",
		},
	}
}

func control(w io.Writer, action string, o *options) error {
	var args []string
	visitChanged(o.flags, func(f *pflag.Flag) {
		v := f.Value.String()
		if f.Name == "config" {
			v, _ = filepath.Abs(v)
		}
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			for _, s := range sv.GetSlice() {
				args = append(args, "--"+f.Name+"="+s)
			}
			return
		}
		args = append(args, "--"+f.Name+"="+v)
	})
	s, err := service.New(&program{}, serviceConfig(args))
	if err != nil {
		return fmt.Errorf("service: %w", err)
	}
	if action == "status" {
		st, err := s.Status()
		if err != nil && !errors.Is(err, service.ErrNotInstalled) && serviceInstalled() {
			// SysV's "status" exits 1 for a stopped service, which
			// kardianos/service reports as an error.
			st, err = service.StatusStopped, nil
		}
		if err != nil {
			if errors.Is(err, service.ErrNotInstalled) || !serviceInstalled() {
				fmt.Fprintf(w, "%s: not installed (%s)\n", serviceName, s.Platform())
				return nil
			}
			return fmt.Errorf("status of service %s (%s): %w", serviceName, s.Platform(), err)
		}
		name := map[service.Status]string{service.StatusRunning: "running", service.StatusStopped: "stopped"}[st]
		if name == "" {
			name = "unknown"
		}
		fmt.Fprintf(w, "%s: %s (%s)\n", serviceName, name, s.Platform())
		return nil
	}
	if err := service.Control(s, action); err != nil {
		return fmt.Errorf("%s service %s (%s): %w", action, serviceName, s.Platform(), err)
	}
	switch action {
	case "install":
		if err := installAutostart(); err != nil {
			return err
		}
	case "uninstall":
		if err := removeAutostart(); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "%s: %s done (%s)\n", serviceName, action, s.Platform())
	return nil
}

// visitChanged calls fn for every flag of fs the user set. (cobra parses
// persistent flags through the subcommand's flag set, which marks the
// shared *pflag.Flag as Changed but not fs's own record.)
func visitChanged(fs *pflag.FlagSet, fn func(*pflag.Flag)) {
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed {
			fn(f)
		}
	})
}
