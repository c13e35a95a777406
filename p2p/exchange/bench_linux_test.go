package exchange

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/patchring/patchring/internal/benchtarget"
	"github.com/patchring/patchring/internal/testutil"
	"github.com/patchring/patchring/p2p/content"
)

// benchEnvInt reads a positive integer knob for the benchmark; def when
// unset.
func benchEnvInt(tb testing.TB, name string, def int) int {
	tb.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		tb.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// benchDir is where the nodes' stores live: a tmpfs when we may mount one
// (50 nodes on one disk would measure the disk, not the protocol), else a
// temp dir.
func benchDir(tb testing.TB, bytes int64) string {
	tb.Helper()
	dir := tb.TempDir()
	size := fmt.Sprintf("%dm", bytes>>20+64)
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		tb.Logf("no tmpfs for the stores (%v); using %s", err, dir)
		return dir
	}
	tb.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// BenchmarkLANDistribution runs a site in one process: N nodes on
// 127.0.0.1, every node's upload capped at 8 MB/s, one seed holding an
// S-byte payload, everyone else fetching it at the same moment from the
// others. It reports the time until every node holds the verified payload
// divided by the Kumar-Ross bound S/U (the seed must upload it at least
// once), and the seed's upload divided by S.
//
// It also reports the upload utilization (bytes uploaded / (N * U * time))
// and logs, per 250 ms, the aggregate upload rate and how many nodes
// uploaded less than a tenth of their cap: where the time went.
//
// PATCHRING_BENCH_LAN_NODES (default 50) and PATCHRING_BENCH_LAN_MIB
// (default 64) scale it down; docs/P2P.md records measured figures. For
// tuning, PATCHRING_BENCH_LAN_SLOTS, PATCHRING_BENCH_LAN_PIECE_KIB and
// PATCHRING_BENCH_LAN_MAXPEERS override Config.UploadSlots,
// FetchOptions.PieceSize and FetchOptions.MaxPeers (default: the package
// defaults).
func BenchmarkLANDistribution(b *testing.B) {
	nodes := benchEnvInt(b, "PATCHRING_BENCH_LAN_NODES", 50)
	mib := benchEnvInt(b, "PATCHRING_BENCH_LAN_MIB", 64)
	lan := lanSetup{
		upload: 8_000_000, // bytes/s
		slots:  benchEnvInt(b, "PATCHRING_BENCH_LAN_SLOTS", 0),
		opts: FetchOptions{
			PieceSize: int64(benchEnvInt(b, "PATCHRING_BENCH_LAN_PIECE_KIB", 0)) << 10,
			MaxPeers:  benchEnvInt(b, "PATCHRING_BENCH_LAN_MAXPEERS", 0),
		},
	}
	size := int64(mib) << 20
	data := randPayload(b, int(size), 7)
	h := content.Sum(data)
	var r lanResult
	for b.Loop() {
		r = lan.run(b, nodes, h, data)
	}
	// No run can beat the bound (the seed uploads S at U at least once),
	// nor can the seed upload less than one copy or a node more than its cap.
	benchtarget.Report(b, r.timeVsBound, "p2p_lan_time_vs_bound", "x", benchtarget.Plausible(1, 1000))
	benchtarget.Report(b, r.seedRatio, "p2p_seed_upload_ratio", "x", benchtarget.Plausible(1, float64(nodes)))
	benchtarget.Report(b, r.utilization, "p2p_lan_upload_utilization", "pct", benchtarget.Plausible(0, 100))
	b.ReportMetric(float64(nodes), "p2p_lan_nodes@count")
	b.ReportMetric(float64(mib), "p2p_lan_payload@MiB")
}

// lanSetup is how the nodes of a LAN distribution run are configured.
type lanSetup struct {
	upload int64 // per node, bytes/s
	slots  int   // Config.UploadSlots; 0: default
	opts   FetchOptions
}

// lanResult is one run of the LAN distribution.
type lanResult struct {
	timeVsBound float64 // time until all hold it / (S/U)
	seedRatio   float64 // seed upload / S
	utilization float64 // bytes uploaded / (nodes * U * time), in percent
}

// uploadTimeline samples the nodes' uploads every 250 ms until stop is
// closed, and returns per interval the aggregate upload rate and how many
// nodes uploaded less than a tenth of their cap: where capacity sat idle.
func uploadTimeline(all []*Node, upload int64, stop <-chan struct{}) []string {
	const every = 250 * time.Millisecond
	prev := make([]int64, len(all))
	var out []string
	tick := time.NewTicker(every)
	defer tick.Stop()
	last := time.Now()
	for {
		select {
		case <-stop:
			return out
		case <-tick.C:
		}
		now := time.Now()
		dt := now.Sub(last).Seconds()
		last = now
		var sum int64
		idle := 0
		for i, n := range all {
			cur := n.Totals().ToPeers
			d := cur - prev[i]
			prev[i] = cur
			sum += d
			if float64(d) < 0.1*float64(upload)*dt {
				idle++
			}
		}
		out = append(out, fmt.Sprintf("%.0f/%d", float64(sum)/dt/1e6, idle))
	}
}

func (lan lanSetup) run(b *testing.B, n int, h content.Hash, data []byte) lanResult {
	size := int64(len(data))
	upload := lan.upload
	bound := float64(size) / float64(upload) // seconds
	dir := benchDir(b, int64(n)*size)
	var all []*Node
	for i := range n {
		st, err := content.Open(filepath.Join(dir, strconv.Itoa(i)), content.Options{})
		if err != nil {
			b.Fatal(err)
		}
		node, err := New(Config{
			Store:       st,
			ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"},
			UploadRate:  upload,
			Logger:      testutil.Logger(b),
			UploadSlots: lan.slots,
		})
		if err != nil {
			b.Fatal(err)
		}
		all = append(all, node)
	}
	defer func() {
		for _, node := range all {
			_ = node.Close()
		}
	}()
	mesh(all...)
	seed := all[0]
	if err := seed.srv.store.Put(context.Background(), h, size, bytes.NewReader(data)); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	start := time.Now()
	stopTimeline := make(chan struct{})
	timeline := make(chan []string, 1)
	go func() { timeline <- uploadTimeline(all, upload, stopTimeline) }()
	var wg sync.WaitGroup
	errs := make([]error, n)
	doneAt := make([]time.Duration, n)
	for i, node := range all[1:] {
		// Everyone knows the seed (gossip says it holds the payload) and
		// the other members in a random order.
		others := []peer.AddrInfo{seed.AddrInfo()}
		for _, j := range rand.Perm(n) {
			if j != 0 && j != i+1 {
				others = append(others, all[j].AddrInfo())
			}
		}
		wg.Go(func() {
			errs[i+1] = node.Fetch(ctx, h, size, others, lan.opts)
			doneAt[i+1] = time.Since(start)
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(stopTimeline)
	tl := <-timeline
	for i, err := range errs {
		if err != nil {
			b.Fatalf("node %d: %v", i, err)
		}
	}
	slices.Sort(doneAt)
	var up int64
	for _, node := range all {
		up += node.Totals().ToPeers
	}
	b.Logf("n=%d size=%d: all hold it after %v (first %v, median %v); bound %.2fs; seed uploaded %d; all uploaded %d",
		n, size, elapsed, doneAt[1], doneAt[n/2], bound, seed.Totals().ToPeers, up)
	b.Logf("upload MB/s / idle nodes per 250 ms: %v", tl)
	return lanResult{
		timeVsBound: elapsed.Seconds() / bound,
		seedRatio:   float64(seed.Totals().ToPeers) / float64(size),
		utilization: 100 * float64(up) / (float64(n) * float64(upload) * elapsed.Seconds()),
	}
}
