//go:build unix

package secretfile

import (
	"fmt"
	"os"
	"syscall"
)

func check(path, what string, fi os.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: %s %s is not a regular file", ErrExposed, what, path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		who := "every user"
		if perm&0o007 == 0 {
			who = "its group"
		}
		return fmt.Errorf("%w: %s %s has mode %04o, so %s can read or change it; make it private with: chmod 600 %s",
			ErrExposed, what, path, perm, who, path)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		if uid := int(st.Uid); uid != 0 && uid != os.Geteuid() {
			return fmt.Errorf("%w: %s %s belongs to uid %d, who could change it; hand it to the agent's user with: chown %d %s",
				ErrExposed, what, path, uid, os.Geteuid(), path)
		}
	}
	return nil
}
