//go:build unix

package testutil

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

const nobody = 65534

func TestAsUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to change uid")
	}
	cmd := exec.Command("id", "-u")
	AsUser(cmd, nobody, nobody)
	out, err := cmd.Output()
	if err != nil || strings.TrimSpace(string(out)) != "65534" {
		t.Fatalf("id -u as nobody: %q, %v", out, err)
	}
	// A binary built Shared runs as that user.
	cmd = exec.Command(hello.Path(t))
	AsUser(cmd, nobody, nobody)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("shared binary as nobody: %v\n%s", err, out)
	}
}

func TestSelfSharedRunsAsAnotherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to change uid")
	}
	p := SelfShared(t)
	if p2 := SelfShared(t); p2 != p {
		t.Fatalf("second copy at %q, want %q", p2, p)
	}
	cmd := exec.Command(p, "-test.run=^TestSelfSharedChild$")
	cmd.Env = append(os.Environ(), "TESTUTIL_CHILD=1")
	AsUser(cmd, nobody, nobody)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "child uid 65534") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

func TestSelfSharedChild(t *testing.T) {
	if os.Getenv("TESTUTIL_CHILD") == "" {
		t.Skip("run by TestSelfSharedRunsAsAnotherUser")
	}
	t.Logf("child uid %d", os.Getuid())
	println("child uid", os.Getuid())
}
