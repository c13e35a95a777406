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

	"github.com/patchring/patchring/p2p/content"
)

// benchEnvInt reads a positive integer knob for the benchmark.
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
// PATCHRING_BENCH_LAN_NODES (default 50) and PATCHRING_BENCH_LAN_MIB
// (default 64) scale it down; docs/P2P.md records measured figures.
func BenchmarkLANDistribution(b *testing.B) {
	nodes := benchEnvInt(b, "PATCHRING_BENCH_LAN_NODES", 50)
	mib := benchEnvInt(b, "PATCHRING_BENCH_LAN_MIB", 64)
	const upload = 8_000_000 // bytes/s
	size := int64(mib) << 20
	data := randPayload(b, int(size), 7)
	h := content.Sum(data)
	bound := float64(size) / upload // seconds
	var ratio, seedRatio float64
	for b.Loop() {
		ratio, seedRatio = runLANDistribution(b, nodes, h, data, upload, bound)
	}
	b.ReportMetric(ratio, "p2p_lan_time_vs_bound@x")
	b.ReportMetric(seedRatio, "p2p_seed_upload_ratio@x")
	b.ReportMetric(float64(nodes), "p2p_lan_nodes@count")
	b.ReportMetric(float64(mib), "p2p_lan_payload@MiB")
}

func runLANDistribution(b *testing.B, n int, h content.Hash, data []byte, upload int64, bound float64) (float64, float64) {
	size := int64(len(data))
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
			Logger:      testLogger(b),
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
			errs[i+1] = node.Fetch(ctx, h, size, others, FetchOptions{})
			doneAt[i+1] = time.Since(start)
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	for i, err := range errs {
		if err != nil {
			b.Fatalf("node %d: %v", i, err)
		}
	}
	slices.Sort(doneAt)
	b.Logf("n=%d size=%d: all hold it after %v (first %v, median %v); bound %.2fs; seed uploaded %d",
		n, size, elapsed, doneAt[1], doneAt[n/2], bound, seed.Totals().ToPeers)
	return elapsed.Seconds() / bound, float64(seed.Totals().ToPeers) / float64(size)
}
