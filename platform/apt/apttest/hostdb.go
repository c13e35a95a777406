package apttest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// HostDBDir is the host's dpkg database directory.
const HostDBDir = "/var/lib/dpkg"

// HostDB is a fingerprint of a dpkg database: the status and available
// files, and the names, sizes and modification times of the files in info/
// and updates/. Any install, removal or interrupted dpkg run changes it.
type HostDB struct {
	Dir   string
	parts map[string]string
}

// SnapshotHostDB fingerprints the host's dpkg database (HostDBDir).
func SnapshotHostDB() (*HostDB, error) { return SnapshotDB(HostDBDir) }

// SnapshotDB fingerprints the dpkg database in dir.
func SnapshotDB(dir string) (*HostDB, error) {
	parts := map[string]string{}
	for _, f := range []string{"status", "available"} {
		h, err := hashFile(filepath.Join(dir, f))
		if err != nil {
			return nil, fmt.Errorf("snapshot dpkg db %s: %w", dir, err)
		}
		parts[f] = h
	}
	for _, d := range []string{"info", "updates"} {
		h, err := hashDir(filepath.Join(dir, d))
		if err != nil {
			return nil, fmt.Errorf("snapshot dpkg db %s: %w", dir, err)
		}
		parts[d+"/"] = h
	}
	return &HostDB{Dir: dir, parts: parts}, nil
}

// Verify fingerprints the database again and returns an error naming what
// changed since the snapshot.
func (h *HostDB) Verify() error {
	now, err := SnapshotDB(h.Dir)
	if err != nil {
		return err
	}
	var changed []string
	for k, v := range h.parts {
		if now.parts[k] != v {
			changed = append(changed, filepath.Join(h.Dir, k))
		}
	}
	if len(changed) > 0 {
		slices.Sort(changed)
		return fmt.Errorf("dpkg database %s was modified: %v", h.Dir, changed)
	}
	return nil
}

// GuardHostDB snapshots the host's dpkg database and fails t at cleanup if
// it changed during the test.
func GuardHostDB(t TB) {
	t.Helper()
	h, err := SnapshotHostDB()
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() {
		if err := h.Verify(); err != nil {
			t.Fatalf("host package database touched: %v", err)
		}
	})
}

func hashFile(p string) (string, error) {
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "absent", nil
	}
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func hashDir(p string) (string, error) {
	entries, err := os.ReadDir(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "absent", nil
	}
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, e := range entries {
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00%d\x00%d\n", e.Name(), fi.Size(), fi.ModTime().UnixNano())
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
