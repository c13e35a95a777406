package nodekey

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchring/patchring/platform/secretfile"
)

// The node key is refused when other users can read it, with the file,
// its mode and the fix in the message (membership's TestGossipKeysWithLooseModesAreRefused
// does the same for the gossip keyring).
func TestNodeKeyWithLooseModeIsRefused(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	id, err := LoadOrCreate(state)
	if err != nil {
		t.Fatal(err)
	}
	nodeKey := filepath.Join(state, File)
	if fi, err := os.Stat(nodeKey); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("new node key: %v %v", fi.Mode(), err)
	}
	if err := os.Chmod(nodeKey, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreate(state); !errors.Is(err, secretfile.ErrExposed) || !strings.Contains(err.Error(), "node key "+nodeKey+" has mode 0640") {
		t.Errorf("LoadOrCreate with a 0640 key: %v", err)
	}
	if err := os.Chmod(nodeKey, 0o600); err != nil {
		t.Fatal(err)
	}
	again, err := LoadOrCreate(state)
	if err != nil || again.ID != id.ID {
		t.Errorf("reload: %v, id %s want %s", err, again.ID, id.ID)
	}
}
