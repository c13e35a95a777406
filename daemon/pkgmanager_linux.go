package daemon

import (
	"log/slog"

	"github.com/patchring/patchring/daemon/config"
	"github.com/patchring/patchring/daemon/engine"
	"github.com/patchring/patchring/platform/dnf"
)

// dnfPackages builds the engine's dnf backend on apt.root (an installroot,
// or the running system) with apt.dnf_args.
func dnfPackages(cfg config.Config, log *slog.Logger) (engine.Packages, string, error) {
	b, err := dnf.New(dnf.Options{Root: cfg.Apt.Root, Args: cfg.Apt.DnfArgs, Logger: log})
	if err != nil {
		return nil, "", err
	}
	return engine.DnfPackages(b), b.Paths().Root, nil
}
