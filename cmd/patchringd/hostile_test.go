package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/patchring/patchring/daemon/client"
	"github.com/patchring/patchring/internal/benchtarget"
	"github.com/patchring/patchring/internal/testutil"
	"github.com/patchring/patchring/p2p/content"
	"github.com/patchring/patchring/p2p/exchange"
	"github.com/patchring/patchring/p2p/exchange/hostilepeer"
)

// hostileSessions is how many bad sessions TestHostilePeer makes; the
// issue asks for at least 10,000.
const hostileSessions = 10_000

// hostileWorkers is how many bad sessions run at once.
var hostileWorkers = envInt("PATCHRING_HOSTILE_WORKERS", 2)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// TestHostilePeer runs a hostile member (the site's gossip key, admitted
// like any agent) against a real patchringd for 10,000 bad sessions on
// /patchring/blob/2, /patchring/blob/1 and /patchring/meta/1, plus stalls
// and a burst of sessions at once, while an honest member fetches from
// the same victim (issue 11). The victim stays up, its resident memory
// grows by less than 50 MB, every bad session shows up in the victim's
// metrics, the per-peer admission holds (the flooding member's sessions
// wait for its own tokens, so the flood runs no faster than the session
// rate, and the burst is refused for "rate"), and the honest member's
// fetches complete during the attack. How fast they are is a speed
// target, so it is BenchmarkHostilePeer's (the ratio to the quiet rate,
// goal 0.8): the test logs it (0.43 under make test's own load of ~24 on
// two cores, 0.96 on a quiet machine).
func TestHostilePeer(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 hostile sessions against a real daemon")
	}
	r := runHostile(t)
	rep := r.rep
	t.Logf("sessions %d in %v (cut expected %d, refusals expected %d), stalls cut %d/%d, burst of %d: %d opened, %d refused; per attack %v",
		rep.Sessions, r.attackTook.Round(time.Millisecond), rep.Cut, rep.Refused, r.stalled, hostileStalls, hostileBurst, r.burstOpened, r.burstRefused, rep.ByAttack)
	t.Logf("victim RSS %.1f MB before, %.1f MB peak (+%.1f MB)", float64(r.rss0)/1e6, float64(r.peak)/1e6, float64(r.peak-r.rss0)/1e6)
	t.Logf("honest fetch of %d MiB: %.1f MiB/s quiet (best of 6), %.1f MiB/s during the attack (best of %d): ratio %.2f",
		hostileSize>>20, r.before, r.during, r.samples, r.during/r.before)
	if len(rep.Failures) > 0 {
		t.Errorf("the victim did not end some bad sessions: %v", rep.Failures)
	}
	if rep.Sessions < hostileSessions {
		t.Errorf("%d sessions ran, want %d", rep.Sessions, hostileSessions)
	}
	if r.stalled != hostileStalls {
		t.Errorf("the victim cut %d of %d stalled sessions", r.stalled, hostileStalls)
	}
	if grew := r.peak - r.rss0; grew >= 50e6 {
		t.Errorf("the victim's RSS grew by %.1f MB, want less than 50 MB", float64(grew)/1e6)
	}
	m := r.delta
	cut := m("patchring_p2p_sessions_total", `outcome="malformed"`) +
		m("patchring_p2p_sessions_total", `outcome="timeout"`) +
		m("patchring_p2p_sessions_total", `outcome="broken"`)
	refused := m("patchring_p2p_refused_total", `reason="bad_request"`) +
		m("patchring_p2p_refused_total", `reason="busy"`) + m("patchring_p2p_refused_total", `reason="peer_busy"`)
	timeouts := m("patchring_p2p_sessions_total", `outcome="timeout"`)
	rate := m("patchring_p2p_refused_total", `reason="rate"`)
	throttled := m("patchring_p2p_throttled_total", `kind="session"`)
	t.Logf("victim counted %.0f sessions cut (%.0f timed out), %.0f refusals, %.0f refused for rate, %.0f sessions and %.0f requests throttled",
		cut, timeouts, refused, rate, throttled, m("patchring_p2p_throttled_total", `kind="request"`))
	if cut < float64(rep.Cut+hostileStalls) {
		t.Errorf("victim counted %.0f sessions cut, want at least %d bad ones + %d stalls", cut, rep.Cut, hostileStalls)
	}
	if timeouts < hostileStalls {
		t.Errorf("victim counted %.0f timeouts, want at least %d (the stalls)", timeouts, hostileStalls)
	}
	if refused < float64(rep.Refused) {
		t.Errorf("victim counted %.0f refusals, want at least %d", refused, rep.Refused)
	}
	// The admission, deterministically: the flood's sessions waited for
	// tokens, so 10,000 of them took at least (n - burst) / rate (a lower
	// bound on time, which a slow machine only makes easier to meet).
	lim := exchange.PeerLimits{}.WithDefaults()
	if minTook := time.Duration(float64(rep.Sessions-lim.SessionBurst) / lim.SessionRate * float64(time.Second)); r.attackTook < minTook*9/10 {
		t.Errorf("%d hostile sessions took %v; at %.0f sessions a second after a burst of %d they take at least %v: the session rate is not enforced",
			rep.Sessions, r.attackTook, lim.SessionRate, lim.SessionBurst, minTook)
	}
	if throttled == 0 {
		t.Error("the victim throttled none of the flooding member's sessions")
	}
	// A token bucket admits at most burst + rate x elapsed sessions, plus
	// the waiting room's: a member that opened more was refused some.
	admissible := float64(lim.SessionBurst+lim.MaxWaiting) + lim.SessionRate*r.burstTook.Seconds()
	switch {
	case rate < float64(r.burstRefused):
		t.Errorf("bursts: %d refused, but the victim counted %.0f refused for rate", r.burstRefused, rate)
	case r.burstRefused == 0 && float64(r.burstOpened) > admissible:
		t.Errorf("bursts of %d sessions: %d opened in %v and none refused; a peer may open at most %.0f in that time",
			hostileBurst, r.burstOpened, r.burstTook, admissible)
	case r.burstRefused == 0:
		t.Logf("bursts: %d sessions opened in %v, within the %.0f a peer may open then: none refused (the limiter's refusals are checked in p2p/exchange)",
			r.burstOpened, r.burstTook, admissible)
	}
}

