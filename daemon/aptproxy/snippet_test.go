package aptproxy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSnippet(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, SnippetName)
	if err := WriteSnippet(p, "http://127.0.0.1:3142/"); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`Acquire::http::Proxy "http://127.0.0.1:3142/";`, `Acquire::PDiffs "false";`} {
		if !strings.Contains(string(data), want) {
			t.Fatalf("snippet lacks %s:\n%s", want, data)
		}
	}
	if err := RemoveSnippet(p); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatalf("snippet not removed: %v", err)
	}
	// The admin's own file of that name is neither replaced nor removed.
	if err := os.WriteFile(p, []byte("Acquire::http::Proxy \"http://cache:3142\";\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteSnippet(p, "http://127.0.0.1:3142/"); err == nil {
		t.Fatal("replaced the admin's file")
	}
	if err := RemoveSnippet(p); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("removed the admin's file: %v", err)
	}
}

func TestNewRefusesNonLoopback(t *testing.T) {
	if _, err := New(Config{Listen: "0.0.0.0:3142"}); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("got %v", err)
	}
}
