package inventory_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/patchring/patchring/daemon/inventory"
	"github.com/patchring/patchring/daemon/store"
	"github.com/patchring/patchring/internal/testutil"
	"github.com/patchring/patchring/platform/apt/apttest"
	pinv "github.com/patchring/patchring/platform/inventory"
)

// TestHistoryRecordsInstallAndRemove installs and removes a real package
// in a sandboxed dpkg root between scans: the history shows exactly that.
func TestHistoryRecordsInstallAndRemove(t *testing.T) {
	apttest.RequireTools(t)
	apttest.GuardHostDB(t)
	sb := apttest.MustSandbox(t, apttest.SandboxOptions{})
	deb := apttest.MustBuildDeb(t, t.TempDir(), apttest.Package{
		Name: "acme-tool", Version: "1.0-1",
		Files: []apttest.File{{Path: "/usr/share/acme-tool/README", Body: []byte("acme\n")}},
	})

	db, err := store.Open(filepath.Join(t.TempDir(), "state.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	svc, err := inventory.New(inventory.Config{
		DB:      db,
		Log:     testutil.Logger(t),
		Options: pinv.Options{Root: "/", DpkgStatus: sb.Path("var/lib/dpkg/status"), Sections: []pinv.Section{pinv.SectionPackages}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	scan := func() {
		t.Helper()
		if err := svc.Scan(ctx); err != nil {
			t.Fatal(err)
		}
	}
	scan()
	if err := sb.DpkgInstall(ctx, deb); err != nil {
		t.Fatal(err)
	}
	scan()
	if out, err := sb.Run(ctx, "dpkg", append(sb.DpkgArgs(), "--purge", "acme-tool")...); err != nil {
		t.Fatalf("dpkg --purge: %v\n%s", err, out)
	}
	scan()
	scan() // nothing changed: no record

	hist, err := svc.History(0)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 2 {
		t.Fatalf("history has %d records, want 2: %+v", len(hist), hist)
	}
	// Newest first.
	want := []struct {
		kind pinv.ChangeKind
		from string
		to   string
	}{{pinv.PackageRemoved, "1.0-1", ""}, {pinv.PackageAdded, "", "1.0-1"}}
	for i, w := range want {
		if len(hist[i].Changes) != 1 {
			t.Fatalf("record %d has %d changes, want 1: %+v", i, len(hist[i].Changes), hist[i].Changes)
		}
		c := hist[i].Changes[0]
		if c.Kind != w.kind || c.Package != "acme-tool" || c.From != w.from || c.To != w.to {
			t.Errorf("record %d: got %+v, want %s acme-tool %q -> %q", i, c, w.kind, w.from, w.to)
		}
	}
}

// TestScanFollowsPackageDatabaseChanges checks that a change to the dpkg
// database alone (no explicit scan) leads to a new snapshot.
func TestScanFollowsPackageDatabaseChanges(t *testing.T) {
	apttest.RequireTools(t)
	apttest.GuardHostDB(t)
	sb := apttest.MustSandbox(t, apttest.SandboxOptions{})
	deb := apttest.MustBuildDeb(t, t.TempDir(), apttest.Package{Name: "watch-me", Version: "2.0"})
	db, err := store.Open(filepath.Join(t.TempDir(), "state.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	scanned := make(chan []pinv.Change, 16)
	svc, err := inventory.New(inventory.Config{
		DB:       db,
		Log:      testutil.Logger(t),
		Options:  pinv.Options{Root: "/", DpkgStatus: sb.Path("var/lib/dpkg/status"), Sections: []pinv.Section{pinv.SectionPackages}},
		Debounce: 50 * time.Millisecond,
		OnScan:   func(_ *pinv.Snapshot, c []pinv.Change) { scanned <- c },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	<-scanned // the scan at start
	if err := sb.DpkgInstall(ctx, deb); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(30 * time.Second)
	for {
		select {
		case c := <-scanned:
			for _, ch := range c {
				if ch.Kind == pinv.PackageAdded && ch.Package == "watch-me" {
					return
				}
			}
		case <-deadline:
			t.Fatal("no scan reported watch-me after dpkg installed it")
		}
	}
}
