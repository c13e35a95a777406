package apttest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSweepStaleChroots: systems whose owner process ended are removed;
// those of live processes, and directories without an owner file (being
// set up), stay.
func TestSweepStaleChroots(t *testing.T) {
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	self, ok := processIdentity(os.Getpid())
	if !ok || !strings.HasPrefix(self, strings.Split(self, " ")[0]+" ") {
		t.Fatalf("processIdentity(self) = %q, %v", self, ok)
	}
	if _, ok := processIdentity(dead.Process.Pid); ok {
		t.Skipf("pid %d was reused at once", dead.Process.Pid)
	}
	selfPID := strings.Split(self, " ")[0]
	cases := []struct {
		name  string
		owner string // "" writes no owner file
		stays bool
	}{
		{"live owner", self, true},
		{"ended owner", strconv.Itoa(dead.Process.Pid) + " 12345", false},
		{"pid reused by another process", selfPID + " 1", false},
		{"no owner file yet", "", true},
		{"garbage owner", "not a pid", true},
	}
	dir := t.TempDir()
	for _, tc := range cases {
		d := filepath.Join(dir, "patchring-chroot-"+strings.ReplaceAll(tc.name, " ", "-"))
		if err := os.MkdirAll(filepath.Join(d, "root", "etc"), 0o755); err != nil {
			t.Fatal(err)
		}
		if tc.owner != "" {
			if err := os.WriteFile(filepath.Join(d, chrootOwnerFile), []byte(tc.owner), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	other := filepath.Join(dir, "unrelated")
	if err := os.Mkdir(other, 0o755); err != nil {
		t.Fatal(err)
	}
	sweepStaleChroots(dir)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := os.Stat(filepath.Join(dir, "patchring-chroot-"+strings.ReplaceAll(tc.name, " ", "-")))
			if stays := err == nil; stays != tc.stays {
				t.Errorf("stays = %v, want %v", stays, tc.stays)
			}
		})
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("an unrelated directory was removed: %v", err)
	}
}

func TestUnescapeMountinfo(t *testing.T) {
	cases := map[string]string{
		`/tmp/a`:             "/tmp/a",
		`/tmp/with\040space`: "/tmp/with space",
		`/tmp/tab\011x`:      "/tmp/tab\tx",
		`/tmp/back\134slash`: `/tmp/back\slash`,
		`/tmp/not\08`:        `/tmp/not\08`,
		`/tmp/end\04`:        `/tmp/end\04`,
	}
	for in, want := range cases {
		if got := unescapeMountinfo(in); got != want {
			t.Errorf("unescapeMountinfo(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestMountsBelow: what Close checks before removing a system.
func TestMountsBelow(t *testing.T) {
	got, err := mountsBelow("/proc")
	if err != nil || len(got) == 0 || got[0] != "/proc" {
		t.Errorf("mountsBelow(/proc) = %v, %v; want /proc first", got, err)
	}
	if got, err := mountsBelow(t.TempDir()); err != nil || len(got) != 0 {
		t.Errorf("mountsBelow(a new temporary directory) = %v, %v", got, err)
	}
}

// TestRootImageWaitsForTheBuilder: while another process holds the
// image's lock, RootImage waits (ending with its context) and then uses
// the tarball that process built instead of building it again.
func TestRootImageWaitsForTheBuilder(t *testing.T) {
	opts := ChrootOptions{Mirror: "http://127.0.0.1:1/never-contacted", CacheDir: t.TempDir()}
	path := opts.withDefaults().cachePath(opts.Mirror)
	unlock, err := lockFile(context.Background(), path+".lock")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := RootImage(ctx, opts); err == nil || !strings.Contains(err.Error(), "another process is building the image") {
		t.Fatalf("RootImage while locked: %v", err)
	}

	type result struct {
		path string
		err  error
	}
	done := make(chan result, 1)
	ctx2, cancel2 := context.WithTimeout(context.Background(), time.Minute)
	defer cancel2()
	go func() {
		p, err := RootImage(ctx2, opts)
		done <- result{p, err}
	}()
	if err := os.WriteFile(path, []byte("built by the other process"), 0o644); err != nil {
		t.Fatal(err)
	}
	unlock()
	if r := <-done; r.err != nil || r.path != path {
		t.Fatalf("RootImage after the other build = %q, %v; want %s", r.path, r.err, path)
	}
}
