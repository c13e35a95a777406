package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/patchring/patchring/daemon/client"
	"github.com/patchring/patchring/internal/testutil"
)

// TestNonRootUsesXDGDirs: a user without root runs `patchringd run` with no
// flags and gets state and socket under their XDG directories.
func TestNonRootUsesXDGDirs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root to run the agent as another uid (make test runs as root)")
	}
	const nobody = 65534
	home, err := os.MkdirTemp("", "patchring-user-*")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	os.Chown(home, nobody, nobody)
	state, run := filepath.Join(home, ".local", "state"), filepath.Join(home, "run")
	cmd := exec.Command(patchringd.Path(t), "run") // Shared: the user can reach it
	cmd.Env = []string{"HOME=" + home, "XDG_STATE_HOME=" + state, "XDG_RUNTIME_DIR=" + run, "XDG_CONFIG_HOME=" + filepath.Join(home, ".config"), "PATH=/usr/bin:/bin"}
	testutil.AsUser(cmd, nobody, nobody)
	os.MkdirAll(run, 0o700)
	os.Chown(run, nobody, nobody)
	logf, _ := os.Create(filepath.Join(home, "log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-done
		}
	})
	sock := filepath.Join(run, "patchring", "patchringd.sock")
	c := &client.Client{Socket: sock}
	testutil.WaitFor(t, 20*time.Second, fmt.Sprintf("agent as uid %d answering on %s", nobody, sock), func() error {
		st, err := c.Status(context.Background())
		if err != nil {
			log, _ := os.ReadFile(filepath.Join(home, "log"))
			return fmt.Errorf("%w\n%s", err, log)
		}
		if st.StateDir != filepath.Join(state, "patchring") {
			t.Errorf("state dir %q, want under XDG_STATE_HOME", st.StateDir)
		}
		return nil
	})
	if _, err := os.Stat(filepath.Join(state, "patchring", "state.db")); err != nil {
		t.Errorf("no state under XDG_STATE_HOME: %v", err)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := <-done; err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
}
