package main

import (
	"errors"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchring/patchring/internal/testutil"
)

// TestMetricsOnLoopbackOnly: metrics are off by default, served on a
// loopback address when asked, and refused on any other address.
func TestMetricsOnLoopbackOnly(t *testing.T) {
	addr := freeGossipAddr(t)
	p := startDaemon(t, t.TempDir(), "--metrics-listen", addr)
	p.waitReady(t)
	var body string
	// Wait for the first inventory; the checks below say what is missing.
	_ = testutil.Poll(20*time.Second, func() error {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		if !strings.Contains(body, "patchring_inventory_packages ") || strings.Contains(body, "patchring_inventory_packages 0\n") {
			return errors.New("no inventory yet")
		}
		return nil
	})
	for _, want := range []string{"patchring_inventory_packages ", "patchring_reboot_required 0", "go_goroutines"} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q:\n%.2000s", want, body)
		}
	}
	p.stop(t)

	dir := t.TempDir()
	out, err := exec.Command(patchringd.Path(t), "run", "--state-dir", dir, "--socket", filepath.Join(dir, "s.sock"), "--metrics-listen", "0.0.0.0:9273").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "loopback only") {
		t.Fatalf("metrics on 0.0.0.0 were not refused: %v\n%s", err, out)
	}
}
