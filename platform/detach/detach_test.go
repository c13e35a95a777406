//go:build linux

package detach

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/patchring/patchring/internal/testutil"
)

func waitDone(t *testing.T, r *Runner, name string) Status {
	t.Helper()
	var st Status
	testutil.WaitFor(t, 30*time.Second, "job "+name+" ended", func() error {
		var err error
		if st, err = r.Status(name); err != nil {
			t.Fatal(err)
		}
		if !st.Done {
			return errors.New("still running")
		}
		return nil
	})
	return st
}

func TestStartRecordsExitOutputAndOwnSession(t *testing.T) {
	r := newRunner(t)
	marker := filepath.Join(t.TempDir(), "sid")
	cmd := Command{Path: "/bin/sh", Args: []string{"-c", `echo "hello $GREETING"; cut -d' ' -f6 /proc/self/stat >"$1"; exit 3`, "sh", marker}, Env: []string{"GREETING=world", "PATH=/usr/bin:/bin"}}
	if err := r.Start(context.Background(), "job-1", cmd); err != nil {
		t.Fatal(err)
	}
	st := waitDone(t, r, "job-1")
	if st.ExitCode != 3 || !strings.Contains(st.Output, "hello world") {
		t.Fatalf("status = %+v, want exit 3 and the output", st)
	}
	b, err := os.ReadFile(marker)
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Fatal(err)
	}
	mySid, _ := strconv.Atoi(strings.Fields(string(self))[5])
	if strings.TrimSpace(string(b)) == "" || strings.TrimSpace(string(b)) == itoa(mySid) {
		t.Fatalf("job ran in session %q, the test's own is %d: not detached", b, mySid)
	}
	// A second run of the same name starts from scratch.
	if err := r.Start(context.Background(), "job-1", Command{Path: "/bin/true"}); err != nil {
		t.Fatal(err)
	}
	if st := waitDone(t, r, "job-1"); st.ExitCode != 0 || st.Output != "" {
		t.Fatalf("rerun status = %+v", st)
	}
}

func TestBadNamesAndDirs(t *testing.T) {
	for _, r := range []struct {
		dir, name string
	}{{t.TempDir(), "../x"}, {t.TempDir(), ""}, {"relative", "ok"}} {
		rr := &Runner{Dir: r.dir}
		if err := rr.Start(context.Background(), r.name, Command{Path: "/bin/true"}); err == nil {
			t.Errorf("Start(dir %q, name %q) succeeded", r.dir, r.name)
		}
	}
	r := newRunner(t)
	if st, err := r.Status("never-started"); err != nil || st.Done {
		t.Fatalf("Status of a job never started = %+v, %v", st, err)
	}
	os.WriteFile(filepath.Join(r.Dir, "junk.status"), []byte("x\n"), 0o600)
	if _, err := r.Status("junk"); err == nil || !strings.Contains(err.Error(), "junk.status") {
		t.Fatalf("Status of a corrupt status file: %v", err)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func waitFile(t *testing.T, path string) {
	t.Helper()
	testutil.WaitFor(t, 30*time.Second, path+" appeared", func() error {
		_, err := os.Stat(path)
		return err
	})
}

func TestGuardRestoresUnlessSettled(t *testing.T) {
	out := t.TempDir()
	restored := filepath.Join(out, "restored")
	env := []string{"PATH=/usr/bin:/bin", "WHO=it's me"}
	install := Command{Path: "/bin/sh", Args: []string{"-c", `echo "installed by $WHO"`}, Env: env}
	restore := Command{Path: "/bin/sh", Args: []string{"-c", `echo "restored by $WHO" >"$1"; echo restore ran`, "sh", restored}, Env: env}

	r := newRunner(t)
	if err := r.StartGuarded(context.Background(), "guarded", install, restore, time.Second); err != nil {
		t.Fatal(err)
	}
	if st := waitDone(t, r, "guarded"); st.ExitCode != 0 || !strings.Contains(st.Output, "installed by it's me") {
		t.Fatalf("install status = %+v", st)
	}
	if st := waitDone(t, r, "guarded-guard"); st.ExitCode != 0 || !strings.Contains(st.Output, "restore ran") {
		t.Fatalf("guard status = %+v", st)
	}
	if b, err := os.ReadFile(restored); err != nil || string(b) != "restored by it's me\n" {
		t.Fatalf("restore output %q, %v", b, err)
	}

	// Settled: the guard stands down and the restore never runs.
	r2 := newRunner(t)
	restored2 := filepath.Join(out, "restored2")
	restore.Args[len(restore.Args)-1] = restored2
	if err := r2.StartGuarded(context.Background(), "guarded", install, restore, time.Hour); err != nil {
		t.Fatal(err)
	}
	waitDone(t, r2, "guarded")
	if err := r2.Settle("guarded"); err != nil {
		t.Fatal(err)
	}
	waitFile(t, filepath.Join(r2.Dir, "guarded-guard.log"))
	if st, err := r2.GuardStatus("guarded"); err != nil || st.Done {
		t.Fatalf("guard of a settled job: %+v, %v", st, err)
	}
	if _, err := os.Stat(restored2); err == nil {
		t.Fatal("the restore ran although the job was settled")
	}
}

// newRunner is a runner in a temporary directory whose jobs still running
// when the test ends are stopped.
func newRunner(t *testing.T) *Runner {
	r := &Runner{Dir: t.TempDir()}
	t.Cleanup(func() {
		if err := r.StopAll(context.Background()); err != nil {
			t.Errorf("stop jobs: %v", err)
		}
	})
	return r
}

// TestStopEndsTheJobsSession: a guard waiting an hour is ended by Stop,
// with its children, and the restore never runs.
func TestStopEndsTheJobsSession(t *testing.T) {
	r := newRunner(t)
	restored := filepath.Join(t.TempDir(), "restored")
	install := Command{Path: "/bin/true", Env: []string{"PATH=/usr/bin:/bin"}}
	restore := Command{Path: "/bin/sh", Args: []string{"-c", `echo x >"$1"`, "sh", restored}, Env: install.Env}
	if err := r.StartGuarded(context.Background(), "waiting", install, restore, time.Hour); err != nil {
		t.Fatal(err)
	}
	waitDone(t, r, "waiting")
	b, err := os.ReadFile(filepath.Join(r.Dir, "waiting.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	if !sessionLeader(pid) {
		t.Fatalf("job %d does not lead its own session", pid)
	}
	if err := r.Stop(context.Background(), "waiting"); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "the guard's session to end", func() error {
		if sessionLeader(pid) {
			return fmt.Errorf("session %d still runs", pid)
		}
		return nil
	})
	if err := r.Stop(context.Background(), "waiting"); err != nil {
		t.Fatalf("stopping a stopped job: %v", err)
	}
	if _, err := os.Stat(restored); err == nil {
		t.Fatal("the restore ran after Stop")
	}
}