// BenchmarkHostilePeer measures the honest fetch rate under a hostile
// member's flood against the quiet rate on the same machine, in the same
// run (p2p_honest_rate_under_attack_ratio, goal >= 0.8).
func BenchmarkHostilePeer(b *testing.B) {
	for range b.N {
		r := runHostile(b)
		benchtarget.Report(b, r.before, "p2p_honest_rate_quiet", "MiB/s", benchtarget.Plausible(0.1, 100_000))
		benchtarget.Report(b, r.during, "p2p_honest_rate_under_attack", "MiB/s", benchtarget.Plausible(0.01, 100_000))
		benchtarget.Report(b, r.during/r.before, "p2p_honest_rate_under_attack_ratio", "x", benchtarget.AtLeast(0.8), benchtarget.Plausible(0.01, 10))
	}
}

// The attack's shape.
const (
	hostileSize   = 16 << 20 // each payload the victim holds
	hostileStalls = 12
	// hostileBurst is how many sessions the hostile member opens at once
	// right after the flood, when its bucket is empty: more than a peer's
	// waiting room (8), fewer than libp2p's own default limits on streams
	// per peer and protocol (64 inbound, 128 outbound), so that what is
	// refused is refused by the admission.
	hostileBurst = 48
	// hostileBurstWaves bounds the bursts opened one after the other until
	// one is refused.
	hostileBurstWaves = 6
	// hostileSamples honest fetches, hostileSampleGap apart, measure the
	// rate under attack.
	hostileSamples   = 8
	hostileSampleGap = 5 * time.Second
)

// hostileRun is what runHostile measured.
type hostileRun struct {
	rep          hostilepeer.Report
	attackTook   time.Duration
	stalled      int
	burstOpened  int
	burstRefused int
	burstTook    time.Duration
	rss0, peak   int64
	before       float64 // honest MiB/s, quiet
	during       float64 // honest MiB/s, under attack
	samples      int
	failures     []string // honest fetches under attack that failed (samples of 0)
	delta        func(name string, labels ...string) float64
}

