//go:build linux

package sitetest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/patchring/patchring/internal/testutil"
	"github.com/patchring/patchring/policy/tufrepo"
)

// policyApt installs the vendor's updates everywhere at once.
const policyApt = `schema: 1
name: apt
expires: 2035-01-01T00:00:00Z
rings:
  - name: all
    default: true
    defer: 0s
auto_approve:
  - name: vendor updates
    sources: [apt]
`

// keeper is `patchring repo keeper` on the origin's repository with only
// the online (snapshot and timestamp) keys, a process the test started.
type keeper struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	log  string
}

// onlineKeys copies the snapshot and timestamp key files of the origin's
// repository into a directory of their own: what a keeper host holds.
func (s *testSite) onlineKeys(t testing.TB) string {
	t.Helper()
	dst := filepath.Join(s.dir, "online-keys")
	if err := os.MkdirAll(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, role := range tufrepo.OnlineRoles {
		m, err := filepath.Glob(filepath.Join(s.origin.keysDir, role+"-*"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range m {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dst, filepath.Base(f)), data, 0o600); err != nil {
				t.Fatal(err)
			}
			n++
		}
	}
	if n != 2 {
		t.Fatalf("copied %d online key files, want 2", n)
	}
	return dst
}

// startKeeper starts the keeper; it is stopped (SIGTERM by its PID, then
// SIGKILL) when the test ends, if the test did not stop it before.
func (s *testSite) startKeeper(t testing.TB, keys string, args ...string) *keeper {
	t.Helper()
	k := &keeper{done: make(chan struct{}), log: filepath.Join(s.dir, fmt.Sprintf("keeper-%d.log", time.Now().UnixNano()))}
	logf, err := os.Create(k.log)
	if err != nil {
		t.Fatal(err)
	}
	k.cmd = exec.Command(patchringCLI.Path(t), append([]string{"repo", "keeper", "--repo", s.origin.tufDir, "--keys", keys}, args...)...)
	k.cmd.Stdout, k.cmd.Stderr = logf, logf
	k.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := testutil.Start(k.cmd); err != nil {
		logf.Close()
		t.Fatal(err)
	}
	go func() {
		k.err = k.cmd.Wait()
		logf.Close()
		close(k.done)
	}()
	t.Cleanup(func() { k.stop(t) })
	return k
}

// stop ends the keeper by its PID and checks it exited cleanly.
func (k *keeper) stop(t testing.TB) {
	t.Helper()
	select {
	case <-k.done:
		return
	default:
	}
	_ = k.cmd.Process.Signal(syscall.SIGTERM)
	tm := time.NewTimer(15 * time.Second)
	defer tm.Stop()
	select {
	case <-k.done:
	case <-tm.C:
		_ = k.cmd.Process.Signal(syscall.SIGKILL)
		<-k.done
	}
	if k.err != nil {
		log, _ := os.ReadFile(k.log)
		t.Errorf("keeper exited: %v\n%s", k.err, log)
	}
}

// keeperWindow is how long the test leaves the fleet to the keeper (with
// a one-minute timestamp); PATCHRING_SITETEST_KEEPER_WINDOW changes it
// (the figure is 10m).
func keeperWindow(t testing.TB) time.Duration {
	if v := os.Getenv("PATCHRING_SITETEST_KEEPER_WINDOW"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("PATCHRING_SITETEST_KEEPER_WINDOW: %v", err)
		}
		return d
	}
	return 3 * time.Minute
}

