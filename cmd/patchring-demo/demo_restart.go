//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/patchring/patchring/daemon/engine"
	"github.com/patchring/patchring/daemon/store"
	"github.com/patchring/patchring/p2p/content"
	"github.com/patchring/patchring/platform/apt"
	"github.com/patchring/patchring/platform/apt/apttest"
	"github.com/patchring/patchring/platform/services"
	"github.com/patchring/patchring/policy"
)

// restartPolicy approves every apt update at once and restarts the
// services still running replaced code.
const restartPolicy = `schema: 1
name: demo-restarts
expires: 2099-01-01T00:00:00Z
rings:
  - name: all
    default: true
    defer: 0d
auto_approve:
  - name: everything from apt
    sources: [apt]
restart_services: auto
`

// restartScene shows, on a Debian 12 root (the one the engine's tests
// use, entered with unshare+chroot), a library update handled by
// restarting the service that mapped it, with no reboot, next to a
// kernel-like update that still needs one. The engine is the agent's own,
// with platform/services driving the root's init scripts.
func (d *demo) restartScene(ctx context.Context) error {
	d.step("fewer reboots: a Debian 12 root where the service food maps libfoo 1.0; the engine updates libfoo, then a kernel package")
	if d.rootImage == nil {
		d.note("skipped: mmdebstrap is not installed (Debian package mmdebstrap), so there is no Debian 12 root to run the scene in")
		return nil
	}
	var err error
	select {
	case err = <-d.rootImage:
	case <-ctx.Done():
		return ctx.Err()
	}
	if err != nil {
		d.note("skipped: the Debian 12 root image could not be built: %v", err)
		return nil
	}
	dir := filepath.Join(d.work, "restart-scene")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	c, err := apttest.NewChroot(ctx, apttest.ChrootOptions{CacheDir: imageCache})
	if err != nil {
		return fmt.Errorf("restart scene: %w", err)
	}
	defer c.Close()
	defer stopFood(c)
	repo, err := apttest.StartRepo(apttest.RepoConfig{Origin: "Demo", Suite: "stable"})
	if err != nil {
		return err
	}
	defer repo.Close()
	if err := c.AddRepo("vendor", repo); err != nil {
		return err
	}
	lib := func(v string) (string, error) {
		libs, _ := filepath.Glob(c.Path("usr/lib/*/libdl.so.2"))
		if len(libs) == 0 {
			return "", errors.New("restart scene: the Debian root has no libdl.so.2")
		}
		body, err := os.ReadFile(libs[0])
		if err != nil {
			return "", err
		}
		return apttest.BuildDeb(dir, apttest.Package{Name: "libfoo", Version: v, Files: []apttest.File{
			{Path: "/usr/lib/libfoo.so.1", Body: append(body, []byte("\nlibfoo "+v+"\n")...), Mode: 0o644}}})
	}
	kernel := func(v string) (string, error) {
		return apttest.BuildDeb(dir, apttest.Package{Name: "linux-image-demo", Version: v, Files: []apttest.File{
			{Path: "/boot/vmlinuz-demo", Body: []byte("kernel " + v + "\n")}}})
	}
	var debs []string
	for _, b := range []func() (string, error){
		func() (string, error) { return lib("1.0") },
		func() (string, error) { return kernel("1.0") },
		func() (string, error) { return apttest.BuildDeb(dir, foodPackage) },
	} {
		p, err := b()
		if err != nil {
			return err
		}
		debs = append(debs, p)
	}
	if _, err := repo.Add(debs...); err != nil {
		return err
	}
	if err := c.DpkgInstall(ctx, debs...); err != nil {
		return err
	}
	if _, err := c.Run(ctx, "/etc/init.d/food", "start"); err != nil {
		return err
	}
	before, err := foodPID(ctx, c)
	if err != nil {
		return err
	}
	d.note("food runs as PID %d, started by /etc/init.d/food, and maps %s", before, libfooMapping(before))

	// The root's apt and dpkg, by name, for this scene only (building the
	// packages above needed the host's dpkg-deb).
	path := os.Getenv("PATH")
	os.Setenv("PATH", c.BinDir+string(os.PathListSeparator)+path)
	defer os.Setenv("PATH", path)
	eng, err := d.restartEngine(ctx, c, dir)
	if err != nil {
		return err
	}

	p11, err := lib("1.1")
	if err != nil {
		return err
	}
	if _, err := repo.Add(p11); err != nil {
		return err
	}
	d.note("vendor: libfoo 1.1 (restart_services: auto)")
	tx, err := cycleOnce(ctx, eng)
	if err != nil {
		return err
	}
	after, err := foodPID(ctx, c)
	if err != nil {
		return err
	}
	d.note("transaction %d: %s; steps %s", tx.ID, tx.Outcome, txSteps(tx))
	for _, r := range tx.API().Restarted {
		d.note("  restarted %s", r)
	}
	d.note("food now runs as PID %d (was %d) and maps %s; reboot required: %v", after, before, libfooMapping(after), tx.Reboot)
	if after == before || tx.Reboot || tx.Outcome != engine.OutcomeInstalled {
		return fmt.Errorf("restart scene: libfoo 1.1 was not handled by a restart (PID %d -> %d, reboot %v, %s)", before, after, tx.Reboot, tx.Outcome)
	}

	k11, err := kernel("1.1")
	if err != nil {
		return err
	}
	if _, err := repo.Add(k11); err != nil {
		return err
	}
	d.note("vendor: linux-image-demo 1.1, a kernel: no restart of a service puts it in use")
	tx, err = cycleOnce(ctx, eng)
	if err != nil {
		return err
	}
	d.note("transaction %d: %s; reboot required: %v", tx.ID, tx.Outcome, tx.Reboot)
	for _, r := range tx.RebootReasons {
		d.note("  because %s", r)
	}
	if !tx.Reboot {
		return errors.New("restart scene: the kernel update did not require a reboot")
	}
	return nil
}

