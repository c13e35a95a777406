package testutil

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	code := m.Run()
	hello.Remove()
	RemoveSelfShared()
	os.Exit(code)
}

// fatalTB records a Fatalf instead of ending the test.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
}

func TestWaitForReturnsWhenTheConditionHolds(t *testing.T) {
	n := 0
	WaitFor(t, time.Minute, "third call", func() error {
		if n++; n < 3 {
			return fmt.Errorf("call %d", n)
		}
		return nil
	})
	if n != 3 {
		t.Fatalf("cond called %d times, want 3", n)
	}
}

func TestWaitForFailsWithTheLastError(t *testing.T) {
	ft := &fatalTB{TB: t}
	calls := 0
	WaitFor(ft, 0, "never", func() error { calls++; return fmt.Errorf("still %d", calls) })
	if !strings.Contains(ft.msg, "never: not reached") || !strings.Contains(ft.msg, fmt.Sprintf("still %d", calls)) {
		t.Fatalf("failure message %q", ft.msg)
	}
}

func TestPollTimeout(t *testing.T) {
	want := errors.New("no")
	if err := Poll(3*PollInterval, func() error { return want }); !errors.Is(err, want) {
		t.Fatalf("Poll = %v, want %v", err, want)
	}
}

func TestSyncBufferConcurrentWrites(t *testing.T) {
	var b SyncBuffer
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 100; j++ {
				fmt.Fprint(&b, "x")
				_ = b.String()
			}
		}()
	}
	wg.Wait()
	if got := len(b.String()); got != 800 {
		t.Fatalf("%d bytes, want 800", got)
	}
}

var hello = &Binary{Pkg: "./testdata/hello", Shared: true}

func TestBinaryBuiltOnce(t *testing.T) {
	p := hello.Path(t)
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if p2 := hello.Path(t); p2 != p {
		t.Fatalf("second Path %q, want %q", p2, p)
	}
	if fi2, _ := os.Stat(p); !fi2.ModTime().Equal(fi.ModTime()) {
		t.Fatal("binary rebuilt")
	}
	out, err := exec.Command(p).Output()
	if err != nil || strings.TrimSpace(string(out)) != "hello from a built binary" {
		t.Fatalf("run: %q, %v", out, err)
	}
}

func TestBinaryBuildFailure(t *testing.T) {
	b := &Binary{Pkg: "./testdata/missing"}
	defer b.Remove()
	if _, err := b.Build(); err == nil || !strings.Contains(err.Error(), "testdata/missing") {
		t.Fatalf("Build = %v, want an error naming the package", err)
	}
}

// TestSocketDir: the directory is other uids' to enter, short enough for
// a socket, and gone when the test that asked for it ends.
func TestSocketDir(t *testing.T) {
	var dir string
	t.Run("inner", func(t *testing.T) {
		dir = SocketDir(t)
		fi, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if !fi.IsDir() || fi.Mode().Perm() != 0o755 {
			t.Errorf("%s: mode %v, want a directory with 0755", dir, fi.Mode())
		}
		if n := len(dir + "/api.sock"); n > 100 {
			t.Errorf("a socket in %s has a %d-byte path, too long for a unix socket", dir, n)
		}
	})
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s is still there after its test ended (%v)", dir, err)
	}
}
