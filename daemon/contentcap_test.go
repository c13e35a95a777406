package daemon

import (
	"path/filepath"
	"testing"

	"github.com/patchring/patchring/daemon/config"
	"github.com/patchring/patchring/internal/testutil"
	"github.com/patchring/patchring/platform/diskspace"
)

// The daemon's content store is capped: by default at a share of the file
// system holding the state dir, else at content.max_size.
func TestContentStoreIsCapped(t *testing.T) {
	dir := t.TempDir()
	u, err := diskspace.Of(dir)
	if err != nil {
		t.Fatal(err)
	}
	def := max(int64(u.Total)/10, min(int64(config.ContentMinDefault), int64(u.Total/2)))
	for _, tc := range []struct {
		setting string
		want    int64
	}{
		{"", def},
		{"2GiB", 2 << 30},
		{"unlimited", 0},
	} {
		t.Run("max_size="+tc.setting, func(t *testing.T) {
			cfg := config.Default()
			cfg.StateDir = filepath.Join(t.TempDir(), "state")
			cfg.Socket = filepath.Join(cfg.StateDir, "api.sock")
			cfg.Inventory.Interval = 0
			cfg.Apt.Enabled = true
			cfg.Apt.Root = filepath.Join(t.TempDir(), "root")
			cfg.Apt.AptConfig = filepath.Join(cfg.Apt.Root, "apt.conf")
			cfg.Content.MaxSize = tc.setting
			d, err := New(cfg, testutil.Logger(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { d.db.Close() })
			if d.content == nil {
				t.Fatal("no content store")
			}
			if _, _, got := d.content.Usage(); got != tc.want {
				t.Errorf("content store cap %d, want %d (file system of %d bytes)", got, tc.want, u.Total)
			}
		})
	}
}
