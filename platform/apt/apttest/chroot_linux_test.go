package apttest_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/patchring/patchring/platform/apt/apttest"
)

// TestChrootRunsInsideTheRoot: commands see the Debian 12 root as "/",
// with /proc, a minimal /dev and the root's host path; files they write
// land in the root; no mount is left on the host. The root is extracted
// where NewChroot puts it by default (/dev/shm when roomy) and on the
// disk (os.TempDir()).
func TestChrootRunsInsideTheRoot(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: builds or extracts a Debian root (run without -short, as make test does)")
	}
	apttest.GuardHostDB(t)
	for _, where := range []struct{ name, dir string }{{"default", ""}, {"disk", os.TempDir()}} {
		t.Run(where.name, func(t *testing.T) {
			c := apttest.MustChroot(t, apttest.ChrootOptions{TempDir: where.dir})
			if where.dir != "" && !strings.HasPrefix(c.Root, where.dir+"/") {
				t.Fatalf("root %s is not under %s", c.Root, where.dir)
			}
			checkChroot(t, c)
		})
	}
}

func checkChroot(t *testing.T, c *apttest.Chroot) {
	t.Helper()
	ctx := context.Background()

	cases := []struct {
		name string
		args []string
		want string
	}{
		{"Debian 12", []string{"cat", "/etc/debian_version"}, "12."},
		{"marker and devices", []string{"sh", "-c", "test -e /etc/patchring-chroot && test -c /dev/null && echo x >/dev/null && echo ok"}, "ok"},
		{"proc is mounted", []string{"sh", "-c", "test -r /proc/self/status && echo ok"}, "ok"},
		{"host path of the root is the root", []string{"sh", "-c", "test " + c.AdminDir + "/status -ef /var/lib/dpkg/status && echo same"}, "same"},
		{"apt's root is the root", []string{"apt-config", "shell", "D", "Dir/d"}, "D='" + c.Root + "/'"},
		{"adduser is installed", []string{"dpkg-query", "-W", "-f", "${db:Status-Abbrev}", "adduser"}, "ii"},
		{"no apt sources", []string{"sh", "-c", "cat /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null; echo end"}, "end"},
		{"services are never started", []string{"sh", "-c", "/usr/sbin/policy-rc.d; echo $?"}, "101"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := c.Run(ctx, tc.args[0], tc.args[1:]...)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(strings.TrimSpace(string(out)), tc.want) {
				t.Errorf("%v printed %q, want it to start with %q", tc.args, out, tc.want)
			}
		})
	}

	if _, err := c.Run(ctx, "sh", "-c", "echo inside >/root/written"); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(c.Path("root/written")); err != nil || string(b) != "inside\n" {
		t.Errorf("file written inside: %q, %v", b, err)
	}
	if _, err := os.Stat("/root/written"); err == nil {
		t.Error("a file written inside the root appeared on the host")
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mi), c.Root) {
		t.Errorf("a mount below %s is visible on the host:\n%s", c.Root, mi)
	}
	// A failing command's error names it and carries its output.
	if _, err := c.Run(ctx, "sh", "-c", "echo broken >&2; exit 3"); err == nil || !strings.Contains(err.Error(), "broken") {
		t.Errorf("failing command: %v", err)
	}
}

// TestRootImageUnreachableMirror: when the mirror cannot be used the error
// says which mirror was tried, where it came from and what to set.
func TestRootImageUnreachableMirror(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String() + "/debian"
	ln.Close()
	notFound := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(notFound.Close)

	cases := []struct {
		name, mirror, want string
	}{
		{"connection refused", closed, "mirror unreachable"},
		{"no such suite", notFound.URL + "/debian", "404"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cache := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_, err := apttest.RootImage(ctx, apttest.ChrootOptions{Mirror: tc.mirror, CacheDir: cache})
			if err == nil {
				t.Fatal("RootImage succeeded with an unusable mirror")
			}
			for _, want := range []string{tc.mirror, "ChrootOptions.Mirror", tc.want, apttest.MirrorEnv} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
			left, _ := os.ReadDir(cache)
			for _, e := range left {
				if !strings.HasSuffix(e.Name(), ".lock") {
					t.Errorf("left in the cache directory: %s", e.Name())
				}
			}
		})
	}
}