// imageCache is where the engine's Debian-root tests keep the mmdebstrap
// image (go test's os.TempDir()); the demo builds it there when it is not
// cached yet (a few minutes, from the Debian mirror apt uses).
const imageCache = "/tmp"

// prepareRootImage starts building the scene's Debian 12 root image (or
// finds it cached: the engine's Debian-root tests share it) while the
// other scenes run; restartScene waits for it. Nil without mmdebstrap.
func (d *demo) prepareRootImage(ctx context.Context) {
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		return
	}
	done := make(chan error, 1)
	d.rootImage = done
	go func() {
		_, err := apttest.RootImage(ctx, apttest.ChrootOptions{CacheDir: imageCache})
		done <- err
	}()
}

func (d *demo) restartEngine(ctx context.Context, c *apttest.Chroot, dir string) (*engine.Engine, error) {
	b, err := apt.New(ctx, apt.Options{AptConfig: c.AptConfig})
	if err != nil {
		return nil, err
	}
	db, err := store.Open(filepath.Join(dir, "state.db"), store.Options{})
	if err != nil {
		return nil, err
	}
	d.cleanups = append(d.cleanups, func() { db.Close() })
	cs, err := content.Open(filepath.Join(dir, "content"), content.Options{})
	if err != nil {
		return nil, err
	}
	pol, err := policy.Parse([]byte(restartPolicy), "demo-restarts.yaml")
	if err != nil {
		return nil, err
	}
	return engine.New(engine.Config{
		DB:          db,
		Log:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		Packages:    engine.AptPackages(b),
		Content:     engine.StoreContent(cs, nil),
		Policy:      func() (*policy.Policy, string) { return pol, "demo" },
		Facts:       func() policy.NodeFacts { return policy.NodeFacts{NodeID: "debian-root", Hostname: "debian-root"} },
		LockTimeout: 30 * time.Second,
		MinFree:     1,
		Services:    services.New(services.Options{Root: c.Root, Command: c.Command, Timeout: time.Minute}),
	}), nil
}

// cycleOnce runs one engine cycle and returns the newest transaction.
func cycleOnce(ctx context.Context, eng *engine.Engine) (*engine.Tx, error) {
	if err := eng.Cycle(ctx); err != nil {
		return nil, fmt.Errorf("restart scene: engine cycle: %w", err)
	}
	h, err := eng.History(1)
	if err != nil || len(h) == 0 {
		return nil, fmt.Errorf("restart scene: no transaction (%v)", err)
	}
	return h[0], nil
}

func txSteps(tx *engine.Tx) string {
	var s []string
	for _, st := range tx.Steps {
		s = append(s, st.Name)
	}
	return strings.Join(s, " -> ")
}

// foodPackage is a daemon (sleep with libfoo preloaded) and its SysV init
// script, which starts it with start-stop-daemon and a PID file.
var foodPackage = apttest.Package{Name: "food", Version: "1.0", Depends: []string{"libfoo"}, Files: []apttest.File{
	{Path: "/usr/sbin/food", Mode: 0o755, Body: []byte("#!/bin/sh\nexec env LD_PRELOAD=/usr/lib/libfoo.so.1 sleep infinity\n")},
	{Path: "/etc/init.d/food", Mode: 0o755, Body: []byte(`#!/bin/sh
PIDFILE=/run/food.pid
case "$1" in
start) start-stop-daemon --start --quiet --background --make-pidfile --pidfile $PIDFILE --exec /usr/sbin/food ;;
stop) start-stop-daemon --stop --quiet --retry 10 --oknodo --remove-pidfile --pidfile $PIDFILE ;;
restart) "$0" stop && "$0" start ;;
*) echo "usage: $0 start|stop|restart" >&2; exit 3 ;;
esac
`)},
}}

// foodPID waits until food's PID file names a process mapping libfoo.
func foodPID(ctx context.Context, c *apttest.Chroot) (int, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		data, err := os.ReadFile(c.Path("run/food.pid"))
		if err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && libfooMapping(pid) != "" {
				return pid, nil
			}
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("restart scene: food is not running with libfoo mapped (%q)", data)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// libfooMapping says which libfoo pid maps: "libfoo 1.x" read from the
// file, "(deleted)" when it maps a replaced one, "" when none.
func libfooMapping(pid int) string {
	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return ""
	}
	for line := range strings.SplitSeq(string(maps), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || !strings.HasSuffix(f[5], "/usr/lib/libfoo.so.1") {
			continue
		}
		if len(f) > 6 && f[6] == "(deleted)" {
			return "a deleted libfoo.so.1 (replaced code)"
		}
		body, err := os.ReadFile(f[5])
		if err != nil {
			return "/usr/lib/libfoo.so.1"
		}
		return "/usr/lib/libfoo.so.1 (" + strings.TrimSpace(string(body[strings.LastIndexByte(strings.TrimRight(string(body), "\n"), '\n')+1:])) + ")"
	}
	return ""
}

// stopFood stops the scene's daemon through its script.
func stopFood(c *apttest.Chroot) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c.Run(ctx, "/etc/init.d/food", "stop")
}
