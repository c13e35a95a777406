package daemon

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/patchring/patchring/daemon/client"
	"github.com/patchring/patchring/platform/detach"
	"github.com/patchring/patchring/platform/ipc"
)

// SelfPackage is the agent's own package name (cmd/patchring-package).
const SelfPackage = "patchring"

// selfJobs is where detached self-update jobs keep their output and exit
// status, under the state directory.
func (d *Daemon) selfJobs() *detach.Runner {
	return &detach.Runner{Dir: filepath.Join(d.cfg.StateDir, "selfupdate"), Systemd: detach.SystemdAvailable()}
}

// selfHealth is a freshly self-updated agent's health: the service runs
// (this code does), the local API answers on its socket, the site's gossip
// is rejoined, and a signed policy is verified and current.
func (d *Daemon) selfHealth(ctx context.Context) error {
	var errs []error
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	// A fresh connection first: the client's pooled one outlives the
	// socket file, and users dial the file.
	if conn, err := ipc.Dial(cctx, d.cfg.Socket); err != nil {
		errs = append(errs, fmt.Errorf("local API on %s: %w", d.cfg.Socket, err))
	} else {
		conn.Close()
		if _, err := (&client.Client{Socket: d.cfg.Socket}).Status(cctx); err != nil {
			errs = append(errs, fmt.Errorf("local API on %s: %w", d.cfg.Socket, err))
		}
	}
	if d.fleet != nil {
		if err := d.fleet.Rejoined(); err != nil {
			errs = append(errs, err)
		}
	}
	if p, version := d.currentPolicy(); p == nil {
		if version == "" {
			errs = append(errs, errors.New("policy: none verified yet"))
		} else {
			errs = append(errs, fmt.Errorf("policy: version %s is expired", version))
		}
	}
	return errors.Join(errs...)
}

// selfRestart restarts the agent's service from outside its process,
// after its own package was installed or restored without the package's
// scripts restarting it (policy-rc.d forbidding it, say).
func (d *Daemon) selfRestart(reason string) {
	d.log.Warn("restarting the agent to finish a self-update", "reason", reason)
	cmd := detach.Command{Path: "/bin/sh", Args: []string{"-c",
		`if [ -d /run/systemd/system ]; then exec systemctl restart patchringd.service; ` +
			`elif command -v invoke-rc.d >/dev/null 2>&1; then exec invoke-rc.d patchringd restart; ` +
			`else exec /etc/init.d/patchringd restart; fi`},
		Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"}}
	if err := d.selfJobs().Start(context.Background(), "patchring-self-restart", cmd); err != nil {
		d.log.Error("self-update: cannot restart the agent; restart patchringd to finish it", "err", err)
	}
}
