package detach

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Command is a program with its arguments and complete environment.
type Command struct {
	Path string
	Args []string
	Env  []string
}

// Runner starts detached jobs whose output and exit status go to Dir.
type Runner struct {
	// Dir holds each job's NAME.log and NAME.status.
	Dir string
	// Systemd runs jobs as transient units with systemd-run; otherwise
	// they run in a session of their own.
	Systemd bool
}

// Status is how a job stands.
type Status struct {
	Done     bool
	ExitCode int
	// Output is the tail of the job's output.
	Output string
}

var validName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)

func (r *Runner) paths(name string) (log, status string, err error) {
	if !validName.MatchString(name) {
		return "", "", fmt.Errorf("detach: job name %q: use 1 to 64 of a-z, 0-9 and -", name)
	}
	if r.Dir == "" || !filepath.IsAbs(r.Dir) {
		return "", "", fmt.Errorf("detach: job directory %q is not an absolute path", r.Dir)
	}
	return filepath.Join(r.Dir, name+".log"), filepath.Join(r.Dir, name+".status"), nil
}

// wrapper runs the command with its output to the log and writes its exit
// status atomically when it ends.
const wrapper = `log=$1; st=$2; shift 2; "$@" >"$log" 2>&1 </dev/null; echo $? >"$st.tmp" && mv -f "$st.tmp" "$st"`

// argv is the shell wrapper's command line for cmd.
func argv(log, status string, cmd Command) []string {
	return append([]string{"/bin/sh", "-c", wrapper, "sh", log, status, cmd.Path}, cmd.Args...)
}

// Status reports whether job name ended and how. A job never started (or
// whose files were removed) is not done.
func (r *Runner) Status(name string) (Status, error) {
	logPath, statusPath, err := r.paths(name)
	if err != nil {
		return Status{}, err
	}
	b, err := os.ReadFile(statusPath)
	if errors.Is(err, os.ErrNotExist) {
		return Status{}, nil
	}
	if err != nil {
		return Status{}, fmt.Errorf("detach: job %s: %w", name, err)
	}
	code, err := exitCode(b)
	if err != nil {
		return Status{}, fmt.Errorf("detach: job %s: status file %s: %q is not an exit code", name, statusPath, strings.TrimSpace(string(b)))
	}
	out, _ := os.ReadFile(logPath)
	const max = 4 << 10
	if len(out) > max {
		out = out[len(out)-max:]
	}
	return Status{Done: true, ExitCode: code, Output: string(out)}, nil
}

// clear removes what an earlier run of job name left.
func clear(log, status string) error {
	for _, p := range []string{log, status, status + ".tmp"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("detach: %w", err)
		}
	}
	return nil
}

// StopAll stops every job started in r.Dir that may still run (see Stop).
func (r *Runner) StopAll(ctx context.Context) error {
	pids, err := filepath.Glob(filepath.Join(r.Dir, "*.pid"))
	if err != nil {
		return fmt.Errorf("detach: %w", err)
	}
	var errs []error
	for _, p := range pids {
		errs = append(errs, r.Stop(ctx, strings.TrimSuffix(filepath.Base(p), ".pid")))
	}
	return errors.Join(errs...)
}
