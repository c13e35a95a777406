package inventory

import (
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// restart finds processes that map deleted executables or libraries
// (their code was replaced by an update) by reading /proc/PID/maps and
// /proc/PID/exe, and groups them by systemd unit from /proc/PID/cgroup.
func (s *scan) restart(ctx context.Context) *Restart {
	r := &Restart{}
	entries, err := os.ReadDir(s.path("/proc"))
	if err != nil {
		r.Unavailable = append(r.Unavailable, Unavailable{Source: "/proc", Reason: reason(err)})
		return r
	}
	var pids []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	slices.Sort(pids)
	self := os.Getpid()
	const workers = 4
	results := make([]*RestartProcess, len(pids))
	unreadable := make([]bool, len(pids))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(pids); i += workers {
				if ctx.Err() != nil {
					return
				}
				if pids[i] == self && s.live() {
					continue
				}
				results[i], unreadable[i] = s.process(pids[i])
			}
		})
	}
	wg.Wait()
	units := map[string]*RestartUnit{}
	for i, p := range results {
		r.Scanned++
		if unreadable[i] {
			r.Unreadable++
		}
		if p == nil {
			continue
		}
		r.Processes = append(r.Processes, *p)
		key := p.Unit
		if p.UserUnit {
			key = "user:" + key
		}
		u := units[key]
		if u == nil {
			u = &RestartUnit{Unit: p.Unit, User: p.UserUnit}
			units[key] = u
		}
		u.PIDs = append(u.PIDs, p.PID)
		for _, f := range p.Files {
			if !slices.Contains(u.Files, f) {
				u.Files = append(u.Files, f)
			}
		}
	}
	for _, u := range units {
		slices.Sort(u.Files)
		r.Units = append(r.Units, *u)
	}
	slices.SortFunc(r.Units, func(a, b RestartUnit) int {
		if c := strings.Compare(a.Unit, b.Unit); c != 0 {
			return c
		}
		if a.User == b.User {
			return 0
		}
		if a.User {
			return 1 // system units first
		}
		return -1
	})
	if r.Unreadable > 0 {
		why := " processes could not be inspected (other users' processes need root)"
		if os.Geteuid() == 0 {
			why = " processes could not be inspected (permission denied even to root)"
		}
		r.Unavailable = append(r.Unavailable, Unavailable{Source: "/proc/PID/maps", Reason: strconv.Itoa(r.Unreadable) + why})
	}
	return r
}

// process inspects one process; it returns nil when the process maps no
// deleted code, and unreadable when its maps could not be read for a
// reason other than the process having exited.
func (s *scan) process(pid int) (p *RestartProcess, unreadable bool) {
	dir := "/proc/" + strconv.Itoa(pid)
	maps, err := os.ReadFile(s.path(dir + "/maps"))
	if err != nil {
		return nil, !os.IsNotExist(err) && !strings.Contains(err.Error(), "no such process")
	}
	if len(maps) == 0 {
		return nil, false // a kernel thread
	}
	files := parseMaps(maps)
	exe, _ := os.Readlink(s.path(dir + "/exe"))
	exeDeleted := false
	if e, ok := strings.CutSuffix(exe, " (deleted)"); ok && strings.HasPrefix(e, "/") && !ignoredMapping(e) {
		exe, exeDeleted = e, true
		if !slices.Contains(files, e) {
			files = append([]string{e}, files...)
		}
	}
	if len(files) == 0 {
		return nil, false
	}
	p = &RestartProcess{PID: pid, Exe: exe, ExeDeleted: exeDeleted, Files: files}
	if comm, ok := s.readTrim(dir + "/comm"); ok {
		p.Command = comm
	}
	if cg, u := s.read(dir + "/cgroup"); u == nil {
		p.Unit, p.UserUnit = unitFromCgroup(cg)
	}
	return p, false
}
