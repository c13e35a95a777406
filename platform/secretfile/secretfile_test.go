//go:build unix

package secretfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestReadRefusesExposedFiles(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		mode os.FileMode
		want string // "" accepted
	}{
		{"owner only", 0o600, ""},
		{"owner read only", 0o400, ""},
		{"world readable", 0o644, "has mode 0644, so every user can read or change it; make it private with: chmod 600 "},
		{"group readable", 0o640, "has mode 0640, so its group can read or change it"},
		{"world writable", 0o602, "has mode 0602, so every user can read or change it"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-"))
			if err := os.WriteFile(p, []byte("secret\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, tt.mode); err != nil {
				t.Fatal(err)
			}
			data, err := Read(p, "gossip key file")
			switch {
			case tt.want == "" && (err != nil || string(data) != "secret\n"):
				t.Errorf("Read: %q, %v", data, err)
			case tt.want != "" && (!errors.Is(err, ErrExposed) || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "gossip key file "+p)):
				t.Errorf("err = %v, want ErrExposed naming the file and %q", err, tt.want)
			}
		})
	}
}

func TestReadRefusesAnotherUsersFile(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to hand a file to another uid")
	}
	p := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(p, []byte("k"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(p, "node key"); !errors.Is(err, ErrExposed) || !strings.Contains(err.Error(), "belongs to uid 65534") {
		t.Errorf("err = %v", err)
	}
}

func TestCreateIsPrivateDespiteTheUmask(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	p := filepath.Join(t.TempDir(), "key")
	if err := Create(p, []byte("k\n")); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v", fi.Mode(), err)
	}
	if err := Create(p, []byte("again")); err == nil {
		t.Error("Create replaced an existing file")
	}
	if data, _ := os.ReadFile(p); string(data) != "k\n" {
		t.Errorf("contents %q", data)
	}
}
