package services

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Stale lists the processes of the system that map, executable, a deleted
// file for which replaced returns true, each with its service. Processes
// that exit during the scan, kernel threads and processes of other roots
// (containers, other chroots) are left out.
func (m *Manager) Stale(ctx context.Context, replaced func(file string) bool) ([]Process, error) {
	entries, err := os.ReadDir(m.o.Proc)
	if err != nil {
		return nil, fmt.Errorf("find processes running replaced code: %w", err)
	}
	systemd := m.systemdManages()
	pids := m.pidFiles()
	var out []Process
	for _, e := range entries {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		p, ok := m.process(pid, replaced)
		if !ok {
			continue
		}
		m.resolve(&p, systemd, pids)
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Process) int { return a.PID - b.PID })
	return out, nil
}

// process reads one process; ok is false unless it belongs to the system
// and maps a replaced file.
func (m *Manager) process(pid int, replaced func(string) bool) (Process, bool) {
	dir := filepath.Join(m.o.Proc, strconv.Itoa(pid))
	root, err := os.Readlink(filepath.Join(dir, "root"))
	if err != nil || filepath.Clean(root) != m.o.Root {
		return Process{}, false
	}
	maps, err := os.ReadFile(filepath.Join(dir, "maps"))
	if err != nil || len(maps) == 0 {
		return Process{}, false
	}
	var files []string
	for _, f := range DeletedMappings(maps) {
		if in, ok := m.inRoot(f); ok && replaced(in) {
			files = append(files, in)
		}
	}
	if len(files) == 0 {
		return Process{}, false
	}
	p := Process{PID: pid, Files: files}
	if comm, err := os.ReadFile(filepath.Join(dir, "comm")); err == nil {
		p.Command = strings.TrimSpace(string(comm))
	}
	return p, true
}

// systemdManages reports whether systemd is the system's service manager.
func (m *Manager) systemdManages() bool {
	if m.o.Root != "/" {
		return false // a test root shares the host's cgroups, not its units
	}
	fi, err := os.Stat("/run/systemd/system")
	return err == nil && fi.IsDir()
}

// pidFiles maps PIDs to the SysV scripts whose PID files name them:
// /run/NAME.pid, /var/run/NAME.pid or /run/NAME/NAME.pid of the system,
// for every /etc/init.d/NAME.
func (m *Manager) pidFiles() map[int]string {
	out := map[int]string{}
	scripts, err := os.ReadDir(m.host("/etc/init.d"))
	if err != nil {
		return out
	}
	for _, s := range scripts {
		name := s.Name()
		if strings.HasPrefix(name, ".") || name == "README" || strings.Contains(name, ".dpkg-") {
			continue
		}
		for _, pf := range []string{"/run/" + name + ".pid", "/var/run/" + name + ".pid", "/run/" + name + "/" + name + ".pid"} {
			data, err := os.ReadFile(m.host(pf))
			if err != nil {
				continue
			}
			if pid, err := strconv.Atoi(string(bytes.TrimSpace(data))); err == nil && pid > 0 {
				out[pid] = name
			}
		}
	}
	return out
}

// resolve finds the service of p.
func (m *Manager) resolve(p *Process, systemd bool, pids map[int]string) {
	dir := filepath.Join(m.o.Proc, strconv.Itoa(p.PID))
	if systemd {
		cg, err := os.ReadFile(filepath.Join(dir, "cgroup"))
		if err != nil {
			p.NoService = "its cgroup could not be read"
			return
		}
		unit, scope, user := UnitFromCgroup(cg)
		switch {
		case unit == "":
			p.NoService = "it belongs to no systemd unit"
		case user:
			p.NoService = "it runs under a user's service manager (" + unit + ")"
		case scope:
			p.NoService = "it runs in " + unit + ", not in a service (a session or a transient scope)"
		default:
			p.Service, p.Manager = unit, ManagerSystemd
		}
		return
	}
	// SysV: the script whose PID file names the process or one of its
	// ancestors (a daemon's worker), else the script named as its command.
	pid := p.PID
	for range 4 {
		if name, ok := pids[pid]; ok {
			p.Service, p.Manager = name, ManagerSysV
			return
		}
		pid = parentPID(filepath.Join(m.o.Proc, strconv.Itoa(pid)))
		if pid <= 1 {
			break
		}
	}
	if p.Command != "" && !strings.Contains(p.Command, "/") {
		if fi, err := os.Stat(m.host("/etc/init.d/" + p.Command)); err == nil && fi.Mode().IsRegular() {
			p.Service, p.Manager = p.Command, ManagerSysV
			return
		}
	}
	p.NoService = "no init script's PID file names it and no init script is named " + p.Command
}

// parentPID reads PPid from a process's status file; 0 when unknown.
func parentPID(dir string) int {
	data, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "PPid:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}

// Restart restarts service with its manager (systemctl restart UNIT, or
// the init script's restart) and waits for it, bounded by the timeout.
func (m *Manager) Restart(ctx context.Context, manager, service string) error {
	if service == "" || strings.ContainsAny(service, "/\x00") || strings.HasPrefix(service, "-") {
		return fmt.Errorf("restart service %q: not a service name", service)
	}
	var name string
	var args []string
	switch manager {
	case ManagerSystemd:
		name, args = "systemctl", []string{"restart", "--", service}
	case ManagerSysV:
		name, args = "/etc/init.d/"+service, []string{"restart"}
	default:
		return fmt.Errorf("restart service %s: unknown service manager %q", service, manager)
	}
	if m.o.Command == nil {
		return fmt.Errorf("restart service %s: no way to run commands in the system at %s", service, m.o.Root)
	}
	cctx, cancel := context.WithTimeout(ctx, m.o.Timeout)
	defer cancel()
	cmd := m.o.Command(cctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Stdin = nil
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if err != nil {
		if errors.Is(cctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("timed out after %s: %w", m.o.Timeout, err)
		}
		msg := strings.TrimSpace(out.String())
		if len(msg) > 400 {
			msg = "..." + msg[len(msg)-400:]
		}
		return fmt.Errorf("restart %s service %s: %w: %s", manager, service, err, msg)
	}
	return nil
}
