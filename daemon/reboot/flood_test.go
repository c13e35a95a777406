//go:build linux

package reboot_test

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/patchring/patchring/daemon/apitypes"
	"github.com/patchring/patchring/daemon/client"
	"github.com/patchring/patchring/daemon/localapi"
	"github.com/patchring/patchring/daemon/reboot"
	"github.com/patchring/patchring/internal/testutil"
	"github.com/patchring/patchring/internal/testutil/flood"
)

// With PATCHRING_TEST_FLOOD set, the test binary is the flooding client.
func init() {
	if sock := os.Getenv("PATCHRING_TEST_FLOOD"); sock != "" {
		streams, _ := strconv.Atoi(os.Getenv("PATCHRING_TEST_STREAMS"))
		idle, _ := strconv.Atoi(os.Getenv("PATCHRING_TEST_IDLE"))
		os.Exit(flood.Run(sock, streams, idle, os.Stdin, os.Stdout))
	}
}

func openFiles(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// An unprivileged user opens 500 event streams and 5,000 idle connections
// and keeps connecting: the daemon holds at most its caps of them, and
// root's status still answers.
func TestLocalAPIFloodByAnUnprivilegedUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root to run a client as another uid (make test runs as root)")
	}
	const nobody, streams, idle = 65534, 500, 5000
	// Room for the daemon side to accept them all, so a missing cap shows
	// as many open files, not as a failure to accept.
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if want := uint64(3 * (streams + idle)); lim.Cur < want {
		old := lim
		lim.Cur, lim.Max = want, max(lim.Max, want)
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Fatalf("raise RLIMIT_NOFILE to %d: %v", want, err)
		}
		t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
	}

	a := startAPI(t, reboot.Rules{Deadline: 48 * time.Hour})
	baseline := openFiles(t)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, testutil.SelfShared(t), "-test.run=^$")
	cmd.Env = append(os.Environ(), "PATCHRING_TEST_FLOOD="+a.sock, "PATCHRING_TEST_STREAMS="+strconv.Itoa(streams), "PATCHRING_TEST_IDLE="+strconv.Itoa(idle), "GORACE=atexit_sleep_ms=0")
	testutil.AsUser(cmd, nobody, nobody)
	r := flood.Start(t, ctx, cmd)
	gotStreams, gotConns, line := r.Streams, r.Conns, r.Line
	if gotStreams == 0 || gotStreams > reboot.StreamsPerUID || gotConns != streams+idle {
		t.Errorf("the user got %d of %d event streams, want 1 to %d", gotStreams, streams, reboot.StreamsPerUID)
	}
	if !strings.Contains(line, "too many connections from uid 65534 (at most 32 at once)") || !strings.Contains(line, `"code":"too-many"`) {
		t.Errorf("a refused connection's answer does not say why: %q", line)
	}

	// Root still gets its status, and its own event stream, while the
	// user keeps connecting. Each try may take a second; the deadline is
	// generous because the machine is shared.
	c := &client.Client{Socket: a.sock}
	testutil.WaitFor(t, time.Minute, "root's status answering within a second while flooded", func() error {
		sctx, scancel := context.WithTimeout(ctx, time.Second)
		defer scancel()
		var st apitypes.Status
		return c.Do(sctx, http.MethodGet, "/status", nil, &st)
	})
	ectx, ecancel := context.WithTimeout(ctx, 30*time.Second)
	events, err := c.Events(ectx)
	if err != nil {
		t.Fatalf("root's event stream while flooded: %v", err)
	}
	if _, ok := <-events; !ok {
		t.Error("root's event stream ended at once")
	}
	ecancel()

	// What the daemon holds open stays bounded by the caps, not by what the
	// user opened.
	bound := baseline + localapi.DefaultConnsPerUID + 16
	if n := openFiles(t); n > bound {
		t.Errorf("the daemon holds %d open files while flooded (%d before), want at most %d", n, baseline, bound)
	}
	if a.srv.Refused() == 0 {
		t.Error("no connection was counted as refused")
	}
}
