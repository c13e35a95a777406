//go:build !linux

package daemon

import (
	"log/slog"

	"github.com/patchring/patchring/daemon/config"
	"github.com/patchring/patchring/daemon/engine"
	"github.com/patchring/patchring/platform/dnf"
)

// dnfPackages reports that dnf is driven on Linux only.
func dnfPackages(cfg config.Config, log *slog.Logger) (engine.Packages, string, error) {
	return nil, "", dnf.ErrNotFound
}
