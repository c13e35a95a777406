//go:build unix

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/patchring/patchring/platform/detach"
)

// selfService runs an agent the way an init system runs patchringd where
// there is no systemd: the binary the patchring package installed in the
// agent's root, started when the package's postinst asks (through a FIFO,
// run/patchringd.ctl in the root) and stopped by its prerm (through the pid
// file, run/patchringd.pid, written for each agent it starts and removed
// once that agent exited). close takes no more requests, stops the agent's
// detached self-update jobs and ends the running agent by its PID.
type selfService struct {
	a                     *agent
	cfgFile, bin, ctl     string
	pidFile, logPath, dir string
	fifo                  *os.File
	reader                chan struct{}

	mu     sync.Mutex
	closed bool
	cmd    *exec.Cmd
	done   chan struct{}
}

func startSelfService(a *agent, cfgFile string) (*selfService, error) {
	sv := &selfService{a: a, cfgFile: cfgFile, bin: a.sb.Path("usr/sbin/patchringd"), dir: a.dir,
		ctl: a.sb.Path("run/patchringd.ctl"), pidFile: a.sb.Path("run/patchringd.pid"),
		logPath: filepath.Join(a.dir, "patchringd.log"), reader: make(chan struct{})}
	if err := os.MkdirAll(filepath.Dir(sv.ctl), 0o755); err != nil {
		return nil, err
	}
	if err := unix.Mkfifo(sv.ctl, 0o600); err != nil {
		return nil, fmt.Errorf("service of %s: %w", a.name, err)
	}
	// Read and write: the reader never sees end of file between writers.
	f, err := os.OpenFile(sv.ctl, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("service of %s: %w", a.name, err)
	}
	sv.fifo = f
	go sv.read()
	if err := sv.start(); err != nil {
		sv.close()
		return nil, err
	}
	return sv, nil
}

func (sv *selfService) read() {
	defer close(sv.reader)
	sc := bufio.NewScanner(sv.fifo)
	for sc.Scan() {
		switch line := strings.TrimSpace(sc.Text()); line {
		case "start":
			if err := sv.start(); err != nil {
				sv.logf("service: %v", err)
			}
		case "quit":
			return
		default:
			sv.logf("service: unknown request %q", line)
		}
	}
}

func (sv *selfService) logf(format string, args ...any) {
	f, err := os.OpenFile(sv.logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "demo %s "+format+"\n", append([]any{time.Now().UTC().Format(time.RFC3339Nano)}, args...)...)
}

func (sv *selfService) pid() int {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	if sv.cmd == nil {
		return 0
	}
	return sv.cmd.Process.Pid
}

// start starts the installed agent unless one runs or the service closed.
func (sv *selfService) start() error {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	if sv.closed {
		return errors.New("the demo is ending: not starting the agent")
	}
	if sv.cmd != nil {
		return nil // running: start is idempotent, as an init script's is
	}
	logf, err := os.OpenFile(sv.logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("start %s: %w", sv.a.name, err)
	}
	cmd := exec.Command(sv.bin, "run", "--config", sv.cfgFile)
	cmd.Stdout, cmd.Stderr = logf, logf
	// A process group of its own, led by the agent: what its launcher
	// started besides the agent ends with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", sv.a.name, err)
	}
	if err := os.WriteFile(sv.pidFile, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
		return fmt.Errorf("start %s: %w", sv.a.name, err)
	}
	done := make(chan struct{})
	sv.cmd, sv.done = cmd, done
	go func() {
		_ = cmd.Wait()
		logf.Close()
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		sv.mu.Lock()
		sv.cmd, sv.done = nil, nil
		_ = os.Remove(sv.pidFile)
		sv.mu.Unlock()
		close(done)
	}()
	return nil
}

// close ends the service: no more starts, the FIFO gone, the agent's
// detached jobs stopped, the running agent ended by its PID.
func (sv *selfService) close() error {
	sv.mu.Lock()
	sv.closed = true
	sv.mu.Unlock()
	var errs []error
	if err := os.Remove(sv.ctl); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	if _, err := sv.fifo.WriteString("quit\n"); err != nil {
		errs = append(errs, err)
	}
	<-sv.reader
	sv.fifo.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	jobs := &detach.Runner{Dir: filepath.Join(sv.dir, "selfupdate")}
	if err := jobs.StopAll(ctx); err != nil {
		errs = append(errs, fmt.Errorf("stop the agent's detached jobs: %w", err))
	}
	sv.mu.Lock()
	cmd, done := sv.cmd, sv.done
	sv.mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		t := time.NewTimer(15 * time.Second)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			_ = cmd.Process.Signal(syscall.SIGKILL)
			<-done
		}
	}
	return errors.Join(errs...)
}
