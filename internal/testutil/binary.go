package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// Binary is a Go command that tests run as a real process, built at most
// once per test process, on first use (a test run that does not need it
// does not pay for the build). Declare one per package and call Remove from
// TestMain after m.Run:
//
//	var patchringd = &testutil.Binary{Pkg: "github.com/patchring/patchring/cmd/patchringd"}
//
//	func TestMain(m *testing.M) { code := m.Run(); patchringd.Remove(); os.Exit(code) }
type Binary struct {
	// Pkg is what `go build` builds: an import path, or a directory
	// relative to the test's package.
	Pkg string
	// BuildFlags are passed to `go build` before the package (-ldflags ...).
	BuildFlags []string
	// Shared makes the binary's directory reachable by every user, so a
	// test can run it as another uid (see AsUser).
	Shared bool

	once sync.Once
	dir  string
	path string
	err  error
}

// Path builds the binary if it is not built yet and returns its path; a
// failed build fails t (and every later caller) with go build's output.
func (b *Binary) Path(t testing.TB) string {
	t.Helper()
	p, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Build is Path for TestMain and benchmarks' setup: it returns the error
// instead of failing a test.
func (b *Binary) Build() (string, error) {
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "patchring-bin-*")
		if err != nil {
			b.err = fmt.Errorf("build %s: %w", b.Pkg, err)
			return
		}
		b.dir = dir
		if b.Shared {
			if err := os.Chmod(dir, 0o755); err != nil {
				b.err = fmt.Errorf("build %s: %w", b.Pkg, err)
				return
			}
		}
		path := filepath.Join(dir, filepath.Base(b.Pkg))
		if b.Pkg == "." || b.Pkg == "" {
			wd, _ := os.Getwd()
			path = filepath.Join(dir, filepath.Base(wd))
		}
		args := append(append([]string{"build", "-o", path}, b.BuildFlags...), b.Pkg)
		if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
			b.err = fmt.Errorf("build %s: %w\n%s", b.Pkg, err, out)
			return
		}
		b.path = path
	})
	return b.path, b.err
}

// Remove deletes the built binary. Call it from TestMain after m.Run.
func (b *Binary) Remove() {
	if b.dir != "" {
		os.RemoveAll(b.dir)
	}
}
