//go:build linux

package pgtest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/patchring/patchring/internal/testutil"
)

// Cluster is a running PostgreSQL server.
type Cluster struct {
	Dir    string // data directory; the socket lives in Dir too
	PID    int    // the postmaster's PID
	bin    string
	uid    int
	gid    int
	mu     sync.Mutex
	nextDB int
}

// binDir finds Debian's PostgreSQL binaries (/usr/lib/postgresql/N/bin).
func binDir() (string, error) {
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	if len(matches) == 0 {
		return "", fmt.Errorf("no /usr/lib/postgresql/*/bin/pg_ctl: install Debian's postgresql package (make deps)")
	}
	return filepath.Dir(matches[len(matches)-1]), nil
}

// Start starts a cluster, or skips the test when PostgreSQL is not
// installed or the test does not run as root (it needs to switch to the
// postgres user, as postgres refuses to run as root).
func Start(t testing.TB) *Cluster {
	t.Helper()
	bin, err := binDir()
	if err != nil {
		t.Skip(err)
	}
	if os.Geteuid() != 0 {
		t.Skip("pgtest runs PostgreSQL as the postgres user and must start as root")
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Skipf("no postgres user: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	dir, err := os.MkdirTemp("", "patchring-pg-*")
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{Dir: dir, bin: bin, uid: uid, gid: gid}
	t.Cleanup(func() { c.stop(t); os.RemoveAll(dir) })
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	c.run(t, "initdb", "-D", data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C")
	conf := fmt.Sprintf("listen_addresses = ''\nunix_socket_directories = '%s'\nfsync = off\nfull_page_writes = off\nsynchronous_commit = off\nmax_connections = 50\nshared_buffers = 64MB\n", dir)
	f, err := os.OpenFile(filepath.Join(data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(conf)
	f.Close()
	c.run(t, "pg_ctl", "-D", data, "-l", filepath.Join(dir, "server.log"), "-w", "-t", "120", "start")
	pidFile, err := os.ReadFile(filepath.Join(data, "postmaster.pid"))
	if err != nil {
		t.Fatalf("postgres started without a postmaster.pid: %v", err)
	}
	c.PID, err = strconv.Atoi(strings.TrimSpace(strings.SplitN(string(pidFile), "\n", 2)[0]))
	if err != nil {
		t.Fatalf("postmaster.pid: %v", err)
	}
	return c
}

func (c *Cluster) cmd(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(c.bin, name), args...)
	cmd.Dir = c.Dir
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C", "PGHOST=" + c.Dir}
	testutil.AsUser(cmd, c.uid, c.gid)
	return cmd
}

func (c *Cluster) run(t testing.TB, name string, args ...string) {
	t.Helper()
	var out bytes.Buffer
	cmd := c.cmd(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.Dir, "server.log"))
		t.Fatalf("%s %v: %v\n%s\nserver log:\n%s", name, args, err, out.String(), log)
	}
}

// stop stops the server with pg_ctl, and by its PID if that fails.
func (c *Cluster) stop(t testing.TB) {
	if c.PID == 0 {
		return
	}
	out, err := c.cmd("pg_ctl", "-D", filepath.Join(c.Dir, "data"), "-m", "immediate", "-w", "-t", "60", "stop").CombinedOutput()
	if err != nil {
		t.Logf("pg_ctl stop: %v\n%s; killing postmaster %d", err, out, c.PID)
		syscall.Kill(c.PID, syscall.SIGKILL)
	}
	// The postmaster is not our child: wait for it to be gone by PID.
	_ = testutil.Poll(30*time.Second, func() error {
		if syscall.Kill(c.PID, 0) == nil {
			return fmt.Errorf("postmaster %d still running", c.PID)
		}
		return nil
	})
}

// NewDatabase creates an empty database and returns its connection string.
func (c *Cluster) NewDatabase(t testing.TB) string {
	t.Helper()
	c.mu.Lock()
	c.nextDB++
	name := fmt.Sprintf("db%d", c.nextDB)
	c.mu.Unlock()
	c.run(t, "createdb", "-h", c.Dir, "-U", "postgres", name)
	return fmt.Sprintf("host=%s user=postgres dbname=%s sslmode=disable", c.Dir, name)
}
