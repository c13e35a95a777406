package content

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"sync"
	"testing"
)

func writeAccept(tb testing.TB, w *Writer, i int, data []byte) {
	tb.Helper()
	off, n := w.PieceRange(i)
	sum, err := w.WritePiece(context.Background(), i, bytes.NewReader(data[off:off+n]))
	if err != nil {
		tb.Fatalf("WritePiece(%d): %v", i, err)
	}
	if want := Sum(data[off : off+n]); sum != want {
		tb.Fatalf("WritePiece(%d) sum = %s, want %s", i, sum, want)
	}
	if err := w.Accept(i); err != nil {
		tb.Fatalf("Accept(%d): %v", i, err)
	}
}

func TestWriterAssemblesOutOfOrder(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	data := randBytes(t, 10*1024+17, 7)
	h := Sum(data)
	w, err := s.Writer(h, int64(len(data)), 1024)
	if err != nil {
		t.Fatal(err)
	}
	if w.NumPieces() != 11 {
		t.Fatalf("NumPieces = %d", w.NumPieces())
	}
	var wg sync.WaitGroup
	for _, i := range []int{10, 3, 0, 7, 1, 9, 2, 8, 4, 6, 5} {
		wg.Go(func() { writeAccept(t, w, i, data) })
	}
	wg.Wait()
	if s.Has(h) {
		t.Fatal("visible before Commit")
	}
	buf := make([]byte, 2048)
	if _, err := w.ReadAt(buf, 1024); err != nil || !bytes.Equal(buf, data[1024:3072]) {
		t.Fatalf("ReadAt accepted range: %v", err)
	}
	if err := w.Commit(context.Background()); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if !bytes.Equal(readAll(t, s, h), data) {
		t.Fatal("committed blob differs")
	}
	if names := stagingNames(t, s); len(names) != 0 {
		t.Fatalf("staging after Commit: %v", names)
	}
	if _, ok := s.Partial(h); ok {
		t.Fatal("writer still registered after Commit")
	}
	if used, reserved, _ := s.Usage(); used != int64(len(data)) || reserved != 0 {
		t.Fatalf("usage = %d/%d", used, reserved)
	}
}

func TestWriterRejectsBadAssembly(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	data := randBytes(t, 4096, 8)
	h := Sum(data)
	w, err := s.Writer(h, int64(len(data)), 1024)
	if err != nil {
		t.Fatal(err)
	}
	bad := flip(data, 2000)
	for i := range 4 {
		writeAcceptAny(t, w, i, bad)
	}
	err = w.Commit(context.Background())
	if !errors.Is(err, ErrVerify) {
		t.Fatalf("Commit of corrupt assembly: %v, want ErrVerify", err)
	}
	if s.Has(h) {
		t.Fatal("corrupt assembly became visible")
	}
	w.Reset(1)
	if w.Accepted(1) || w.AcceptedCount() != 3 {
		t.Fatal("Reset did not un-accept piece 1")
	}
	if err := w.Commit(context.Background()); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("Commit with missing piece: %v, want ErrIncomplete", err)
	}
	writeAccept(t, w, 1, data)
	if err := w.Commit(context.Background()); err != nil {
		t.Fatalf("Commit after repair: %v", err)
	}
	if !bytes.Equal(readAll(t, s, h), data) {
		t.Fatal("repaired blob differs")
	}
}

func writeAcceptAny(tb testing.TB, w *Writer, i int, data []byte) {
	tb.Helper()
	off, n := w.PieceRange(i)
	if _, err := w.WritePiece(context.Background(), i, bytes.NewReader(data[off:off+n])); err != nil {
		tb.Fatal(err)
	}
	if err := w.Accept(i); err != nil {
		tb.Fatal(err)
	}
}

