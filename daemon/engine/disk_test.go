package engine_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/patchring/patchring/platform/apt/apttest"
)

// TestDiskFullRefusedBeforeStarting puts the package root on a 4 MiB tmpfs
// while the engine needs 64 MiB free: the install is refused before any
// transaction starts, and nothing changes.
func TestDiskFullRefusedBeforeStarting(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test mounts a tmpfs and needs root (make test runs as root)")
	}
	small := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "patchring-test", small).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v\n%s", err, out)
	}
	// Registered after TempDir's cleanup, so it runs first.
	t.Cleanup(func() {
		if out, err := exec.Command("umount", small).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", small, err, out)
		}
	})
	w := newWorld(t, apttest.Package{})
	w.sandboxDir = small
	testMinFree = 64 << 20
	t.Cleanup(func() { testMinFree = 1 })
	n := w.newNode(t, "pilot-1", []string{"pilot"}, mustPolicy(t, ""))
	w.publish11(t)
	// The refusal is the cycle's error (and the engine's status).
	if err := n.eng.Cycle(t.Context()); err == nil || !strings.Contains(err.Error(), "not enough free disk") {
		t.Fatalf("cycle on a full disk: %v, want the refusal", err)
	}
	if v := n.version(); v != "1.0" {
		t.Fatalf("installed %q on a full disk", v)
	}
	if h := n.history(); len(h) != 0 {
		t.Fatalf("a transaction started on a full disk: %+v", h)
	}
	_, err := n.eng.InstallNow(t.Context(), "acme-tool", "1.1")
	if err == nil || !strings.Contains(err.Error(), "not enough free disk") {
		t.Fatalf("install --now on a full disk: %v", err)
	}
}
