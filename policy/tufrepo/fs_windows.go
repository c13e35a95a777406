//go:build windows

package tufrepo

import "os"

// checkPrivate is a no-op on Windows: access is governed by ACLs, which the
// keys directory inherits from its parent.
func checkPrivate(string, os.FileInfo) error { return nil }
