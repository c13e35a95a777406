package bundle

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchring/patchring/daemon/apicall"
	"github.com/patchring/patchring/platform/diskspace"
)

// writeBundle writes a .tar.gz with the given entries (name -> size of
// zero bytes; a trailing / makes a directory).
func writeBundle(t *testing.T, entries map[string]int) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "bundle.tar.gz")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zw := gzip.NewWriter(f)
	tw := tar.NewWriter(zw)
	for name, size := range entries {
		hdr := &tar.Header{Name: name, Mode: 0o644, Size: int64(size), Typeflag: tar.TypeReg}
		if strings.HasSuffix(name, "/") {
			hdr.Typeflag, hdr.Size = tar.TypeDir, 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(make([]byte, hdr.Size)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

// A bundle is refused before anything is unpacked when the state dir's
// file system has not room for it.
func TestBundleImportChecksFreeSpaceFirst(t *testing.T) {
	const payload = 3 << 20
	file := writeBundle(t, map[string]int{"metadata/": 0, "metadata/1.root.json": 100, "targets/acme.deb": payload})
	state := t.TempDir()
	free := func(n uint64) func(string) (diskspace.Usage, error) {
		return func(p string) (diskspace.Usage, error) {
			if p != state {
				t.Errorf("free space asked of %s, want the state dir %s", p, state)
			}
			return diskspace.Usage{Total: 1 << 40, Free: n}, nil
		}
	}
	need := uint64(2*(payload+100)) + bundleSpaceReserve

	err := checkBundleSpace(file, state, free(need-1))
	var ae *apicall.Error
	if !errors.As(err, &ae) || ae.Kind != apicall.KindNoSpace ||
		!strings.Contains(ae.Msg, "unpacks to 3145828 bytes; importing it needs") || !strings.Contains(ae.Msg, "free some space there") {
		t.Fatalf("with too little space: %v", err)
	}
	if ents, _ := os.ReadDir(state); len(ents) != 0 {
		t.Errorf("something was written to the state dir: %v", ents)
	}
	if err := checkBundleSpace(file, state, free(need)); err != nil {
		t.Errorf("with just enough space: %v", err)
	}
	if err := checkBundleSpace(file, state, diskspace.Of); err != nil {
		t.Errorf("on this machine's temp dir: %v", err)
	}

	// Unpacking still works, and bad entries are refused by both passes.
	out := t.TempDir()
	if n, err := extractBundle(file, out); err != nil || n != 2 {
		t.Fatalf("extract: %d files, %v", n, err)
	}
	if fi, err := os.Stat(filepath.Join(out, "targets", "acme.deb")); err != nil || fi.Size() != payload {
		t.Errorf("unpacked payload: %v", err)
	}
	bad := writeBundle(t, map[string]int{"targets/../../etc/passwd": 1})
	if err := checkBundleSpace(bad, state, free(1<<40)); err == nil || !strings.Contains(err.Error(), "a bundle holds only metadata/ and targets/") {
		t.Errorf("escaping entry: %v", err)
	}
}