// TestSiteKeeperKeepsAgentsInstalling: the fleet's repository signs
// timestamps for one minute and snapshots for three. `patchring repo
// keeper`, with only the online keys, keeps it fresh: for the test's
// window (3 min; the issue asks for 10, PATCHRING_SITETEST_KEEPER_WINDOW)
// no admin acts, every agent keeps a verified, unexpired policy, and the
// vendor's updates released during it are installed. With the keeper
// stopped the agents' metadata expires within a minute and an update
// released then is planned as expired and not installed; when the keeper
// returns, the agents verify again and install it.
func TestSiteKeeperKeepsAgentsInstalling(t *testing.T) {
	// Mostly waits on timers (expiries, deadlines): runs beside the
	// other waiting tests once the WAN-measuring ones are done.
	t.Parallel()
	const life = time.Minute
	s := newSite(t, siteConfig{Nodes: 2, TUFExpiries: map[string]time.Duration{
		tufrepo.RoleTimestamp: life, tufrepo.RoleSnapshot: 3 * time.Minute}})
	s.origin.publishPolicy(t, policyApt)
	online := s.onlineKeys(t)
	k := s.startKeeper(t, online)
	s.startNodes(t)
	s.waitConverged(t, 2*time.Minute, "apt")

	ctx := context.Background()
	timestampVersion := func(ctx context.Context) (min int64, report string) {
		min = -1
		for _, n := range s.nodes {
			p, err := n.c.Policy(ctx)
			if err != nil {
				return -1, fmt.Sprintf("%s: policy: %v", n.hostname, err)
			}
			if p.Expired {
				t.Fatalf("%s: the policy expired with the keeper running (metadata expires %s, last error %q)", n.hostname, p.MetadataExpires, p.LastError)
			}
			if min < 0 || p.TimestampVersion < min {
				min = p.TimestampVersion
			}
		}
		return min, ""
	}
	first, report := timestampVersion(ctx)
	if first < 0 {
		t.Fatal(report)
	}

	// The window: a release at its start and one at its end, no admin
	// action in between.
	windowEnd := time.Now().Add(keeperWindow(t))
	release := func(version string) {
		t.Helper()
		deb, _ := s.buildPayload(t, version, 0)
		s.origin.apt.MustAdd(t, deb)
	}
	release("1.1")
	s.waitInstalled(t, s.nodes, 2*time.Minute, "1.1")
	s.waitFor(t, time.Until(windowEnd)+time.Minute, "the window passes with every agent verifying", func(ctx context.Context) (bool, string) {
		v, report := timestampVersion(ctx)
		if v < 0 {
			return false, report
		}
		return !time.Now().Before(windowEnd), fmt.Sprintf("timestamp version %d on every agent", v)
	})
	release("1.2")
	s.waitInstalled(t, s.nodes, 2*time.Minute, "1.2")
	last, report := timestampVersion(ctx)
	if last < 0 {
		t.Fatal(report)
	}
	// Half a lifetime per timestamp: at least one signature per half
	// minute of the window.
	if want := first + int64(keeperWindow(t)/(life/2)) - 1; last < want {
		t.Errorf("agents verified timestamp version %d at the end of the window, %d at its start: want at least %d", last, first, want)
	}
	t.Logf("keeper window %s: agents verified timestamps %d to %d and installed two releases", keeperWindow(t), first, last)

	// The keeper stops: the metadata expires within its lifetime, and a
	// release is not installed.
	k.stop(t)
	stopped := time.Now()
	s.waitFor(t, life+30*time.Second, "every agent's policy expired", func(ctx context.Context) (bool, string) {
		for _, n := range s.nodes {
			p, err := n.c.Policy(ctx)
			if err != nil {
				return false, err.Error()
			}
			if !p.Expired {
				return false, fmt.Sprintf("%s: not expired (metadata expires %s)", n.hostname, p.MetadataExpires)
			}
		}
		return true, ""
	})
	t.Logf("agents stopped trusting the repository %.1fs after the keeper stopped", time.Since(stopped).Seconds())
	release("1.3")
	s.waitAction(t, s.nodes, time.Minute, "1.3", "expired")
	for _, n := range s.nodes {
		// Planned expired again at least once more: still nothing.
		u, err := n.c.Updates(ctx)
		if err != nil {
			t.Fatal(err)
		}
		planned := u.Planned
		s.waitFor(t, 30*time.Second, n.hostname+" plans again", func(ctx context.Context) (bool, string) {
			u, err := n.c.Updates(ctx)
			if err != nil {
				return false, err.Error()
			}
			return u.Planned.After(planned), u.Planned.String()
		})
		if v, _, err := n.sb.InstalledVersion(ctx, "acme-tool"); err != nil || v != "1.2" {
			t.Fatalf("%s: acme-tool is at %q (%v) with the repository expired, want 1.2", n.hostname, v, err)
		}
	}

	// The keeper returns: it re-signs at once, the agents verify again
	// and install the release.
	s.startKeeper(t, online)
	s.waitInstalled(t, s.nodes, 2*time.Minute, "1.3")
	for _, n := range s.nodes {
		p, err := n.c.Policy(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if p.Expired || p.LastError != "" {
			t.Errorf("%s after the keeper returned: expired %v, last error %q", n.hostname, p.Expired, p.LastError)
		}
	}
	// What the admin sees: no warning (an online role is re-signed by
	// half its lifetime; status warns after that). The keeper acts on the
	// second, so one look may fall in the moment before it does: poll.
	s.waitFor(t, 30*time.Second, "repo status without warnings", func(ctx context.Context) (bool, string) {
		out, err := exec.CommandContext(ctx, patchringCLI.Path(t), "repo", "status", "--repo", s.origin.tufDir).CombinedOutput()
		if err != nil {
			return false, fmt.Sprintf("repo status: %v\n%s", err, out)
		}
		return !strings.Contains(string(out), "EXPIRED") && !strings.Contains(string(out), "WARNING"), string(out)
	})
}
