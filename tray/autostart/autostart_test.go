package autostart_test

import (
	"bufio"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/patchring/patchring/tray/autostart"
)

// TestAutostartEntry checks the XDG autostart entry with
// desktop-file-validate and for what autostart needs.
func TestAutostartEntry(t *testing.T) {
	t.Parallel()
	const path = autostart.FileName
	bin, err := exec.LookPath("desktop-file-validate")
	if err != nil {
		t.Fatalf("desktop-file-validate not found: install the Debian package desktop-file-utils")
	}
	if out, err := exec.Command(bin, path).CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("desktop-file-validate %s: %v\n%s", path, err, out)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	keys := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			keys[k] = v
		}
	}
	for k, want := range map[string]string{
		"Type":     "Application",
		"Exec":     "patchring tray",
		"Terminal": "false",
		// Autostart only: not a launcher in the application menu.
		"NoDisplay": "true",
	} {
		if keys[k] != want {
			t.Errorf("%s=%q, want %q", k, keys[k], want)
		}
	}
	if onDisk, _ := os.ReadFile(path); string(onDisk) != string(autostart.Entry) {
		t.Error("the embedded entry differs from the file")
	}
	if _, hidden := keys["Hidden"]; hidden {
		t.Errorf("Hidden= disables an autostart entry")
	}
}
