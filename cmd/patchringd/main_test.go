package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/patchring/patchring/daemon/client"
	"github.com/patchring/patchring/daemon/store"
	"github.com/patchring/patchring/internal/testutil"
)

var update = flag.Bool("update", false, "rewrite golden files")

// patchringd is the agent binary, built once for the tests that need a real
// process (signals, a second daemon, service managers). It is Shared so
// that a test can run it as an unprivileged user.
var patchringd = &testutil.Binary{Pkg: ".", Shared: true}

// floodBin and cliBin are the flooding client and the CLI of the flood
// test, run as uid 65534 (so Shared).
var (
	floodBin = &testutil.Binary{Pkg: "./testdata/flood", Shared: true}
	cliBin   = &testutil.Binary{Pkg: "../patchring", Shared: true}
)

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	patchringd.Remove()
	floodBin.Remove()
	cliBin.Remove()
	os.Exit(code)
}

// daemonProc is a patchringd started by a test.
type daemonProc struct {
	cmd    *exec.Cmd
	stderr *testutil.SyncBuffer
	done   chan error
	sock   string
}

func startDaemon(t testing.TB, stateDir string, extra ...string) *daemonProc {
	t.Helper()
	p := spawnDaemon(t, stateDir, extra...)
	return p
}

// startDaemonB starts a daemon for a benchmark and waits until it answers.
func startDaemonB(b *testing.B, stateDir string, extra ...string) *daemonProc {
	b.Helper()
	p := spawnDaemon(b, stateDir, extra...)
	p.waitReady(b)
	return p
}

func spawnDaemon(t testing.TB, stateDir string, extra ...string) *daemonProc {
	t.Helper()
	sock := filepath.Join(stateDir, "api.sock")
	args := append([]string{"run", "--config", filepath.Join(stateDir, "none.yaml"), "--state-dir", stateDir, "--socket", sock, "--log-level", "debug"}, extra...)
	// A config file named with --config must exist: give an empty one.
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(stateDir, "none.yaml"), nil, 0o600)
	cmd := exec.Command(patchringd.Path(t), args...)
	p := &daemonProc{cmd: cmd, stderr: &testutil.SyncBuffer{}, done: make(chan error, 1), sock: sock}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// waitReady polls the socket until the daemon answers, and fails at once
// if it exits first.
func (p *daemonProc) waitReady(t testing.TB) {
	t.Helper()
	c := &client.Client{Socket: p.sock}
	testutil.WaitFor(t, 20*time.Second, "daemon ready", func() error {
		select {
		case err := <-p.done:
			t.Fatalf("daemon exited before it was ready: %v\n%s", err, p.stderr)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if _, err := c.Status(ctx); err != nil {
			return fmt.Errorf("%w\n%s", err, p.stderr)
		}
		return nil
	})
}

func (p *daemonProc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("daemon exit after SIGTERM: %v\n%s", err, p.stderr)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("daemon did not stop after SIGTERM\n%s", p.stderr)
	}
}

func TestLifecycleStateSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	p := startDaemon(t, dir)
	p.waitReady(t)
	c := &client.Client{Socket: p.sock}
	st1, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st1.StartedAt != 1 || st1.NodeID == "" || st1.StateDir != dir {
		t.Fatalf("first status: %+v", st1)
	}
	p.stop(t)
	if _, err := os.Stat(p.sock); !os.IsNotExist(err) {
		t.Errorf("socket left behind after clean stop: %v", err)
	}

	p = startDaemon(t, dir)
	p.waitReady(t)
	st2, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st2.StartedAt != 2 {
		t.Errorf("start count after restart = %d, want 2 (state lost?)", st2.StartedAt)
	}
	if st2.NodeID != st1.NodeID {
		t.Errorf("node ID changed across restart: %s -> %s", st1.NodeID, st2.NodeID)
	}
	p.stop(t)
}

func TestSecondDaemonOnSameStateDirRefused(t *testing.T) {
	dir := t.TempDir()
	p := startDaemon(t, dir)
	p.waitReady(t)
	out, err := exec.Command(patchringd.Path(t), "run", "--state-dir", dir, "--socket", filepath.Join(dir, "other.sock")).CombinedOutput()
	if err == nil {
		t.Fatalf("second daemon started:\n%s", out)
	}
	if !strings.Contains(string(out), "state store is in use by another process") || !strings.Contains(string(out), dir) {
		t.Errorf("unclear refusal:\n%s", out)
	}
	p.stop(t)
}

func TestCorruptDatabaseRefusedAndUntouched(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, store.FileName)
	garbage := bytes.Repeat([]byte("not a bbolt file "), 1000)
	if err := os.WriteFile(db, garbage, 0o600); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(db)
	out, err := exec.Command(patchringd.Path(t), "run", "--state-dir", dir, "--socket", filepath.Join(dir, "s.sock")).CombinedOutput()
	if err == nil {
		t.Fatalf("daemon started on a corrupt database:\n%s", out)
	}
	for _, want := range []string{db, "unreadable", "left untouched", "mv "} {
		if !strings.Contains(string(out), want) {
			t.Errorf("message lacks %q:\n%s", want, out)
		}
	}
	after, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(after, garbage) {
		t.Error("corrupt database file was modified")
	}
	if st, _ := os.Stat(db); !st.ModTime().Equal(before.ModTime()) {
		t.Error("corrupt database file's mtime changed")
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name string
		file string
		want string
	}{
		{"unknown key", write("unknown.yaml", "state_dir: /tmp/x\npolicy:\n  orgin: http://x\n"),
			`unknown.yaml:3: unknown key "policy.orgin" in policy (allowed: origin, refresh_interval, root_file)`},
		{"bad value", write("bad.yaml", "inventory:\n  interval: often\n"), "bad.yaml:2: cannot unmarshal !!str `often` into time.Duration"},
		{"bad log format", write("fmt.yaml", "log_format: xml\n"), `log_format: "xml" is not a log format; use text or json`},
		{"missing file", filepath.Join(dir, "missing.yaml"), "missing.yaml: file does not exist"},
		{"negative max_procs", write("procs.yaml", "max_procs: -1\n"), "max_procs: must not be negative (0: every core)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := exec.Command(patchringd.Path(t), "run", "--config", tt.file, "--state-dir", dir, "--socket", filepath.Join(dir, "s.sock")).CombinedOutput()
			if err == nil {
				t.Fatalf("daemon accepted the config:\n%s", out)
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			if len(lines) != 1 {
				t.Errorf("want one line of error, got %d:\n%s", len(lines), out)
			}
			if !strings.Contains(string(out), tt.want) {
				t.Errorf("got %q\nwant it to contain %q", out, tt.want)
			}
		})
	}
}

func TestFlagsOverrideConfigFile(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, []byte("state_dir: "+filepath.Join(dir, "from-file")+"\nhostname: filehost\n"), 0o600)
	sock := filepath.Join(dir, "s.sock")
	cmd := exec.Command(patchringd.Path(t), "run", "--config", cfg, "--socket", sock, "--hostname", "flaghost")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	p := &daemonProc{cmd: cmd, stderr: &testutil.SyncBuffer{}, done: done, sock: sock}
	p.waitReady(t)
	st, err := (&client.Client{Socket: sock}).Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Hostname != "flaghost" || st.StateDir != filepath.Join(dir, "from-file") {
		t.Errorf("hostname %q (want flag's), state dir %q (want file's)", st.Hostname, st.StateDir)
	}
}
