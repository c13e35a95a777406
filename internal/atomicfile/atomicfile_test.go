package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFileReplacesAndLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state.json")
	for _, body := range []string{"old", "new"} {
		if err := WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(p)
	if err != nil || string(got) != "new" {
		t.Fatalf("content %q, %v", got, err)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("temporary files left: %v", ents)
	}
}

func TestWriteFileFailureKeepsOld(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	os.WriteFile(p, []byte("old"), 0o600)
	// A directory in the way of the rename's target makes it fail.
	if err := WriteFile(filepath.Join(dir, "missing", "f"), []byte("x"), 0o600); err == nil {
		t.Fatal("write into a missing directory succeeded")
	}
	if got, _ := os.ReadFile(p); string(got) != "old" {
		t.Fatalf("old file changed: %q", got)
	}
}

func TestRemoveStale(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "pins.json")
	keep := []string{"pins.json", ".tmp-pins.json.bak", ".tmp-other-1", "x.tmp-pins.json-1"}
	stale := []string{".tmp-pins.json-123", ".tmp-pins.json-"}
	for _, n := range append(append([]string{}, keep...), stale...) {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := RemoveStale(p); err != nil {
		t.Fatal(err)
	}
	for _, n := range keep {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			t.Errorf("%s removed: %v", n, err)
		}
	}
	for _, n := range stale {
		if _, err := os.Stat(filepath.Join(dir, n)); !os.IsNotExist(err) {
			t.Errorf("%s not removed: %v", n, err)
		}
	}
	if err := RemoveStale(filepath.Join(dir, "missing", "f")); err == nil {
		t.Error("RemoveStale in a missing directory: no error")
	}
}

func TestWriteFileNamesItsTemporaryForRemoveStale(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	// A crash between WriteFile's CreateTemp and its rename leaves a
	// temporary named this way.
	f, err := os.CreateTemp(dir, tempPrefix+"f-*")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := RemoveStale(p); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("left: %v", ents)
	}
}
