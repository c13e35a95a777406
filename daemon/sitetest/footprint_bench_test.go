//go:build linux

package sitetest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/patchring/patchring/internal/benchtarget"
	"github.com/patchring/patchring/platform/apt/apttest"
)

// policyAcme approves acme-tool alone (the footprint benchmark's 64 MiB
// transfer), leaving the batch packages waiting.
const policyAcme = `schema: 1
name: acme
expires: 2035-01-01T00:00:00Z
rings:
  - name: all
    default: true
    defer: 0s
auto_approve:
  - name: acme tool
    sources: [apt]
    packages: ["acme-tool"]
`

// userHZ is the unit of the CPU times in /proc/PID/stat (USER_HZ, 100 on
// every Linux architecture patchring builds for).
const userHZ = 100

// procSample is what /proc says about one process at one moment.
type procSample struct {
	at        time.Time
	rss, hwm  int64 // VmRSS and VmHWM, bytes
	cpu, kids int64 // utime+stime and cutime+cstime (waited-for children), in ticks
}

// readProc samples process pid.
func readProc(pid int) (procSample, error) {
	s := procSample{at: time.Now()}
	status, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return s, fmt.Errorf("read /proc/%d/status: %w", pid, err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			s.rss = kb << 10
		case "VmHWM:":
			s.hwm = kb << 10
		}
	}
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return s, fmt.Errorf("read /proc/%d/stat: %w", pid, err)
	}
	// The fields after the command name (which may hold spaces and
	// parentheses) start after its last ')': state is field 3 of
	// proc(5), utime 14, stime 15, cutime 16, cstime 17.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return s, fmt.Errorf("parse /proc/%d/stat: no ')'", pid)
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 15 {
		return s, fmt.Errorf("parse /proc/%d/stat: %d fields", pid, len(f))
	}
	var v [4]int64
	for k := range v {
		if v[k], err = strconv.ParseInt(f[11+k], 10, 64); err != nil {
			return s, fmt.Errorf("parse /proc/%d/stat field %d: %w", pid, 14+k, err)
		}
	}
	s.cpu, s.kids = v[0]+v[1], v[2]+v[3]
	return s, nil
}

