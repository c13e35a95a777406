package engine

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/patchring/patchring/platform/services"
	"github.com/patchring/patchring/policy"
)

// Services finds processes still mapping replaced files and restarts
// services; platform/services.Manager is the real one.
type Services interface {
	Stale(ctx context.Context, replaced func(file string) bool) ([]services.Process, error)
	Restart(ctx context.Context, manager, service string) error
}

var _ Services = (*services.Manager)(nil)

// ServiceRestart is one service the restart step restarted.
type ServiceRestart struct {
	Service string `json:"service"`
	Manager string `json:"manager"`
	PIDs    []int  `json:"pids"` // the processes that ran replaced code
	Result  string `json:"result"`
	Error   string `json:"error,omitempty"`
}

// Restart results.
const (
	RestartDone   = "restarted"
	RestartFailed = "failed"
)

// StaleProcess is a process the restart step left running replaced code.
type StaleProcess struct {
	PID     int      `json:"pid"`
	Command string   `json:"command"`
	Service string   `json:"service,omitempty"`
	Files   []string `json:"files"`
	Why     string   `json:"why"` // why it was not restarted
	// Reboot is set when it makes the reboot required (restart_services
	// auto or never); notify only reports it.
	Reboot bool `json:"reboot,omitempty"`
}

// String names the process for people: "PID 42 (food) of food still maps
// /usr/lib/libfoo.so.1 (restart_services is never)".
func (s StaleProcess) String() string {
	of := ""
	if s.Service != "" {
		of = " of " + s.Service
	}
	return fmt.Sprintf("PID %d (%s)%s still maps %s (%s)", s.PID, s.Command, of, strings.Join(s.Files, ", "), s.Why)
}

// noteOldFiles lists the files of the versions a transaction replaces,
// before it installs anything.
func (e *Engine) noteOldFiles(ctx context.Context, tx *Tx) {
	if e.cfg.Services == nil {
		return
	}
	var pkgs []string
	for _, it := range tx.Items {
		if it.From != "" {
			pkgs = append(pkgs, it.Package)
		}
	}
	files, err := e.cfg.Packages.Files(ctx, pkgs...)
	if err != nil {
		e.cfg.Log.Warn("engine: list the files of the versions being replaced; the restart step will count the new versions' files only", "err", err)
		return
	}
	tx.oldFiles = files
}

// restartServices is the restart step: it finds the processes still
// mapping files of the packages tx changed and restarts their services as
// the policy allows. An error (a restart that failed, or a restarted
// service still running replaced code) fails the install like a failed
// health check.
func (e *Engine) restartServices(ctx context.Context, tx *Tx) error {
	if e.cfg.Services == nil {
		return nil
	}
	if err := e.j.begin(tx, StepRestart, ""); err != nil {
		return err
	}
	replaced, err := e.replacedFiles(ctx, tx)
	if err != nil {
		e.j.finish(tx, err, "")
		return err
	}
	tx.Restarts, tx.Stale = nil, nil
	restarts, stale, detail, err := e.restartStale(ctx, tx, replaced, CrashAfterRestart)
	tx.Restarts, tx.Stale = restarts, stale
	e.j.finish(tx, err, detail)
	return err
}

// listFiles lists the files the packages of tx's items ship now, for the
// restart step after a rollback (nil without Services).
func (e *Engine) listFiles(ctx context.Context, tx *Tx) ([]string, error) {
	if e.cfg.Services == nil {
		return nil, nil
	}
	var pkgs []string
	for _, it := range tx.Items {
		pkgs = append(pkgs, it.Package)
	}
	files, err := e.cfg.Packages.Files(ctx, pkgs...)
	if err != nil {
		return nil, fmt.Errorf("list the files of %s: %w", strings.Join(pkgs, ", "), err)
	}
	return files, nil
}

