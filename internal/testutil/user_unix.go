//go:build unix

package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
)

// AsUser makes cmd run as uid and gid (the test must run as root). The
// binary must be reachable by that user: see Binary.Shared and SelfShared.
func AsUser(cmd *exec.Cmd, uid, gid int) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
}

var self struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// SelfShared returns a copy of the running test binary in a directory
// every user can reach (the go tool's build directory is private), so a
// test can run it again as another user (with AsUser and -test.run=^$,
// and an environment variable that its TestMain acts on). The copy is made
// once; RemoveSelfShared deletes it.
func SelfShared(t testing.TB) string {
	t.Helper()
	self.once.Do(func() {
		dir, err := os.MkdirTemp("", "patchring-test-bin-*")
		if err != nil {
			self.err = err
			return
		}
		self.dir = dir
		if err := os.Chmod(dir, 0o755); err != nil {
			self.err = err
			return
		}
		src, err := os.ReadFile(os.Args[0])
		if err != nil {
			self.err = err
			return
		}
		p := filepath.Join(dir, filepath.Base(os.Args[0]))
		if err := os.WriteFile(p, src, 0o755); err != nil {
			self.err = err
			return
		}
		self.path = p
	})
	if self.err != nil {
		t.Fatalf("share the test binary: %v", self.err)
	}
	return self.path
}

// RemoveSelfShared deletes SelfShared's copy. Call it from TestMain after
// m.Run.
func RemoveSelfShared() {
	if self.dir != "" {
		os.RemoveAll(self.dir)
	}
}
