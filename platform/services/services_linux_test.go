package services

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// hostLibrary is a small real shared object to preload into a process.
func hostLibrary(t *testing.T) []byte {
	t.Helper()
	for _, p := range []string{"/usr/lib/x86_64-linux-gnu/libdl.so.2", "/usr/lib/aarch64-linux-gnu/libdl.so.2", "/lib/x86_64-linux-gnu/libdl.so.2"} {
		if data, err := os.ReadFile(p); err == nil {
			return data
		}
	}
	t.Skip("no libdl.so.2 to preload on this host")
	return nil
}

// TestStaleFindsAProcessMappingAReplacedLibrary starts a real process that
// maps a library, replaces the library the way dpkg does (a new file
// renamed over it), and expects Stale to name the process and the file,
// and nothing once the process runs the new file.
func TestStaleFindsAProcessMappingAReplacedLibrary(t *testing.T) {
	dir := t.TempDir()
	lib := filepath.Join(dir, "libfoo.so.1")
	if err := os.WriteFile(lib, hostLibrary(t), 0o644); err != nil {
		t.Fatal(err)
	}
	start := func() *exec.Cmd {
		cmd := exec.Command("sleep", "300")
		cmd.Env = append(os.Environ(), "LD_PRELOAD="+lib)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
		})
		return cmd
	}
	old := start()
	m := New(Options{})
	replaced := func(f string) bool { return f == lib }
	waitMapped(t, old.Process.Pid, lib)
	if ps, err := m.Stale(t.Context(), replaced); err != nil || len(ps) != 0 {
		t.Fatalf("before the replacement: %+v, %v", ps, err)
	}
	tmp := lib + ".dpkg-new"
	if err := os.WriteFile(tmp, append(hostLibrary(t), "1.1"...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, lib); err != nil {
		t.Fatal(err)
	}
	ps, err := m.Stale(t.Context(), replaced)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 1 || ps[0].PID != old.Process.Pid || ps[0].Command != "sleep" || len(ps[0].Files) != 1 || ps[0].Files[0] != lib {
		t.Fatalf("Stale = %+v, want PID %d (sleep) mapping %s", ps, old.Process.Pid, lib)
	}
	if ps[0].Service != "" || ps[0].NoService == "" {
		t.Errorf("a process started by a test has no service, and says why: %+v", ps[0])
	}
	if ps, _ := m.Stale(t.Context(), func(string) bool { return false }); len(ps) != 0 {
		t.Errorf("files the caller does not count: %+v", ps)
	}
	old.Process.Kill()
	old.Wait()
	waitMapped(t, start().Process.Pid, lib)
	if ps, err := m.Stale(t.Context(), replaced); err != nil || len(ps) != 0 {
		t.Fatalf("after a restart: %+v, %v", ps, err)
	}
}

// waitMapped polls until pid maps file (the loader ran).
func waitMapped(t *testing.T, pid int, file string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		data, _ := os.ReadFile(filepath.Join("/proc", itoa(pid), "maps"))
		if containsBytes(data, file) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("PID %d never mapped %s", pid, file)
}

func itoa(n int) string { return strconv.Itoa(n) }

func containsBytes(data []byte, s string) bool { return strings.Contains(string(data), s) }