// restartAfterRollback is the restart step after a rollback
// (StepRestartBack): the services that were restarted onto the new files,
// and any process that maps a file the rollback replaced, are restarted
// onto the restored versions as the policy allows. rolledOut are the files
// of the versions the rollback replaced (listed before it); with the
// files the restored versions ship, and those of the versions the install
// replaced (tx.oldFiles, when known), they are the replaced files. It
// returns the restart failures (the rollback stands: there is nothing
// left to roll back to) and leaves tx.Stale to the processes it could not
// restart.
//
// sameTx is set for the rollback of tx itself (right after its install,
// under the same policy): the processes left then need no reboot. After a
// separate rollback transaction (an admin's or the policy's order, maybe
// much later) a process left may run the rolled-out code: the reboot is
// required as after an install.
func (e *Engine) restartAfterRollback(ctx context.Context, tx *Tx, rolledOut []string, sameTx bool) error {
	if e.cfg.Services == nil {
		return nil
	}
	if err := e.j.begin(tx, StepRestartBack, ""); err != nil {
		return err
	}
	now, err := e.listFiles(ctx, tx)
	if err != nil {
		err = fmt.Errorf("restart services after the rollback: %w", err)
		e.j.finish(tx, err, "")
		return err
	}
	set := make(map[string]bool, len(now)+len(rolledOut)+len(tx.oldFiles))
	for _, list := range [][]string{now, rolledOut, tx.oldFiles} {
		for _, f := range list {
			set[path.Clean(f)] = true
		}
	}
	restarts, stale, detail, err := e.restartStale(ctx, tx, func(f string) bool { return set[path.Clean(f)] }, CrashAfterRestartBack)
	if sameTx {
		// A process the policy does not let the step restart was not
		// restarted onto the new versions either: it runs the code of
		// the versions restored, so it is reported but needs no reboot.
		for i := range stale {
			stale[i].Reboot = false
		}
	}
	tx.RollbackRestarts, tx.Stale = restarts, stale
	if err != nil {
		err = fmt.Errorf("after the rollback: %w", err)
	}
	e.j.finish(tx, err, detail)
	return err
}

// restartStale finds the processes mapping a replaced file and restarts
// their services as the policy allows; it returns what it restarted, the
// processes it left, the journal detail, and an error naming each restart
// that failed (or left a process of the service on replaced code).
// crashAt names its crash point after the restarts.
func (e *Engine) restartStale(ctx context.Context, tx *Tx, replaced func(string) bool, crashAt string) (restarts []ServiceRestart, left []StaleProcess, detail string, err error) {
	stale, err := e.cfg.Services.Stale(ctx, replaced)
	if err != nil {
		return nil, nil, "processes not checked: " + err.Error(), nil
	}
	pol, _ := e.cfg.Policy()
	mode := pol.RestartMode()
	type svc struct {
		manager string
		pids    []int
	}
	restart := map[string]*svc{}
	var order []string
	for _, p := range stale {
		why := p.NoService
		ok := false
		if p.Service != "" {
			ok, why = pol.MayRestart(p.Service)
		} else {
			why = "no service: " + why
		}
		if ok {
			s := restart[p.Service]
			if s == nil {
				s = &svc{manager: p.Manager}
				restart[p.Service] = s
				order = append(order, p.Service)
			}
			s.pids = append(s.pids, p.PID)
			continue
		}
		left = append(left, StaleProcess{PID: p.PID, Command: p.Command, Service: p.Service, Files: p.Files,
			Why: why, Reboot: mode != policy.RestartNotify})
	}
	var failed []string
	for _, name := range order {
		s := restart[name]
		r := ServiceRestart{Service: name, Manager: s.manager, PIDs: s.pids, Result: RestartDone}
		if err := e.cfg.Services.Restart(ctx, s.manager, name); err != nil {
			r.Result, r.Error = RestartFailed, err.Error()
			failed = append(failed, err.Error())
		} else {
			e.cfg.Log.Info("engine: restarted a service that ran replaced code", "tx", tx.ID, "service", name, "pids", s.pids)
		}
		restarts = append(restarts, r)
	}
	crashPoint(crashAt)
	if len(failed) == 0 && len(order) > 0 {
		// A restart that returned success must have left no process of
		// the service on the old code.
		again, err := e.cfg.Services.Stale(ctx, replaced)
		if err == nil {
			for _, p := range again {
				if _, ok := restart[p.Service]; ok && p.Service != "" {
					failed = append(failed, fmt.Sprintf("service %s was restarted but PID %d (%s) still maps %s", p.Service, p.PID, p.Command, strings.Join(p.Files, ", ")))
				}
			}
		}
	}
	detail = restartDetail(mode, restarts, left)
	if len(failed) > 0 {
		return restarts, left, detail, fmt.Errorf("restart services: %s", strings.Join(failed, "; "))
	}
	return restarts, left, detail, nil
}

