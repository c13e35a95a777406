//go:build linux

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/patchring/patchring/internal/testutil"
	floodclient "github.com/patchring/patchring/internal/testutil/flood"
)

// An unprivileged user opens 500 event streams and 5,000 idle connections
// to a real patchringd and keeps connecting; root's `patchring status`
// still answers, and the daemon's open files stay bounded by its caps.
func TestLocalAPIFloodedByAUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root to run a client as another uid (make test runs as root)")
	}
	const nobody = 65534
	// Room for both sides to hold everything, so a missing cap shows as
	// open files, not as a failure to accept; children inherit it.
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	const want = 16384
	if lim.Cur < want {
		old := lim
		lim.Cur, lim.Max = want, max(lim.Max, want)
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Fatalf("raise RLIMIT_NOFILE: %v", err)
		}
		t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
	}

	flood, cli := floodBin.Path(t), cliBin.Path(t)
	// The socket lives where uid 65534 can reach it.
	sock := filepath.Join(testutil.SocketDir(t), "api.sock")
	p := startDaemon(t, t.TempDir(), "--socket", sock)
	p.sock = sock
	p.waitReady(t)
	pid := p.cmd.Process.Pid
	openFiles := func() int {
		ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		if err != nil {
			t.Fatalf("open files of patchringd: %v", err)
		}
		return len(ents)
	}
	baseline := openFiles()

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, flood, "-socket", sock, "-streams", "500", "-idle", "5000")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	r := floodclient.Start(t, ctx, cmd)
	streams := r.Streams
	if r.Conns != 5500 {
		t.Fatalf("the flooding client holds %d connections, want 5500", r.Conns)
	}
	if streams > 8 {
		t.Errorf("the user holds %d event streams; the cap is 8", streams)
	}

	// Root's `patchring status`, while the user keeps connecting: each try
	// has a second; the deadline is generous (a shared machine).
	testutil.WaitFor(t, time.Minute, "root's patchring status answering within a second while flooded", func() error {
		sctx, scancel := context.WithTimeout(ctx, time.Second)
		defer scancel()
		out, err := exec.CommandContext(sctx, cli, "--socket", sock, "status").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "reboot") {
			return fmt.Errorf("%v\n%s", err, out)
		}
		return nil
	})
	if n, bound := openFiles(), baseline+32+16; n > bound {
		t.Errorf("patchringd holds %d open files while flooded (%d before), want at most %d", n, baseline, bound)
	} else {
		t.Logf("patchringd open files: %d before, %d while flooded", baseline, n)
	}
}