// runHostile starts a victim patchringd holding two payloads, joins a
// hostile and an honest member to its site, measures the honest fetch rate
// before and during the hostile flood (plus stalls), then has the hostile
// member burst sessions.
func runHostile(t testing.TB) hostileRun {
	dir := t.TempDir()
	keyB64, key := newKey(t)
	keyFile := filepath.Join(dir, "gossip.key")
	if err := os.WriteFile(keyFile, []byte(keyB64+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The victim holds two payloads: one the hostile member attacks, one the
	// honest member fetches.
	const size = hostileSize
	victimDir := filepath.Join(dir, "victim")
	var blobs [2]content.Hash
	func() {
		st, err := content.Open(filepath.Join(victimDir, "content"), content.Options{})
		if err != nil {
			t.Fatal(err)
		}
		for i := range blobs {
			data := make([]byte, size)
			for j := range data {
				data[j] = byte(j*7 + i*131 + j>>12)
			}
			blobs[i] = content.Sum(data)
			if err := st.Put(context.Background(), blobs[i], size, bytes.NewReader(data)); err != nil {
				t.Fatal(err)
			}
		}
	}()

	gossipAddr := freeGossipAddr(t)
	metricsAddr := freeGossipAddr(t)
	victim := startDaemon(t, victimDir, "--hostname", "victim", "--site", "hq",
		"--gossip", "--gossip-listen", gossipAddr, "--gossip-seeds", gossipAddr, "--gossip-key-file", keyFile,
		"--gossip-label", "patchring-test", "--p2p", "--p2p-listen", "/ip4/127.0.0.1/tcp/0",
		"--metrics-listen", metricsAddr)
	victim.waitReady(t)
	c := &client.Client{Socket: victim.sock}
	st, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	pid := victim.cmd.Process.Pid

	stores := map[string]*content.Store{}
	join := func(name string) *hostilepeer.Member {
		t.Helper()
		store, err := content.Open(filepath.Join(dir, name), content.Options{})
		if err != nil {
			t.Fatal(err)
		}
		stores[name] = store
		m, err := hostilepeer.Join(context.Background(), hostilepeer.Config{
			Keys: [][]byte{key}, Seeds: []string{gossipAddr}, Site: "hq", Label: "patchring-test",
			Hostname: name, Store: store,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.Close() })
		return m
	}
	hostile, honest := join("hostile"), join("honest")
	honestContent := stores["honest"]
	var target peer.AddrInfo
	testutil.WaitFor(t, 60*time.Second, "the victim admits both members", func() error {
		for _, m := range []*hostilepeer.Member{hostile, honest} {
			ai, ok := m.Find(st.NodeID)
			if !ok {
				return fmt.Errorf("%s has not heard the victim's exchange address", m.G.NodeID())
			}
			target = ai
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := m.Node.Host().Connect(ctx, ai); err != nil {
				return err
			}
			s, err := m.Node.Host().NewStream(ctx, ai.ID, exchange.ProtocolID)
			if err != nil {
				return err
			}
			_ = s.Reset()
		}
		return nil
	})
	honestStore := honest.Node // the honest member fetches into its own store and drops the copy
	tryFetch := func(h content.Hash) (float64, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		began := time.Now()
		if err := honestStore.Fetch(ctx, h, size, []peer.AddrInfo{target}, exchange.FetchOptions{}); err != nil {
			return 0, err
		}
		rate := size / time.Since(began).Seconds() / (1 << 20)
		if err := honestContent.Delete(h); err != nil {
			t.Fatal(err)
		}
		return rate, nil
	}
	fetch := func(h content.Hash) float64 {
		t.Helper()
		rate, err := tryFetch(h)
		if err != nil {
			t.Fatalf("honest fetch: %v", err)
		}
		return rate
	}
	// targetAvoided: the honest member avoids the victim after a failed
	// fetch (the exchange's failure backoff).
	targetAvoided := func() bool {
		for _, p := range honestStore.Peers() {
			if p.ID == target.ID && time.Now().Before(p.AvoidUntil) {
				return true
			}
		}
		return false
	}
	tgt := hostilepeer.Target{Peer: target, Hash: blobs[0], Size: size}

	// Warm up (the victim's first sessions allocate its pools; the
	// attacked payload is spread once, so that the victim serves it
	// whole, not in initial seeding), then take the baselines.
	fetch(blobs[0])
	if _, err := hostile.Run(context.Background(), tgt, 200, 4); err != nil {
		t.Fatal(err)
	}
	// Throughputs are the best of several fetches (quiet: three before
	// and three after the attack; under attack: up to hostileSamples):
	// the machine is shared, and one fetch can lose its core to anything.
	var r hostileRun
	for range 3 {
		r.before = max(r.before, fetch(blobs[1]))
	}
	r.rss0 = victimRSS(t, pid)
	m0 := scrapeMetrics(t, metricsAddr)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	var stallErr error
	wg.Go(func() { r.stalled, stallErr = hostile.Stall(ctx, tgt, hostileStalls) })
	var runErr error
	running := make(chan struct{})
	var runDone atomic.Bool
	runEnded := make(chan struct{})
	wg.Go(func() {
		close(running)
		began := time.Now()
		r.rep, runErr = hostile.Run(ctx, tgt, hostileSessions, hostileWorkers)
		r.attackTook = time.Since(began)
		runDone.Store(true)
		close(runEnded)
	})
	sampling := make(chan struct{})
	var sampler sync.WaitGroup
	var peak atomic.Int64
	sampler.Go(func() {
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			// Not victimRSS: a goroutine must not fail the test (and the
			// victim is gone once a failed test cleaned up).
			if rss, err := readRSS(pid); err == nil {
				peak.Store(max(peak.Load(), rss))
			}
			select {
			case <-sampling:
				return
			case <-tick.C:
			}
		}
	})
	stopSampling := sync.OnceFunc(func() { close(sampling); sampler.Wait() })
	defer stopSampling() // also when the test fails on the way
	<-running
	// Sample the honest rate across the attack, a few seconds apart, so
	// that a burst of load from elsewhere on the machine does not decide
	// the figure (the quiet rate is the best of fetches before and after).
	for range hostileSamples {
		rate, err := tryFetch(blobs[1])
		if err != nil {
			// A failed fetch is a sample of 0 (on a two-core machine
			// loaded from elsewhere a transfer can miss its minimum-rate
			// deadline); the honest member then avoids the victim for
			// the exchange's failure backoff, which is waited out. The
			// figure is the best sample; none at all fails the test.
			t.Logf("honest fetch under attack failed (a sample of 0): %v", err)
			if err := testutil.Poll(exchange.MaxFailureBackoff, func() error {
				if targetAvoided() {
					return errors.New("the honest member still avoids the victim")
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		if runDone.Load() {
			break // this fetch did not run entirely under attack
		}
		r.samples++
		if err != nil {
			r.failures = append(r.failures, err.Error())
			continue
		}
		r.during = max(r.during, rate)
		select {
		case <-runEnded:
		case <-time.After(hostileSampleGap):
		}
		if runDone.Load() {
			break
		}
	}
	wg.Wait()
	if r.samples == 0 {
		t.Fatal("the attack ended before an honest fetch did: no throughput under attack")
	}
	if r.during == 0 {
		t.Fatalf("no honest fetch succeeded under attack (%d samples): %s", r.samples, strings.Join(r.failures, "; "))
	}
	if runErr != nil {
		t.Fatalf("hostile run: %v", runErr)
	}
	if stallErr != nil {
		t.Fatalf("stalls: %v", stallErr)
	}
	// Right after the flood the member's bucket is low (empty when the
	// flood ran at the session rate): bursts of sessions at once, wave
	// after wave, find the bucket and the waiting room full and are
	// refused. A loaded machine may open them slower than the bucket
	// refills; then the member is within its rate and nothing need be
	// refused, which burstWithinRate tells.
	burstStart := time.Now()
	for range hostileBurstWaves {
		opened, refused, err := hostile.Burst(ctx, tgt, hostileBurst)
		if err != nil {
			t.Fatalf("burst: %v", err)
		}
		r.burstOpened, r.burstRefused = r.burstOpened+opened, r.burstRefused+refused
		if r.burstRefused > 0 {
			break
		}
	}
	r.burstTook = time.Since(burstStart)
	stopSampling()
	m1 := scrapeMetrics(t, metricsAddr)
	r.peak = max(peak.Load(), victimRSS(t, pid))
	// The quiet rate again, now that the attack is over.
	for range 3 {
		r.before = max(r.before, fetch(blobs[1]))
	}

	if _, err := c.Status(context.Background()); err != nil {
		t.Fatalf("the victim does not answer after the attack: %v", err)
	}
	select {
	case err := <-victim.done:
		t.Fatalf("the victim exited: %v\n%s", err, victim.stderr)
	default:
	}
	r.delta = func(name string, labels ...string) float64 {
		return m1.sum(name, labels...) - m0.sum(name, labels...)
	}
	return r
}

// victimRSS reads VmRSS of pid in bytes.
func victimRSS(t testing.TB, pid int) int64 {
	t.Helper()
	rss, err := readRSS(pid)
	if err != nil {
		t.Fatal(err)
	}
	return rss
}

// readRSS reads VmRSS of pid in bytes.
func readRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read the victim's status: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmRSS %q: %w", line, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// metricLines are the samples of one scrape.
type metricLines []string

func scrapeMetrics(t testing.TB, addr string) metricLines {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape metrics: %v", err)
	}
	defer resp.Body.Close()
	var out metricLines
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 16<<20))
	for sc.Scan() {
		if line := sc.Text(); !strings.HasPrefix(line, "#") {
			out = append(out, line)
		}
	}
	return out
}

// sum adds the samples of name whose labels contain every one given.
func (m metricLines) sum(name string, labels ...string) float64 {
	var total float64
	for _, line := range m {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		if !ok {
			continue
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			total += v
		}
	}
	return total
}
