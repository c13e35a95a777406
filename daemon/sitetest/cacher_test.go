//go:build linux

package sitetest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/patchring/patchring/internal/benchtarget"
	"github.com/patchring/patchring/internal/testutil"
)

// cacherPort is apt-cacher-ng's port in the comparison (3142, its usual
// one, is the agents' proxy on loopback).
const cacherPort = "3143"

// cacher is an apt-cacher-ng process this test started inside a node's
// namespace, with its own configuration, cache and log directories.
type cacher struct {
	cmd  *exec.Cmd
	done chan struct{}
	url  string // as apt's Acquire::http::Proxy
	dir  string
}

// startCacher starts Debian's apt-cacher-ng in namespace ns on ip, as the
// usual single-cache setup runs it on one machine of a site: a plain
// caching proxy for every http source. It is ended (SIGTERM, then SIGKILL
// by its PID) in t.Cleanup, or earlier with stop.
func startCacher(t testing.TB, ns, ip, dir string) *cacher {
	t.Helper()
	bin, err := exec.LookPath("apt-cacher-ng")
	if err != nil {
		t.Fatalf("apt-cacher-ng not found: install the Debian package apt-cacher-ng (make deps)")
	}
	c := &cacher{dir: dir, url: "http://" + net.JoinHostPort(ip, cacherPort) + "/", done: make(chan struct{})}
	conf := filepath.Join(dir, "conf")
	for _, d := range []string{conf, filepath.Join(dir, "cache"), filepath.Join(dir, "log"), filepath.Join(dir, "run")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// No Remap lines: every URL is cached under its own host and path,
	// as for a third-party repository. ExThreshold 4 is Debian's default.
	cfg := fmt.Sprintf(`CacheDir: %s
LogDir: %s
SupportDir: /usr/lib/apt-cacher-ng
Port: %s
BindAddress: %s
PidFile: %s
SocketPath: %s
ForeGround: 1
ExThreshold: 4
ReportPage: acng-report.html
%s`, filepath.Join(dir, "cache"), filepath.Join(dir, "log"), cacherPort, ip,
		filepath.Join(dir, "run", "pid"), filepath.Join(dir, "run", "socket"), os.Getenv("PATCHRING_BENCH_ACNG_EXTRA"))
	if err := os.WriteFile(filepath.Join(conf, "acng.conf"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "stdout.log"))
	if err != nil {
		t.Fatal(err)
	}
	// apt-cacher-ng looks up an SRV record for every host, numeric ones
	// too, with its own resolver: the host's nameserver is not reachable
	// from the test's namespaces, and a lookup that times out fails the
	// request. In a private mount namespace it gets a resolv.conf naming
	// the namespace's loopback, where nothing listens: the lookup fails at
	// once and it connects to the numeric address. (unshare and sh exec
	// it: the PID this test holds is apt-cacher-ng's.)
	resolv := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver 127.0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.cmd = nsCommand(ns, "unshare", "--mount", "--propagation", "private", "sh", "-c",
		`mount --bind "$1" /etc/resolv.conf && exec "$2" -c "$3" ForeGround=1`, "sh", resolv, bin, conf)
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := testutil.Start(c.cmd); err != nil {
		logf.Close()
		t.Fatalf("start apt-cacher-ng: %v", err)
	}
	go func() {
		_ = c.cmd.Wait()
		logf.Close()
		close(c.done)
	}()
	t.Cleanup(func() {
		c.stop()
		if t.Failed() {
			for _, f := range []string{"stdout.log", "log/apt-cacher.err", "log/apt-cacher.log", "log/apt-cacher.dbg"} {
				if data, err := os.ReadFile(filepath.Join(dir, f)); err == nil {
					t.Logf("apt-cacher-ng %s:\n%s", f, tail(string(data), 30))
				}
			}
		}
	})
	// It answers once it listens.
	testutil.WaitFor(t, 30*time.Second, "apt-cacher-ng listening on "+c.url, func() error {
		select {
		case <-c.done:
			data, _ := os.ReadFile(filepath.Join(dir, "stdout.log"))
			t.Fatalf("apt-cacher-ng exited: %s", data)
		default:
		}
		out, err := nsCommand(ns, "bash", "-c", "exec 3<>/dev/tcp/"+ip+"/"+cacherPort).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	return c
}

// stop ends apt-cacher-ng: SIGTERM to the PID this test started, SIGKILL
// after 10 s.
func (c *cacher) stop() {
	select {
	case <-c.done:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
		_ = c.cmd.Process.Signal(syscall.SIGKILL)
		<-c.done
	}
}

func tail(s string, lines int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(l[max(0, len(l)-lines):], "\n")
}

// cacherCycle is one apt cycle's WAN bytes and unique bytes.
type cacherCycle struct {
	wan            wanCounters
	unique         int64 // .debs + new index files + one InRelease
	debs           int64
	elapsed        time.Duration
	indexServed    map[string]int // new by-hash index -> times the archive served it
	debTransfers   int            // .deb GETs the pool host served
	nodesCompleted int
	repeats        []string // a few .debs the pool served more than once, and how
	retries        int      // apt-get runs that failed and were run again
}

func (c cacherCycle) ratio() float64 { return float64(c.wan.Down) / float64(c.unique) }

// publishAndRun publishes a new 30-package batch named prefixNN, runs
// apt-get update and install of it on nodes at once with extra apt
// options, and measures the WAN. Each apt-get is tried up to attempts times.
func publishAndRun(t testing.TB, s *testSite, nodes []*node, prefix string, attempts int, extra ...string) cacherCycle {
	t.Helper()
	names, debs := aptBatchNamed(t, filepath.Join(s.dir, "batch-"+prefix), prefix, uniformSizes(48<<10))
	idxBefore := s.origin.IndexRequests()
	entries := s.origin.apt.MustAdd(t, debs...)
	var c cacherCycle
	for _, e := range entries {
		c.debs += e.Size
	}
	before := s.net.counters(t)
	start := time.Now()
	// Runs that fail are tried again (up to attempts times), as an admin would:
	// apt-cacher-ng drops a client now and then under a whole site's
	// requests at once. The retries' bytes count.
	c.retries = aptEverywhereRetrying(t, nodes, names, attempts, extra...)
	c.elapsed = time.Since(start)
	c.wan = s.net.counters(t).sub(before)
	c.nodesCompleted = len(nodes)
	_, idxBytes, served := newIndices(t, s, idxBefore)
	c.indexServed = served
	c.unique = c.debs + idxBytes + releaseSize(t, s)
	for _, e := range entries {
		xs := s.origin.pool.Transfers(filepath.Base(e.Filename))
		c.debTransfers += len(xs)
		if len(xs) > 1 && len(c.repeats) < 3 {
			var d []string
			for _, x := range xs {
				d = append(d, fmt.Sprintf("%s range %q sent %d", x.Client, x.Range, x.Sent()))
			}
			c.repeats = append(c.repeats, fmt.Sprintf("%s (%d bytes): %s", filepath.Base(e.Filename), e.Size, strings.Join(d, "; ")))
		}
	}
	return c
}

// BenchmarkAptSiteVsCacher: the apt cycle of BenchmarkAptSiteWAN (apt-get
// update and install of a new 30-package batch on every node at once,
// behind the shaped WAN) twice in one run on the same site of
// PATCHRING_BENCH_APT_SITE_NODES agents (default 20):
//
//  1. through Debian's apt-cacher-ng, run on the first node as every node's
//     proxy (the usual single-cache setup; the agents' own proxies are
//     bypassed with -o Acquire::http::Proxy);
//  2. then apt-cacher-ng's node goes down (the cache is stopped and its
//     agent killed), and the others run the next batch through their
//     agents, as in BenchmarkAptSiteWAN. A node that tries the cache
//     instead fails: the single cache is a single point of failure.
//
// Each cycle's figure is its downstream WAN bytes / its unique bytes (the
// .debs, the new index files, one InRelease), so that the two batches'
// slightly different index sizes do not count. It reports
//
//   - apt_site_vs_cacher_wan_ratio: patchring's figure / apt-cacher-ng's.
//     Goal <= 1.0.
//   - apt_cacher_wan_ratio, apt_site_wan_ratio_cacher_down: the two figures.
//   - apt_cacher_cycle, apt_site_cycle_cacher_down: seconds per cycle.
func BenchmarkAptSiteVsCacher(b *testing.B) {
	n := envInt(b, "PATCHRING_BENCH_APT_SITE_NODES", 20)
	if n < 2 {
		b.Fatal("the comparison needs at least 2 nodes")
	}
	var viaCacher, viaSite cacherCycle
	for i := range b.N {
		s := startAptSite(b, n)
		host := s.nodes[0]
		acng := startCacher(b, host.ns, host.ip, filepath.Join(s.dir, "acng"))
		viaCacher = publishAndRun(b, s, s.nodes, fmt.Sprintf("cache%d-fix", i), 3, "-o", "Acquire::http::Proxy="+acng.url)
		b.Logf("apt-cacher-ng on %s, %d nodes: %d WAN bytes down for %d unique (%.3f), %d .deb GETs at the pool for 30, %d apt-get runs failed and run again, %s",
			host.hostname, n, viaCacher.wan.Down, viaCacher.unique, viaCacher.ratio(), viaCacher.debTransfers, viaCacher.retries, viaCacher.elapsed.Round(time.Second))
		for _, r := range viaCacher.repeats {
			b.Logf("  served more than once through apt-cacher-ng: %s", r)
		}

		// The cache's node goes down.
		acng.stop()
		host.kill(b)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		out, err := aptOnce(ctx, s.nodes[1], "-o", "Acquire::http::Proxy="+acng.url, "-o", "Acquire::http::Timeout=10", "update", "--error-on=any")
		cancel()
		if err == nil {
			b.Fatalf("apt-get update through the stopped apt-cacher-ng succeeded:\n%s", out)
		}
		b.Logf("with its node down, apt through apt-cacher-ng fails: %v", err)

		viaSite = publishAndRun(b, s, s.nodes[1:], fmt.Sprintf("site%d-fix", i), 1)
		b.Logf("patchring site without %s, %d nodes: %d WAN bytes down for %d unique (%.3f), %d .deb GETs at the pool for 30, %d apt-get runs failed and run again, %s",
			host.hostname, n-1, viaSite.wan.Down, viaSite.unique, viaSite.ratio(), viaSite.debTransfers, viaSite.retries, viaSite.elapsed.Round(time.Second))
	}
	benchtarget.Report(b, viaSite.ratio()/viaCacher.ratio(), "apt_site_vs_cacher_wan_ratio", "x", benchtarget.AtMost(1.0), benchtarget.Plausible(0.2, 5))
	benchtarget.Report(b, viaCacher.ratio(), "apt_cacher_wan_ratio", "x", benchtarget.Plausible(1, float64(n)*2))
	benchtarget.Report(b, viaSite.ratio(), "apt_site_wan_ratio_cacher_down", "x", benchtarget.Plausible(1, float64(n)*2))
	b.ReportMetric(viaCacher.elapsed.Seconds(), "apt_cacher_cycle@s")
	b.ReportMetric(viaSite.elapsed.Seconds(), "apt_site_cycle_cacher_down@s")
}