// replacedFiles returns a test of the files tx replaced: those of the
// versions it replaced (listed before the install) and of the versions it
// installed (a file at the same path was replaced by a new one).
func (e *Engine) replacedFiles(ctx context.Context, tx *Tx) (func(string) bool, error) {
	var pkgs []string
	for _, it := range tx.Items {
		if it.To != "" {
			pkgs = append(pkgs, it.Package)
		}
	}
	files, err := e.cfg.Packages.Files(ctx, pkgs...)
	if err != nil {
		return nil, fmt.Errorf("restart services: list the installed files: %w", err)
	}
	set := make(map[string]bool, len(files)+len(tx.oldFiles))
	for _, f := range append(files, tx.oldFiles...) {
		set[path.Clean(f)] = true
	}
	return func(f string) bool { return set[path.Clean(f)] }, nil
}

func restartDetail(mode string, restarts []ServiceRestart, left []StaleProcess) string {
	var parts []string
	for _, r := range restarts {
		parts = append(parts, fmt.Sprintf("%s %s (%s service, PIDs %v)", r.Result, r.Service, r.Manager, r.PIDs))
	}
	for _, s := range left {
		parts = append(parts, "left "+s.String())
	}
	if len(parts) == 0 {
		return "no process runs replaced code"
	}
	return "restart_services " + mode + ": " + strings.Join(parts, "; ")
}

// rebootPackages are the packages whose new version is only in use after
// a reboot whatever restarts: the kernel, the C library, the init system.
var rebootPackages = []string{"linux-image-*", "linux-modules-*", "libc6", "libc6-*", "systemd", "systemd-sysv",
	"sysvinit-core", "runit-init", "openrc", "init"}

// rebootReasons says why tx left the machine needing a reboot: the kernel,
// the C library or the init system changed, a package asked for it (the
// reboot-required flag), or a process still runs replaced code that was
// not restarted. None: no reboot.
func (e *Engine) rebootReasons(tx *Tx) (reasons, pkgs []string) {
	for _, it := range tx.Items {
		if it.To == "" {
			continue
		}
		for _, g := range rebootPackages {
			if ok, _ := path.Match(g, it.Package); ok {
				reasons = append(reasons, fmt.Sprintf("%s %s changed (kernel, C library or init system)", it.Package, it.To))
				pkgs = append(pkgs, it.Package+" "+it.To)
				break
			}
		}
	}
	if req, asked := e.cfg.Packages.RebootRequired(); req {
		r := "a package asked for a reboot"
		if len(asked) > 0 {
			r += " (" + strings.Join(asked, ", ") + ")"
		}
		reasons = append(reasons, r)
		for _, p := range asked {
			if !slices.Contains(pkgs, p) {
				pkgs = append(pkgs, p)
			}
		}
	}
	for _, s := range tx.Stale {
		if s.Reboot {
			reasons = append(reasons, s.String())
		}
	}
	return reasons, pkgs
}
