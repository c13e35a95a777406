// Package atomicfile writes files so that a crash or power loss leaves the
// old or the new content, never a mix: through a temporary file in the same
// directory, fsynced, renamed into place, with the directory fsynced. The
// admin's repository tools, the agent's verified TUF state, the node key and
// the content store's pins all use it.
//
// Temporary files are named ".tmp-<base>-<random>" beside the target, so a
// directory listing can hide them and RemoveStale can find the ones a crash
// left behind.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// tempPrefix starts the name of every temporary file WriteFile creates.
const tempPrefix = ".tmp-"

// WriteFile writes data to path atomically and durably with mode perm.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, tempPrefix+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write %s: sync: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	ok = true
	return SyncDir(dir)
}

// RemoveStale removes the temporary files that an interrupted WriteFile of
// path left beside it. Call it only when no WriteFile of path can be running
// (at start, under the owner's lock).
func RemoveStale(path string) error {
	dir, prefix := filepath.Dir(path), tempPrefix+filepath.Base(path)+"-"
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("remove stale temporary files of %s: %w", path, err)
	}
	var errs []error
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), prefix) || e.IsDir() {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove stale temporary files of %s: %w", path, err)
	}
	return nil
}