func TestWriterPieceErrors(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	data := randBytes(t, 3000, 9)
	h := Sum(data)
	w, err := s.Writer(h, int64(len(data)), 1024)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	if _, err := s.Writer(h, int64(len(data)), 1024); !errors.Is(err, ErrBusy) {
		t.Fatalf("second Writer: %v, want ErrBusy", err)
	}
	// Truncated piece.
	if _, err := w.WritePiece(context.Background(), 0, bytes.NewReader(data[:100])); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short piece: %v, want ErrUnexpectedEOF", err)
	}
	if err := w.Accept(0); err == nil {
		t.Fatal("Accept of a failed write succeeded")
	}
	if _, err := w.WritePiece(context.Background(), 3, bytes.NewReader(data)); err == nil {
		t.Fatal("piece out of range accepted")
	}
	if _, err := w.ReadAt(make([]byte, 10), 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ReadAt of unaccepted piece: %v, want ErrNotFound", err)
	}
	// Last piece is short (952 bytes).
	writeAccept(t, w, 2, data)
	if _, err := w.WritePiece(context.Background(), 2, bytes.NewReader(data)); !errors.Is(err, ErrBusy) {
		t.Fatalf("rewrite of accepted piece: %v, want ErrBusy", err)
	}
	if got := w.Bitmap(); len(got) != 1 || got[0] != 0x20 {
		t.Fatalf("Bitmap = %08b, want 00100000", got)
	}
}

func TestWriterResumesAfterReopen(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{})
	data := randBytes(t, 8192, 10)
	h := Sum(data)
	w, err := s.Writer(h, int64(len(data)), 1024)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 2, 5} {
		writeAccept(t, w, i, data)
	}
	if err := w.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	writeAccept(t, w, 6, data) // accepted but never checkpointed: lost in the "crash"
	// Simulate a crash: drop the Writer without Close and reopen the store.
	s2 := openStore(t, dir, Options{})
	w2, err := s2.Writer(h, int64(len(data)), 1024)
	if err != nil {
		t.Fatal(err)
	}
	for i := range w2.NumPieces() {
		want := i == 0 || i == 2 || i == 5
		if w2.Accepted(i) != want {
			t.Fatalf("piece %d accepted=%v after resume, want %v", i, w2.Accepted(i), want)
		}
	}
	if sums := w2.PieceSums(); sums[2] != Sum(data[2048:3072]) {
		t.Fatal("piece sum not restored")
	}
	for _, i := range []int{1, 3, 4, 6, 7} {
		writeAccept(t, w2, i, data)
	}
	if err := w2.Commit(context.Background()); err != nil {
		t.Fatalf("Commit after resume: %v", err)
	}
	// A piece of another size only half held is not resumed.
	other := randBytes(t, 4096, 11)
	oh := Sum(other)
	w3, err := s2.Writer(oh, 4096, 1024)
	if err != nil {
		t.Fatal(err)
	}
	writeAccept(t, w3, 0, other)
	if err := w3.Close(); err != nil {
		t.Fatal(err)
	}
	w4, err := s2.Writer(oh, 4096, 2048)
	if err != nil {
		t.Fatal(err)
	}
	if w4.AcceptedCount() != 0 {
		t.Fatal("resumed a 2048-byte piece of which only 1024 bytes were held")
	}
	if err := w4.Abort(); err != nil {
		t.Fatal(err)
	}
	if names := stagingNames(t, s2); len(names) != 0 {
		t.Fatalf("staging after Abort: %v", names)
	}
	if _, reserved, _ := s2.Usage(); reserved != 0 {
		t.Fatalf("reserved after Abort = %d", reserved)
	}
}

