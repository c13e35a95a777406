package daemon

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchring/patchring/daemon/aptproxy"
	"github.com/patchring/patchring/daemon/config"
	"github.com/patchring/patchring/internal/testutil"
	"github.com/patchring/patchring/platform/apt/apttest"
)

// With apt.proxy.enabled the agent serves the proxy, writes the apt.conf.d
// snippet into the apt root while it runs and removes it when it stops,
// hands the proxy to the engine's apt, and exports the apt metrics.
func TestAptProxyWiring(t *testing.T) {
	sb := apttest.MustSandbox(t, apttest.SandboxOptions{ProxyAllowed: true})
	cfg := config.Default()
	cfg.StateDir = filepath.Join(t.TempDir(), "state")
	cfg.Socket = filepath.Join(cfg.StateDir, "api.sock")
	cfg.Inventory.Interval = 0
	cfg.Apt.Enabled = true
	cfg.Apt.Root = sb.Root
	cfg.Apt.AptConfig = sb.AptConfig
	cfg.Apt.CheckInterval = time.Hour
	cfg.Apt.Proxy = config.AptProxy{Enabled: true, Listen: "127.0.0.1:0"}
	d, err := New(cfg, testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if d.aptPx == nil {
		t.Fatal("no apt proxy")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("daemon: %v", err)
			}
		}
	}
	t.Cleanup(stop)
	snippet := filepath.Join(sb.Root, "etc/apt/apt.conf.d", aptproxy.SnippetName)
	testutil.WaitFor(t, 30*time.Second, "the apt.conf.d snippet", func() error {
		data, err := os.ReadFile(snippet)
		if err != nil {
			return err
		}
		if !strings.Contains(string(data), d.aptPx.URL()) {
			return errors.New("snippet does not name the proxy")
		}
		return nil
	})
	// apt itself reads the snippet from the root's apt.conf.d.
	out, err := sb.Run(context.Background(), "apt-config", "dump", "Acquire::http::Proxy")
	if err != nil || !strings.Contains(string(out), d.aptPx.URL()) {
		t.Fatalf("apt-config does not see the proxy (%v):\n%s", err, out)
	}
	mfs, err := d.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		if mf.GetName() == "patchring_apt_bytes_total" && len(mf.GetMetric()) == 9 {
			found = true
		}
	}
	if !found {
		t.Fatal("no patchring_apt_bytes_total with 3 kinds x 3 sources")
	}
	stop()
	if _, err := os.Stat(snippet); !os.IsNotExist(err) {
		t.Fatalf("snippet left after the agent stopped: %v", err)
	}
}
