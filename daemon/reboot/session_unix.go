//go:build unix

package reboot

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// consoleOwner reports whether uid owns a virtual terminal or the console
// under dev: without logind, login(1) hands the terminal a user logs in on
// to that user.
func consoleOwner(dev string, uid int) (bool, string, error) {
	if uid == 0 {
		return false, "", nil // root owns every unused terminal
	}
	names, err := filepath.Glob(filepath.Join(dev, "tty[1-9]*"))
	if err != nil {
		return false, "", fmt.Errorf("list consoles: %w", err)
	}
	names = append(names, filepath.Join(dev, "console"))
	for _, p := range names {
		if !isVT(filepath.Base(p)) {
			continue
		}
		fi, err := os.Stat(p)
		if err != nil {
			continue
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) == uid {
			return true, "console " + filepath.Base(p), nil
		}
	}
	return false, "", nil
}