// TestWriterResumesInAnotherPieceSize: a partial checkpointed in 1 KiB
// pieces (an agent release with another default piece size) is reopened in
// 2 KiB and in 512-byte pieces: the new pieces wholly inside accepted old
// ones are accepted with their hashes, the others are not, and the
// download completes and verifies.
func TestWriterResumesInAnotherPieceSize(t *testing.T) {
	dir := t.TempDir()
	data := randBytes(t, 8*1024+300, 12) // 9 pieces of 1 KiB, the last short
	h := Sum(data)
	held := []int{0, 1, 3, 6, 7, 8}
	for _, newSize := range []int64{2048, 512} {
		s := openStore(t, dir, Options{})
		w, err := s.Writer(h, int64(len(data)), 1024)
		if err != nil {
			t.Fatal(err)
		}
		for _, i := range held {
			writeAccept(t, w, i, data)
		}
		if err := w.Checkpoint(); err != nil {
			t.Fatal(err)
		}
		// The "upgrade": the store is opened again by a new agent.
		s2 := openStore(t, dir, Options{})
		w2, err := s2.Writer(h, int64(len(data)), newSize)
		if err != nil {
			t.Fatal(err)
		}
		var want []int
		switch newSize {
		case 2048: // [0,1] held, [2,3] half, [4,5] no, [6,7] held, [8] held (short)
			want = []int{0, 3, 4}
		case 512: // both halves of each held 1 KiB piece; piece 8's 300 bytes is one
			want = []int{0, 1, 2, 3, 6, 7, 12, 13, 14, 15, 16}
		}
		for j := range w2.NumPieces() {
			if got := w2.Accepted(j); got != slices.Contains(want, j) {
				t.Fatalf("%d-byte piece %d accepted = %v, want %v", newSize, j, got, !got)
			}
			if off, n := w2.PieceRange(j); w2.Accepted(j) && w2.PieceSums()[j] != Sum(data[off:off+n]) {
				t.Fatalf("%d-byte piece %d: sum not the piece's", newSize, j)
			}
		}
		// The adopted pieces are checkpointed in the new size.
		if err := w2.Checkpoint(); err != nil {
			t.Fatal(err)
		}
		s3 := openStore(t, dir, Options{})
		w3, err := s3.Writer(h, int64(len(data)), newSize)
		if err != nil {
			t.Fatal(err)
		}
		if w3.AcceptedCount() != len(want) {
			t.Fatalf("after a checkpoint in %d-byte pieces: %d accepted, want %d", newSize, w3.AcceptedCount(), len(want))
		}
		for j := range w3.NumPieces() {
			if !w3.Accepted(j) {
				writeAccept(t, w3, j, data)
			}
		}
		if err := w3.Commit(context.Background()); err != nil {
			t.Fatalf("Commit after resuming in %d-byte pieces: %v", newSize, err)
		}
		if !bytes.Equal(readAll(t, s3, h), data) {
			t.Fatal("committed blob differs")
		}
		if err := s3.Delete(h); err != nil {
			t.Fatal(err)
		}
	}
}