// sampleAll samples every node's daemon.
func sampleAll(t testing.TB, nodes []*node) []procSample {
	t.Helper()
	out := make([]procSample, len(nodes))
	for i, n := range nodes {
		if n.exited() {
			t.Fatalf("%s exited: %v\n%s", n.hostname, n.err, n.logTail(40))
		}
		s, err := readProc(n.cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = s
	}
	return out
}

// resetPeaks sets every daemon's VmHWM back to its current RSS (proc(5):
// writing 5 to /proc/PID/clear_refs), so a later VmHWM is the peak of what
// happened since.
func resetPeaks(t testing.TB, nodes []*node) {
	t.Helper()
	for _, n := range nodes {
		p := filepath.Join("/proc", strconv.Itoa(n.cmd.Process.Pid), "clear_refs")
		if err := os.WriteFile(p, []byte("5"), 0o200); err != nil {
			t.Fatalf("reset the peak RSS of %s: %v", n.hostname, err)
		}
	}
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// footprint is what BenchmarkSiteFootprint measured.
type footprint struct {
	idleRSS, idleCPU, idleKids []float64 // per member: MB (mean over the window), % of one core
	window                     time.Duration
	transferHWM, batchHWM      []float64 // per member, MB
}

// batchPackages are the footprint benchmark's batch: every node has
// version 1.0 of each; 1.1 is published for the busy phase.
func batchPackages(k int, version string) []apttest.Package {
	var out []apttest.Package
	for i := range k {
		blob := make([]byte, 32<<10)
		if _, err := rand.Read(blob); err != nil {
			panic(err)
		}
		name := fmt.Sprintf("batch-pkg%02d", i)
		out = append(out, apttest.Package{Name: name, Version: version, Description: "batch package (patchring footprint benchmark)",
			Files: []apttest.File{{Path: "/usr/share/" + name + "/data", Body: blob}}})
	}
	return out
}

// batchInstalled counts the batch packages dpkg's status file in n's root
// shows installed at version.
func batchInstalled(n *node, version string) (int, error) {
	f, err := os.Open(filepath.Join(n.sb.AdminDir, "status"))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	count := 0
	var pkg, ver, st string
	flush := func() {
		if strings.HasPrefix(pkg, "batch-pkg") && ver == version && st == "install ok installed" {
			count++
		}
		pkg, ver, st = "", "", ""
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			flush()
		case strings.HasPrefix(line, "Package: "):
			pkg = strings.TrimPrefix(line, "Package: ")
		case strings.HasPrefix(line, "Version: "):
			ver = strings.TrimPrefix(line, "Version: ")
		case strings.HasPrefix(line, "Status: "):
			st = strings.TrimPrefix(line, "Status: ")
		}
	}
	flush()
	return count, sc.Err()
}

// siteFootprint runs a site of n agents with apt on, a policy origin,
// inventory, gossip and the payload exchange, at the agent's default
// intervals (apt check 10 min, apt refresh 1 h, policy refresh 5 min,
// inventory 1 h), and measures:
//
//   - idle: once every agent took its first inventory and its CPU use
//     settled, each daemon's CPU time (utime+stime from /proc/PID/stat)
//     over window, and its VmRSS sampled every 5 s (mean);
//   - transfer: the agents restarted with the test's short intervals (the
//     busy phases need apt to see new versions within seconds), their
//     peak RSS reset, a payloadBytes acme-tool 1.1 approved for all: one
//     agent fetches it over the WAN and serves it, the others fetch it
//     from peers and serve it on; each daemon's VmHWM;
//   - batch: peaks reset again, 1.1 of the k batch packages published and
//     approved; each daemon's VmHWM until every node installed all k.
func siteFootprint(t testing.TB, n, k, payloadBytes int, window time.Duration) footprint {
	t.Helper()
	s := newSite(t, siteConfig{Nodes: n, AptCheck: 10 * time.Minute, AptRefresh: time.Hour, PolicyRefresh: 5 * time.Minute,
		Installed: batchPackages(k, "1.0")})
	s.origin.publishPolicy(t, policyHold)
	s.startNodes(t)
	s.waitConverged(t, 3*time.Minute, "hold")
	s.waitFor(t, 3*time.Minute, "every agent's first inventory", func(ctx context.Context) (bool, string) {
		for _, nd := range s.nodes {
			st, err := nd.c.Status(ctx)
			if err != nil {
				return false, fmt.Sprintf("%s: status: %v", nd.hostname, err)
			}
			for _, sub := range st.Subsystems {
				if sub.Name == "inventory" && sub.State != "ok" {
					return false, fmt.Sprintf("%s: inventory %s: %s", nd.hostname, sub.State, sub.Summary)
				}
			}
		}
		return true, ""
	})
	// Settled: every daemon used under 2 % of a core over the last >= 3 s
	// (start-up work, the first apt refresh and scan, is over).
	prev := sampleAll(t, s.nodes)
	s.waitFor(t, 5*time.Minute, "every agent settled", func(context.Context) (bool, string) {
		if time.Since(prev[0].at) < 3*time.Second {
			return false, "sampling"
		}
		cur := sampleAll(t, s.nodes)
		defer func() { prev = cur }()
		for i, nd := range s.nodes {
			if pct := cpuPct(prev[i], cur[i], false); pct > 2 {
				return false, fmt.Sprintf("%s used %.1f%% of a core over the last %.0f s", nd.hostname, pct, cur[i].at.Sub(prev[i].at).Seconds())
			}
		}
		return true, ""
	})

	var f footprint
	t.Logf("idle window of %v starts (load %s)", window, loadavg())
	first := sampleAll(t, s.nodes)
	rssSum := make([]float64, n)
	samples := 0
	for end := time.Now().Add(window); ; {
		for i, x := range sampleAll(t, s.nodes) {
			rssSum[i] += float64(x.rss) / (1 << 20)
		}
		samples++
		if time.Now().After(end) {
			break
		}
		time.Sleep(min(5*time.Second, time.Until(end)+time.Millisecond)) // the sampling period of the window
	}
	last := sampleAll(t, s.nodes)
	f.window = last[0].at.Sub(first[0].at)
	for i := range s.nodes {
		f.idleRSS = append(f.idleRSS, rssSum[i]/float64(samples))
		f.idleCPU = append(f.idleCPU, cpuPct(first[i], last[i], false))
		f.idleKids = append(f.idleKids, cpuPct(first[i], last[i], true))
	}
	t.Logf("idle window over (load %s): RSS MB %.1f, CPU %% %.2f, children's CPU %% %.2f", loadavg(), f.idleRSS, f.idleCPU, f.idleKids)

	// Busy: restart with the short intervals.
	for _, nd := range s.nodes {
		nd.stop()
	}
	s.cfg.AptCheck, s.cfg.AptRefresh, s.cfg.PolicyRefresh = 3*time.Second, 5*time.Second, 2*time.Second
	var seeds []string
	for i := 0; i < min(3, n); i++ {
		seeds = append(seeds, nodeIP(i)+":7946")
	}
	for _, nd := range s.nodes {
		s.startNode(t, nd, seeds)
	}
	s.waitConverged(t, 3*time.Minute, "hold")
	deb11, _ := s.buildPayload(t, "1.1", payloadBytes)
	s.origin.apt.MustAdd(t, deb11)
	s.waitAction(t, s.nodes, 2*time.Minute, "1.1", "not-approved")
	resetPeaks(t, s.nodes)
	t.Logf("transfer starts (load %s)", loadavg())
	s.origin.publishPolicy(t, policyAcme)
	s.waitInstalled(t, s.nodes, 10*time.Minute, "1.1")
	for _, x := range sampleAll(t, s.nodes) {
		f.transferHWM = append(f.transferHWM, float64(x.hwm)/(1<<20))
	}
	t.Logf("transfer over (load %s): peak RSS MB %.1f", loadavg(), f.transferHWM)

	var debs []string
	if err := os.MkdirAll(filepath.Join(s.dir, "batch11"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range batchPackages(k, "1.1") {
		debs = append(debs, apttest.MustBuildDeb(t, filepath.Join(s.dir, "batch11"), p))
	}
	resetPeaks(t, s.nodes)
	t.Logf("batch of %d starts (load %s)", k, loadavg())
	s.origin.apt.MustAdd(t, debs...)
	s.origin.publishPolicy(t, policyGo)
	s.waitFor(t, 10*time.Minute, fmt.Sprintf("the %d-package batch installed everywhere", k), func(context.Context) (bool, string) {
		for _, nd := range s.nodes {
			got, err := batchInstalled(nd, "1.1")
			if err != nil {
				return false, fmt.Sprintf("%s: %v", nd.hostname, err)
			}
			if got != k {
				return false, fmt.Sprintf("%s installed %d of %d", nd.hostname, got, k)
			}
		}
		return true, ""
	})
	for _, x := range sampleAll(t, s.nodes) {
		f.batchHWM = append(f.batchHWM, float64(x.hwm)/(1<<20))
	}
	t.Logf("batch over (load %s): peak RSS MB %.1f", loadavg(), f.batchHWM)
	return f
}

// cpuPct is the share of one core a process used between two samples: its
// own CPU time, or with kids that of its waited-for children (apt-get,
// dpkg-query).
func cpuPct(a, b procSample, kids bool) float64 {
	d := b.cpu - a.cpu
	if kids {
		d = b.kids - a.kids
	}
	return 100 * float64(d) / userHZ / b.at.Sub(a.at).Seconds()
}

// BenchmarkSiteFootprint: the agent's footprint inside a live site of
// PATCHRING_BENCH_FOOTPRINT_NODES (default 20) patchringd processes, each
// in its own network namespace, with apt on, the signed policy from the
// origin, inventory, gossip and the payload exchange running.
//
//   - daemon_idle_rss_site: median over the members of each daemon's
//     VmRSS, averaged over the idle window. Goal <= 40 MB.
//   - daemon_idle_cpu_pct_site: median over the members of each daemon's
//     CPU time (utime+stime in /proc/PID/stat) over the window
//     (PATCHRING_BENCH_FOOTPRINT_WINDOW_S, default 60 s), in percent of
//     one core. Goal <= 0.5 %. The agent's children (apt-get, dpkg-query)
//     are logged beside it.
//   - daemon_peak_rss_transfer: the highest VmHWM of any member while a
//     PATCHRING_BENCH_FOOTPRINT_MIB (default 64) MiB payload is fetched
//     over the WAN by one, served by it and fetched and served on by all
//     the others. Goal <= 120 MB.
//   - daemon_peak_rss_install_batch: the highest VmHWM of any member while
//     the agents install a batch of PATCHRING_BENCH_FOOTPRINT_BATCH
//     (default 40) package updates (no goal in the issue).
func BenchmarkSiteFootprint(b *testing.B) {
	n := envInt(b, "PATCHRING_BENCH_FOOTPRINT_NODES", 20)
	k := envInt(b, "PATCHRING_BENCH_FOOTPRINT_BATCH", 40)
	mib := envInt(b, "PATCHRING_BENCH_FOOTPRINT_MIB", 64)
	window := time.Duration(envInt(b, "PATCHRING_BENCH_FOOTPRINT_WINDOW_S", 60)) * time.Second
	var f footprint
	for range b.N {
		f = siteFootprint(b, n, k, mib<<20, window)
	}
	b.Logf("idle over %v; medians: RSS %.1f MB, CPU %.3f %%, children's CPU %.3f %%; max RSS %.1f MB, max CPU %.3f %%",
		f.window, median(f.idleRSS), median(f.idleCPU), median(f.idleKids), slices.Max(f.idleRSS), slices.Max(f.idleCPU))
	// A Go daemon with libp2p and memberlist cannot live in under 5 MB;
	// a CPU share above 100 % of a core is no idle figure.
	benchtarget.Report(b, median(f.idleRSS), "daemon_idle_rss_site", "MB", benchtarget.AtMost(40), benchtarget.Plausible(5, 4096))
	benchtarget.Report(b, median(f.idleCPU), "daemon_idle_cpu_pct_site", "%", benchtarget.AtMost(0.5), benchtarget.Plausible(0, 100))
	benchtarget.Report(b, slices.Max(f.transferHWM), "daemon_peak_rss_transfer", "MB", benchtarget.AtMost(120), benchtarget.Plausible(5, 8192))
	benchtarget.Report(b, median(f.transferHWM), "daemon_peak_rss_transfer_median", "MB", benchtarget.Plausible(5, 8192))
	benchtarget.Report(b, slices.Max(f.batchHWM), "daemon_peak_rss_install_batch", "MB", benchtarget.Plausible(5, 8192))
	b.ReportMetric(float64(n), "daemon_site_members@count")
}
