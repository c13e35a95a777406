//go:build !unix

package secretfile

import (
	"fmt"
	"os"
)

// check on Windows accepts any regular file: access there is governed by
// ACLs, which the installer sets on the agent's directories.
func check(path, what string, fi os.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: %s %s is not a regular file", ErrExposed, what, path)
	}
	return nil
}
