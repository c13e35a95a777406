//go:build !windows

package hookrun

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRunOutcomes(t *testing.T) {
	t.Parallel()
	ok := Run(t.Context(), []string{"/bin/sh", "-c", "echo ready; env"}, []string{"PATCHRING_X=1"}, 10*time.Second, 1<<10)
	if ok.Err != nil || !strings.Contains(ok.Output, "ready") || !strings.Contains(ok.Output, "PATCHRING_X=1") {
		t.Errorf("ok run: %v %q", ok.Err, ok.Output)
	}
	if strings.Contains(ok.Output, "GOPATH=") || strings.Contains(ok.Output, "GOFLAGS") {
		t.Errorf("the hook saw the caller's environment: %q", ok.Output)
	}
	fail := Run(t.Context(), []string{"/bin/sh", "-c", "echo draining failed >&2; exit 3"}, nil, 10*time.Second, 1<<10)
	if fail.Err == nil || !strings.Contains(fail.Err.Error(), "exit status 3") || !strings.Contains(fail.Output, "draining failed") {
		t.Errorf("failing run: %v %q", fail.Err, fail.Output)
	}
	big := Run(t.Context(), []string{"/bin/sh", "-c", "head -c 100000 /dev/zero | tr '\\0' x; echo END"}, nil, 10*time.Second, 100)
	if big.Err != nil || len(big.Output) != 100 || !strings.HasSuffix(big.Output, "END\n") || big.Dropped != 100004-100 {
		t.Errorf("output cap: %v, kept %d bytes ending %q, dropped %d", big.Err, len(big.Output), big.Output[max(0, len(big.Output)-8):], big.Dropped)
	}
}

// TestRunKillsAHangingHookAndItsChildren: a hook that hangs (and started a
// child that hangs too) is killed whole at its timeout.
func TestRunKillsAHangingHookAndItsChildren(t *testing.T) {
	t.Parallel()
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	r := Run(t.Context(), []string{"/bin/sh", "-c", "sleep 300 & echo $! >" + pidFile + "; wait"}, nil, 500*time.Millisecond, 1<<10)
	if !errors.Is(r.Err, ErrTimeout) {
		t.Fatalf("hanging hook: %v, want a timeout", r.Err)
	}
	if r.Took > 30*time.Second {
		t.Errorf("the run took %s", r.Took)
	}
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid := strings.TrimSpace(string(data))
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil || strings.Contains(string(st), ") Z ") {
			return // gone (or a zombie waiting for its reaper)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the hook's child %s survived the timeout", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestTailBuffer(t *testing.T) {
	b := &tailBuffer{limit: 4}
	for _, s := range []string{"ab", "cd", "e", "fghij", "k"} {
		b.Write([]byte(s))
	}
	if b.String() != "hijk" || b.dropped() != 7 {
		t.Fatalf("kept %q dropped %d", b.String(), b.dropped())
	}
}
