package services

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"path"
	"strconv"
	"strings"
	"time"
)

// ErrUnsupported is returned where the scan is not implemented.
var ErrUnsupported = errors.New("finding processes that run replaced code is not supported on this system")

// Service managers.
const (
	ManagerSystemd = "systemd"
	ManagerSysV    = "sysv"
)

// Process is a process still mapping replaced files.
type Process struct {
	PID     int      `json:"pid"`
	Command string   `json:"command"` // /proc/PID/comm
	Files   []string `json:"files"`   // the replaced files it maps, as paths in the system
	// Service is the service it belongs to ("" when none was found) and
	// Manager the service manager that runs it (ManagerSystemd or
	// ManagerSysV).
	Service string `json:"service,omitempty"`
	Manager string `json:"manager,omitempty"`
	// NoService says why no service was found (e.g. a user's session).
	NoService string `json:"no_service,omitempty"`
}

// Name is how reports name the process: "PID 1234 (food)".
func (p Process) Name() string { return "PID " + strconv.Itoa(p.PID) + " (" + p.Command + ")" }

// Options configure a Manager.
type Options struct {
	// Root is the system's root directory ("" or "/": this system).
	Root string
	// Proc is where the process table is mounted. Default "/proc".
	Proc string
	// Command returns a command that runs name inside the system (for a
	// test root, its runner). Default for the root "/": exec.CommandContext;
	// for another root without it, Restart refuses.
	Command func(ctx context.Context, name string, args ...string) *exec.Cmd
	// Timeout bounds one restart. Default 2 minutes.
	Timeout time.Duration
}

// Manager finds and restarts services of one system.
type Manager struct {
	o Options
}

// New returns a Manager.
func New(o Options) *Manager {
	if o.Root == "" {
		o.Root = "/"
	}
	o.Root = path.Clean(o.Root)
	if o.Proc == "" {
		o.Proc = "/proc"
	}
	if o.Command == nil && o.Root == "/" {
		// Another root needs its runner: a command run here would act
		// on this system's services instead.
		o.Command = exec.CommandContext
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Minute
	}
	return &Manager{o: o}
}

// inRoot turns a path as the host sees it into a path in the system;
// ok is false when it lies outside the system's root.
func (m *Manager) inRoot(p string) (string, bool) {
	if m.o.Root == "/" {
		return p, true
	}
	if p == m.o.Root {
		return "/", true
	}
	if rest, ok := strings.CutPrefix(p, m.o.Root+"/"); ok {
		return "/" + rest, true
	}
	return "", false
}

// host turns a path in the system into the host's path.
func (m *Manager) host(p string) string {
	if m.o.Root == "/" {
		return p
	}
	return m.o.Root + p
}

// DeletedMappings returns the deleted files a process maps executable, from
// its /proc/PID/maps, without the " (deleted)" suffix, each once, in order.
func DeletedMappings(maps []byte) []string {
	if !bytes.Contains(maps, []byte(" (deleted)")) {
		return nil
	}
	var out []string
	for line := range bytes.SplitSeq(maps, []byte("\n")) {
		rest, ok := bytes.CutSuffix(line, []byte(" (deleted)"))
		if !ok {
			continue
		}
		// address perms offset dev inode pathname
		var fields [5][]byte
		for i := range fields {
			rest = bytes.TrimLeft(rest, " ")
			sp := bytes.IndexByte(rest, ' ')
			if sp < 0 {
				rest = nil
				break
			}
			fields[i], rest = rest[:sp], rest[sp:]
		}
		p := string(bytes.TrimLeft(rest, " "))
		perms := fields[1]
		if len(perms) < 3 || perms[2] != 'x' || !strings.HasPrefix(p, "/") {
			continue
		}
		if !contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// UnitFromCgroup returns the systemd service unit of a process from its
// /proc/PID/cgroup (the unified "0::" hierarchy or name=systemd): the
// innermost ".service" element. scope is set instead when the innermost
// unit is a scope (a login session, a transient run), and user when the
// unit belongs to a user's service manager (below user@UID.service).
func UnitFromCgroup(data []byte) (unit string, scope, user bool) {
	var cg string
	for line := range strings.SplitSeq(string(data), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			cg = parts[2]
			break
		}
		if parts[1] == "name=systemd" {
			cg = parts[2]
		}
	}
	var last string
	for elem := range strings.SplitSeq(cg, "/") {
		if strings.HasSuffix(elem, ".service") || strings.HasSuffix(elem, ".scope") {
			if strings.HasPrefix(last, "user@") {
				user = true
			}
			last = elem
		}
	}
	if strings.HasSuffix(last, ".scope") {
		return last, true, user
	}
	return last, false, user
}
