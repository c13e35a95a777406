package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// keygen writes a private key file whatever the umask, never replaces one,
// and rotate-key refuses a key file others can read.
func TestFleetKeygen(t *testing.T) {
	old := syscall.Umask(0)
	t.Cleanup(func() { syscall.Umask(old) })
	p := filepath.Join(t.TempDir(), "gossip.key")
	out, err := runCLI(t, context.Background(), "fleet", "keygen", p)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v; want 0600", fi.Mode(), err)
	}
	b64, key, err := readKeyFile(p)
	if err != nil || len(key) != 32 {
		t.Fatalf("readKeyFile: %q %d bytes, %v", b64, len(key), err)
	}
	if !strings.Contains(out, "gossip key "+keyFingerprint(key)+" written to "+p+" (mode 0600)") {
		t.Errorf("output %q", out)
	}
	if _, err := runCLI(t, context.Background(), "fleet", "keygen", p); err == nil || !strings.Contains(err.Error(), "an existing key is never replaced") {
		t.Errorf("second keygen: %v", err)
	}
	if k2, _ := os.ReadFile(p); !strings.Contains(string(k2), b64) {
		t.Error("the key file changed")
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := readKeyFile(p); err == nil || !strings.Contains(err.Error(), "has mode 0644") || !strings.Contains(err.Error(), "chmod 600 "+p) {
		t.Errorf("readKeyFile(0644): %v", err)
	}
}
