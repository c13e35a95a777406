package content

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"syscall"
	"testing"
)

// tmpfs mounts a tmpfs of the given size (e.g. "1m") under a temp dir and
// unmounts it when the test ends.
func tmpfs(tb testing.TB, size string) string {
	tb.Helper()
	dir := filepath.Join(tb.TempDir(), "tmpfs")
	if err := syscall.Mkdir(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		tb.Fatalf("mount tmpfs on %s (tests run as root with CAP_SYS_ADMIN): %v", dir, err)
	}
	tb.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			tb.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

func TestDiskFull(t *testing.T) {
	t.Run("put", func(t *testing.T) {
		s := openStore(t, tmpfs(t, "1m"), Options{})
		data := randBytes(t, 2<<20, 20)
		h := Sum(data)
		err := s.Put(context.Background(), h, int64(len(data)), bytes.NewReader(data))
		if !errors.Is(err, ErrDiskFull) || !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("Put on full disk: %v, want ErrDiskFull wrapping ENOSPC", err)
		}
		if s.Has(h) {
			t.Fatal("blob visible after disk-full Put")
		}
		if names := stagingNames(t, s); len(names) != 0 {
			t.Fatalf("staging after disk-full Put: %v", names)
		}
		// The space was given back: a small payload still fits.
		put(t, s, randBytes(t, 100_000, 21))
	})
	t.Run("writer", func(t *testing.T) {
		s := openStore(t, tmpfs(t, "1m"), Options{})
		data := randBytes(t, 2<<20, 22)
		h := Sum(data)
		w, err := s.Writer(h, int64(len(data)), 512<<10)
		if err != nil {
			t.Fatal(err)
		}
		var werr error
		for i := range w.NumPieces() {
			off, n := w.PieceRange(i)
			if _, werr = w.WritePiece(context.Background(), i, bytes.NewReader(data[off:off+n])); werr != nil {
				break
			}
			if err := w.Accept(i); err != nil {
				t.Fatal(err)
			}
		}
		if !errors.Is(werr, ErrDiskFull) {
			t.Fatalf("WritePiece on full disk: %v, want ErrDiskFull", werr)
		}
		if err := w.Abort(); err != nil {
			t.Fatal(err)
		}
		if s.Has(h) {
			t.Fatal("blob visible after disk-full download")
		}
		if names := stagingNames(t, s); len(names) != 0 {
			t.Fatalf("staging after Abort: %v", names)
		}
	})
}