func TestWriterHashAhead(t *testing.T) {
	bg := context.Background()
	data := randBytes(t, 6*1024+100, 12) // 7 pieces, the last short
	h := Sum(data)
	tests := []struct {
		name string
		run  func(t *testing.T, w *Writer)
	}{
		{"prefix stops at the first missing piece", func(t *testing.T, w *Writer) {
			for _, i := range []int{0, 1, 3} {
				writeAccept(t, w, i, data)
			}
			if err := w.HashAhead(bg); err != nil {
				t.Fatal(err)
			}
			if w.phOff != 2*1024 {
				t.Fatalf("hashed %d bytes ahead, want the 2 leading pieces (2048)", w.phOff)
			}
			for _, i := range []int{2, 4, 5, 6} {
				writeAccept(t, w, i, data)
			}
			if err := w.HashAhead(bg); err != nil {
				t.Fatal(err)
			}
			if w.phOff != int64(len(data)) {
				t.Fatalf("hashed %d bytes ahead, want all %d", w.phOff, len(data))
			}
		}},
		{"a reset piece is hashed again", func(t *testing.T, w *Writer) {
			bad := flip(data, 100) // in piece 0
			writeAcceptAny(t, w, 0, bad)
			for i := 1; i < 7; i++ {
				writeAccept(t, w, i, data)
			}
			if err := w.HashAhead(bg); err != nil {
				t.Fatal(err)
			}
			if err := w.Commit(bg); !errors.Is(err, ErrVerify) {
				t.Fatalf("Commit with a bad piece hashed ahead: %v, want ErrVerify", err)
			}
			w.Reset(0)
			writeAccept(t, w, 0, data)
		}},
		{"reset while hashing ahead", func(t *testing.T, w *Writer) {
			bad := flip(data, 5000) // in piece 4
			for i := range 7 {
				if i == 4 {
					writeAcceptAny(t, w, i, bad)
				} else {
					writeAccept(t, w, i, data)
				}
			}
			var wg sync.WaitGroup
			wg.Go(func() {
				for range 50 {
					if err := w.HashAhead(bg); err != nil {
						t.Error(err)
						return
					}
				}
			})
			w.Reset(4)
			writeAccept(t, w, 4, data)
			wg.Wait()
		}},
		{"cancelled", func(t *testing.T, w *Writer) {
			for i := range 7 {
				writeAccept(t, w, i, data)
			}
			ctx, cancel := context.WithCancel(bg)
			cancel()
			if err := w.HashAhead(ctx); !errors.Is(err, context.Canceled) {
				t.Fatalf("HashAhead with a cancelled context: %v", err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t, t.TempDir(), Options{})
			w, err := s.Writer(h, int64(len(data)), 1024)
			if err != nil {
				t.Fatal(err)
			}
			tc.run(t, w)
			if err := w.Commit(bg); err != nil {
				t.Fatalf("Commit: %v", err)
			}
			if !bytes.Equal(readAll(t, s, h), data) {
				t.Fatal("committed blob differs")
			}
			if err := w.HashAhead(bg); !errors.Is(err, ErrClosed) {
				t.Fatalf("HashAhead after Commit: %v, want ErrClosed", err)
			}
		})
	}
}

func TestStoreChanged(t *testing.T) {
	bg := context.Background()
	s := openStore(t, t.TempDir(), Options{})
	data := randBytes(t, 2048, 13)
	h := Sum(data)
	changes := func(name string, do func()) {
		t.Helper()
		ch := s.Changed()
		do()
		select {
		case <-ch:
		default:
			t.Fatalf("%s did not signal a change", name)
		}
	}
	w, err := s.Writer(h, int64(len(data)), 1024)
	if err != nil {
		t.Fatal(err)
	}
	ch := s.Changed()
	if _, err := w.WritePiece(bg, 0, bytes.NewReader(data[:1024])); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
		t.Fatal("a written but unaccepted piece signalled a change")
	default:
	}
	changes("Accept", func() {
		if err := w.Accept(0); err != nil {
			t.Fatal(err)
		}
	})
	changes("Reset of an accepted piece", func() { w.Reset(0) })
	writeAccept(t, w, 0, data)
	writeAccept(t, w, 1, data)
	changes("Commit", func() {
		if err := w.Commit(bg); err != nil {
			t.Fatal(err)
		}
	})
	changes("Delete", func() {
		if err := s.Delete(h); err != nil {
			t.Fatal(err)
		}
	})
	changes("Put", func() {
		if err := s.Put(bg, h, int64(len(data)), bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
	})
	other := randBytes(t, 1024, 14)
	w2, err := s.Writer(Sum(other), 1024, 1024)
	if err != nil {
		t.Fatal(err)
	}
	changes("Abort", func() { _ = w2.Abort() })
}

// TestPartialsListsDownloadsWithAcceptedPieces: a download appears among
// the partials once it holds an accepted piece, and leaves it when it is
// committed or closed.
func TestPartialsListsDownloadsWithAcceptedPieces(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	data := bytes.Repeat([]byte("patchring"), 1000)
	h := Sum(data)
	other := Sum([]byte("other"))
	w, err := s.Writer(h, int64(len(data)), 1024)
	if err != nil {
		t.Fatal(err)
	}
	w2, err := s.Writer(other, 5, 1024)
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	if got := s.Partials(); len(got) != 0 {
		t.Fatalf("Partials before any piece = %v, want none", got)
	}
	writeAccept(t, w, 3, data)
	if got := s.Partials(); len(got) != 1 || got[0] != h {
		t.Fatalf("Partials after one piece = %v, want [%s]", got, h)
	}
	for i := range w.NumPieces() {
		if !w.Accepted(i) {
			writeAccept(t, w, i, data)
		}
	}
	if err := w.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := s.Partials(); len(got) != 0 {
		t.Fatalf("Partials after Commit = %v, want none (the blob is listed by List)", got)
	}
}
