//go:build linux

package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/patchring/patchring/internal/testutil"
)

// TestHealthCheckTimeoutKillsItsChildren: a check that leaves a child
// holding its output open is killed at the deadline with the child, and
// the run returns instead of waiting for the pipe.
func TestHealthCheckTimeoutKillsItsChildren(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	res := runHealthCheck(context.Background(),
		[]string{"sh", "-c", `sleep 600 & echo $! > "$1"; echo started; wait`, "sh", pidFile}, nil, time.Second)
	if res.err == nil || !strings.Contains(res.err.Error(), "timed out after 1s") {
		t.Fatalf("err = %v, want a timeout", res.err)
	}
	if !strings.Contains(res.output, "started") {
		t.Errorf("output %q lost what the check printed before the timeout", res.output)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) }) // only if the test failed
	testutil.WaitFor(t, 30*time.Second, "the check's child ends with the killed check", func() error {
		if syscall.Kill(pid, 0) == nil {
			return fmt.Errorf("child %d is still running", pid)
		}
		return nil
	})
}

// TestHealthCheckOutputIsBounded: only the last HealthOutputLimit bytes of
// a check's output are kept; the rest is counted.
func TestHealthCheckOutputIsBounded(t *testing.T) {
	res := runHealthCheck(context.Background(),
		[]string{"sh", "-c", `head -c 3000000 /dev/zero | tr '\0' a; echo; echo END; exit 3`}, nil, time.Minute)
	var ee interface{ ExitCode() int }
	if !errors.As(res.err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("err = %v, want exit status 3", res.err)
	}
	if len(res.output) != HealthOutputLimit || !strings.HasSuffix(res.output, "a\nEND\n") {
		t.Fatalf("kept %d bytes ending %q, want the last %d", len(res.output), res.output[max(0, len(res.output)-10):], HealthOutputLimit)
	}
	if want := int64(3000000 + 5 - HealthOutputLimit); res.dropped != want {
		t.Errorf("dropped = %d, want %d", res.dropped, want)
	}
}

// TestHealthCheckCleanEnvironment: the check sees a fixed PATH and the
// engine's HealthEnv, none of the daemon's own variables.
func TestHealthCheckCleanEnvironment(t *testing.T) {
	t.Setenv("PATCHRING_TEST_SECRET", "from-the-daemon")
	res := runHealthCheck(context.Background(), []string{"env"}, []string{"PATCHRING_ROOT=/x"}, time.Minute)
	if res.err != nil {
		t.Fatal(res.err)
	}
	if strings.Contains(res.output, "PATCHRING_TEST_SECRET") {
		t.Errorf("the check inherited the daemon's environment:\n%s", res.output)
	}
	for _, want := range []string{"PATCHRING_ROOT=/x", "PATH=/usr/local/sbin:"} {
		if !strings.Contains(res.output, want) {
			t.Errorf("environment lacks %q:\n%s", want, res.output)
		}
	}
}
