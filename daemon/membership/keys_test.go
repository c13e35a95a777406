package membership

import (
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchring/patchring/platform/secretfile"
)

// The gossip keyring is refused when other users can read it, with the
// file, its mode and the fix in the message.
func TestGossipKeysWithLooseModesAreRefused(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "gossip.key")
	line := base64.StdEncoding.EncodeToString(make([]byte, 32)) + "\n"
	if err := os.WriteFile(keyFile, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(keyFile, 0o644); err != nil { // whatever the umask
		t.Fatal(err)
	}
	_, err := readGossipKeys(keyFile)
	want := "gossip key file " + keyFile + " has mode 0644, so every user can read or change it; make it private with: chmod 600 " + keyFile
	if !errors.Is(err, secretfile.ErrExposed) || !strings.Contains(err.Error(), want) {
		t.Errorf("readGossipKeys(0644): %v\nwant it to say %q", err, want)
	}
	if err := os.Chmod(keyFile, 0o600); err != nil {
		t.Fatal(err)
	}
	if keys, err := readGossipKeys(keyFile); err != nil || len(keys) != 1 {
		t.Errorf("readGossipKeys(0600): %d keys, %v", len(keys), err)
	}
}
