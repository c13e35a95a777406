package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/patchring/patchring/internal/testutil"
	"github.com/patchring/patchring/policy/tufrepo"
)

// lockedBuffer is a process's output, safe to read while it writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// serveCLI runs the patchring CLI with args (a server) until the test
// ends (SIGTERM by its PID, SIGKILL after 10 s) and returns the first
// submatch of addr in its output.
func serveCLI(t *testing.T, cli string, addr *regexp.Regexp, args ...string) string {
	t.Helper()
	out := &lockedBuffer{}
	cmd := exec.Command(cli, args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	var found string
	testutil.WaitFor(t, 30*time.Second, "patchring "+args[0]+" "+args[1]+" listening", func() error {
		select {
		case <-done:
			t.Fatalf("patchring %v exited:\n%s", args, out)
		default:
		}
		m := addr.FindStringSubmatch(out.String())
		if m == nil {
			return fmt.Errorf("output so far: %q", out.String())
		}
		found = m[1]
		return nil
	})
	return found
}

// enrollToken sets up a fleet on 127.0.0.1 with the real CLI (its signed
// repository served by patchring repo serve, an issuing key delegated to
// patchring ca serve) and returns an enrollment token file for site lab.
func enrollToken(t *testing.T, cli string) string {
	t.Helper()
	dir := t.TempDir()
	repo, keys, issuer, data := filepath.Join(dir, "repo"), filepath.Join(dir, "keys"), filepath.Join(dir, "issuer"), filepath.Join(dir, "ca-data")
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
			t.Fatalf("patchring %v: %v\n%s", args, err, out)
		}
	}
	run("repo", "init", "--repo", repo, "--keys", keys)
	run("ca", "issuer", "create", "--repo", repo, "--keys", keys, "--name", "package-test", "--sites", "lab", "--valid", "1d", "--out", issuer)
	keyFiles, err := filepath.Glob(filepath.Join(issuer, tufrepo.RoleFleetIssuer+"-*.json"))
	if err != nil || len(keyFiles) != 1 {
		t.Fatalf("issuer create wrote %d key files (%v)", len(keyFiles), err)
	}
	origin := serveCLI(t, cli, regexp.MustCompile(`on (http://127\.0\.0\.1:\d+)/`), "repo", "serve", "--repo", repo, "--listen", "127.0.0.1:0")
	service := serveCLI(t, cli, regexp.MustCompile(`Issuing service on (http://127\.0\.0\.1:\d+)/`),
		"ca", "serve", "--data", data, "--issuer-key", keyFiles[0], "--repo", repo, "--listen", "127.0.0.1:0", "--validity", "1d")
	tok := filepath.Join(dir, "lab.token")
	run("enroll-token", "create", "--data", data, "--site", "lab", "--uses", "1", "--expires", "1h",
		"--origin", origin, "--service", service, "--root", filepath.Join(repo, "metadata", "1.root.json"), "--out", tok)
	if _, err := os.Stat(tok); err != nil {
		t.Fatal(err)
	}
	return tok
}
