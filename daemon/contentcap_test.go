package daemon

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/patchring/patchring/daemon/apicall"
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
			// patchring status shows the cap and where it comes from.
			var found bool
			for _, sub := range d.Status(context.Background(), apicall.Caller{UID: 0, Known: true, Admin: true}).Subsystems {
				if sub.Name != "content" {
					continue
				}
				found = true
				if sub.Details["max_bytes"] != strconv.FormatInt(tc.want, 10) || sub.Details["max_size"] != tc.setting ||
					!strings.Contains(sub.Summary, "content.max_size") {
					t.Errorf("status of the content store: %+v", sub)
				}
			}
			if !found {
				t.Error("patchring status has no content line")
			}
		})
	}
}

func TestContentStatusSummary(t *testing.T) {
	for _, tc := range []struct {
		used, reserved, limit int64
		setting, want         string
	}{
		{3 << 30, 512 << 20, 10 << 30, "", "3.0 GiB used, 512.0 MiB reserved of 10.0 GiB (content.max_size unset: default share of the file system)"},
		{100, 0, 2 << 30, "2GiB", "100 B used, 0 B reserved of 2.0 GiB (content.max_size: 2GiB)"},
		{0, 0, 0, "unlimited", "0 B used, 0 B reserved, no cap (content.max_size: unlimited)"},
	} {
		if got := contentStatus(tc.used, tc.reserved, tc.limit, tc.setting).Summary; got != tc.want {
			t.Errorf("contentStatus(%d, %d, %d, %q) = %q, want %q", tc.used, tc.reserved, tc.limit, tc.setting, got, tc.want)
		}
	}
}
