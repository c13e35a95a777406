package detach

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// A guarded job runs an install, then stays to watch: unless the job is
// settled (Settle) within a time after the install ended, it runs a
// restore command. It is how a self-update survives a new agent that
// never starts: the old agent's package comes back without any agent.
// The install's output and exit status are the job's (Status); the
// restore's are NAME-guard's.

// quote quotes s for a POSIX shell.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// shellCommand is cmd as one shell command line with its environment
// replaced by cmd.Env.
func shellCommand(cmd Command) string {
	parts := []string{"env", "-i"}
	for _, kv := range cmd.Env {
		parts = append(parts, quote(kv))
	}
	parts = append(parts, quote(cmd.Path))
	for _, a := range cmd.Args {
		parts = append(parts, quote(a))
	}
	return strings.Join(parts, " ")
}

// guardScript is the shell script of a guarded job.
func guardScript(log, status, settled, glog, gstatus string, install, restore Command, after time.Duration) string {
	secs := int((after + time.Second - 1) / time.Second)
	var b strings.Builder
	fmt.Fprintf(&b, "%s >%s 2>&1 </dev/null\n", shellCommand(install), quote(log))
	fmt.Fprintf(&b, "rc=$?\necho $rc >%s && mv -f %s %s\n", quote(status+".tmp"), quote(status+".tmp"), quote(status))
	stand := fmt.Sprintf("{ echo settled >%s; exit 0; }", quote(glog))
	fmt.Fprintf(&b, "i=0\nwhile [ $i -lt %d ]; do [ -e %s ] && %s; sleep 1; i=$((i+1)); done\n", secs, quote(settled), stand)
	fmt.Fprintf(&b, "[ -e %s ] && %s\n", quote(settled), stand)
	fmt.Fprintf(&b, "%s >%s 2>&1 </dev/null\n", shellCommand(restore), quote(glog))
	fmt.Fprintf(&b, "echo $? >%s && mv -f %s %s\n", quote(gstatus+".tmp"), quote(gstatus+".tmp"), quote(gstatus))
	return b.String()
}

// StartGuarded starts install as job name, detached; if the job is not
// settled within after of the install's end, restore runs (as job
// name+"-guard").
func (r *Runner) StartGuarded(ctx context.Context, name string, install, restore Command, after time.Duration) error {
	logPath, statusPath, err := r.paths(name)
	if err != nil {
		return err
	}
	glog, gstatus, err := r.paths(name + "-guard")
	if err != nil {
		return err
	}
	if after <= 0 {
		return fmt.Errorf("detach: guard of %s: the wait must be above 0", name)
	}
	if err := os.MkdirAll(r.Dir, 0o700); err != nil {
		return fmt.Errorf("detach: %w", err)
	}
	settled := filepath.Join(r.Dir, name+".settled")
	for _, p := range []string{settled, glog, gstatus, gstatus + ".tmp"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("detach: %w", err)
		}
	}
	script := guardScript(logPath, statusPath, settled, glog, gstatus, install, restore, after)
	path := filepath.Join(r.Dir, name+".sh")
	if err := os.WriteFile(path, []byte(script), 0o600); err != nil {
		return fmt.Errorf("detach: %w", err)
	}
	return r.start(ctx, name, logPath, statusPath, []string{"/bin/sh", path}, []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"})
}

// Settle tells job name's guard that the install turned out well (or
// that the caller restores it itself): the restore does not run.
func (r *Runner) Settle(name string) error {
	if _, _, err := r.paths(name); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(r.Dir, name+".settled"), os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("detach: settle %s: %w", name, err)
	}
	return f.Close()
}

// GuardStatus reports whether job name's guard ran the restore and how it
// ended (not done when it did not, or not yet).
func (r *Runner) GuardStatus(name string) (Status, error) { return r.Status(name + "-guard") }

// exitCode parses a status file's content.
func exitCode(b []byte) (int, error) { return strconv.Atoi(strings.TrimSpace(string(b))) }
