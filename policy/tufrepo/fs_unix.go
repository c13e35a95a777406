//go:build !windows

package tufrepo

import (
	"fmt"
	"os"
)

// checkPrivate refuses a key file or keys directory that users other than
// the owner can access.
func checkPrivate(path string, fi os.FileInfo) error {
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%w: %s has mode %04o; run chmod %s %s", ErrKeyPermissions, path, fi.Mode().Perm(), map[bool]string{true: "700", false: "600"}[fi.IsDir()], path)
	}
	return nil
}
