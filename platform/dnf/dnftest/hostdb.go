package dnftest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// HostPaths are the host's rpm and dnf state: Debian's rpm database
// (~/.rpmdb of root), the RHEL/Fedora one, and dnf's history, cache and
// logs.
var HostPaths = []string{"/root/.rpmdb", "/var/lib/rpm", "/var/lib/dnf", "/var/cache/dnf", "/var/log/dnf.log", "/var/log/dnf.rpm.log", "/var/log/dnf.librepo.log", "/var/log/hawkey.log"}

// HostState is a fingerprint of files and directories: every file's name,
// size and content hash. SQLite's shared-memory index (*-shm) and rpm's
// lock file are left out: readers touch them.
type HostState struct {
	paths []string
	parts map[string]string
}

// SnapshotHost fingerprints HostPaths.
func SnapshotHost() (*HostState, error) { return Snapshot(HostPaths...) }

// Snapshot fingerprints paths (missing ones count as missing).
func Snapshot(paths ...string) (*HostState, error) {
	h := &HostState{paths: paths, parts: map[string]string{}}
	for _, p := range paths {
		err := filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() || strings.HasSuffix(path, "-shm") || filepath.Base(path) == ".rpm.lock" {
				return nil
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			h.parts[path] = hex.EncodeToString(sum[:])
			return nil
		})
		if errors.Is(err, fs.ErrNotExist) {
			h.parts[p] = "missing"
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("snapshot %s: %w", p, err)
		}
	}
	return h, nil
}

// Verify fingerprints the paths again and names what changed.
func (h *HostState) Verify() error {
	now, err := Snapshot(h.paths...)
	if err != nil {
		return err
	}
	var changed []string
	for k, v := range h.parts {
		if now.parts[k] != v {
			changed = append(changed, k)
		}
	}
	for k := range now.parts {
		if _, ok := h.parts[k]; !ok {
			changed = append(changed, k)
		}
	}
	if len(changed) > 0 {
		slices.Sort(changed)
		return fmt.Errorf("host rpm/dnf state changed: %v", changed)
	}
	return nil
}

// GuardHost snapshots the host's rpm and dnf state and fails t at cleanup
// if it changed during the test.
func GuardHost(t TB) {
	t.Helper()
	h, err := SnapshotHost()
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() {
		if err := h.Verify(); err != nil {
			t.Fatalf("host package database touched: %v", err)
		}
	})
}
