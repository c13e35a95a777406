package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchring/patchring/internal/testutil"
	"github.com/patchring/patchring/policy/tufrepo"
)

// TestFleetStatusCLI: the admin delegates the fleet-status role to a new
// console key, the console signs the fleet status into a directory, and
// the keeper (online keys only) publishes it into the repository.
func TestFleetStatusCLI(t *testing.T) {
	base := t.TempDir()
	dir, keys, online, consoleKeys := filepath.Join(base, "repo"), filepath.Join(base, "keys"), filepath.Join(base, "online"), filepath.Join(base, "console-keys")
	mustCLI(t, "repo", "init", "--repo", dir, "--keys", keys)
	out := mustCLI(t, "repo", "delegate-fleet-status", "--repo", dir, "--keys", keys, "--console-keys", consoleKeys)
	if !strings.Contains(out, "created the console's key") || !strings.Contains(out, "delegated fleet-status (path fleet-status.json)") {
		t.Fatalf("delegate-fleet-status output:\n%s", out)
	}
	// Again: the same key, no new one.
	if out := mustCLI(t, "repo", "delegate-fleet-status", "--repo", dir, "--keys", keys, "--console-keys", consoleKeys); strings.Contains(out, "created") {
		t.Errorf("a second delegation created another key:\n%s", out)
	}
	keyFiles, _ := filepath.Glob(filepath.Join(consoleKeys, "fleet-status-*.json"))
	if len(keyFiles) != 1 {
		t.Fatalf("console key files %v", keyFiles)
	}
	if err := os.Mkdir(online, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, role := range []string{"snapshot", "timestamp"} {
		m, _ := filepath.Glob(filepath.Join(keys, role+"-*.json"))
		data, err := os.ReadFile(m[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(online, filepath.Base(m[0])), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A TUF key is not the console's key.
	tsKey, _ := filepath.Glob(filepath.Join(keys, "timestamp-*.json"))
	if out, err := runCLI(t, context.Background(), "console", "serve", "--data", filepath.Join(base, "c0"), "--listen", "127.0.0.1:0",
		"--fleet-status-key", tsKey[0], "--fleet-status-dir", filepath.Join(base, "status")); err == nil || !strings.Contains(err.Error(), "not a fleet-status key") {
		t.Errorf("console serve with the timestamp key: %v\n%s", err, out)
	}

	statusDir := filepath.Join(base, "status")
	start := func(args ...string) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := runCLI(t, ctx, args...)
			done <- err
		}()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("patchring %s: %v", args[0], err)
			}
		})
	}
	start("console", "serve", "--data", filepath.Join(base, "console"), "--listen", "127.0.0.1:0",
		"--fleet-status-key", keyFiles[0], "--fleet-status-dir", statusDir, "--fleet-status-interval", "1s")
	testutil.WaitFor(t, time.Minute, "the console signs the fleet status", func() error {
		_, _, err := tufrepo.ReadFleetStatusDir(statusDir)
		return err
	})
	start("repo", "keeper", "--repo", dir, "--keys", online, "--fleet-status-dir", statusDir)
	testutil.WaitFor(t, time.Minute, "the keeper publishes the fleet status", func() error {
		r, err := tufrepo.Open(dir, "", "")
		if err != nil {
			return err
		}
		if r.FleetStatusVersion() == 0 {
			return fmt.Errorf("snapshot lists no fleet status")
		}
		return nil
	})
}
