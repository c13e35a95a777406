//go:build !windows

package tufrepo

import (
	"fmt"
	"os"
)

// syncDir fsyncs a directory so a rename in it is durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}

// checkPrivate refuses a key file or keys directory that users other than
// the owner can access.
func checkPrivate(path string, fi os.FileInfo) error {
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%w: %s has mode %04o; run chmod %s %s", ErrKeyPermissions, path, fi.Mode().Perm(), map[bool]string{true: "700", false: "600"}[fi.IsDir()], path)
	}
	return nil
}
