//go:build windows

package tufrepo

import "os"

// syncDir is a no-op on Windows, where directories cannot be opened for
// fsync; NTFS journals the rename itself.
func syncDir(string) error { return nil }

// checkPrivate is a no-op on Windows: access is governed by ACLs, which the
// keys directory inherits from its parent.
func checkPrivate(string, os.FileInfo) error { return nil }
