package trust_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/patchring/patchring/policy/trust"
	"github.com/patchring/patchring/policy/tufrepo"
)

// BenchmarkRefresh measures an agent's refresh over HTTP on 127.0.0.1:
// the first one (root, timestamp, snapshot, targets and the policy) and a
// periodic one with nothing new (only timestamp.json and the root probe).
func BenchmarkRefresh(b *testing.B) {
	f := newFixture(b, tufrepo.Options{})
	b.Run("first", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			c := f.client()
			b.StartTimer()
			if _, err := c.Refresh(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "trust_refresh_first@ms")
	})
	b.Run("unchanged", func(b *testing.B) {
		c, _ := f.refreshed()
		for b.Loop() {
			if _, err := c.Refresh(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "trust_refresh_unchanged@ms")
	})
}

// BenchmarkDownloadTarget64MiB streams a 64 MiB catalog payload over HTTP
// on 127.0.0.1 into a file, hashing it on the way.
func BenchmarkDownloadTarget64MiB(b *testing.B) {
	f := newFixture(b, tufrepo.Options{})
	src := filepath.Join(b.TempDir(), "big_1.0_amd64.deb")
	if err := os.WriteFile(src, bytes.Repeat([]byte("0123456789abcdef"), 4<<20), 0o644); err != nil {
		b.Fatal(err)
	}
	name, err := f.repo.AddCatalogFile(src, tufrepo.CatalogMeta{Package: "big", Version: "1.0"})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := f.repo.Publish(); err != nil {
		b.Fatal(err)
	}
	c, _ := f.refreshed(func(cfg *trust.Config) { cfg.MinRate = -1 })
	for b.Loop() {
		b.StopTimer()
		dst := b.TempDir()
		b.StartTimer()
		if _, err := c.DownloadTarget(context.Background(), name, dst); err != nil {
			b.Fatal(err)
		}
	}
	ms := float64(b.Elapsed().Microseconds()) / 1000 / float64(b.N)
	b.ReportMetric(ms, "trust_download_64mib@ms")
	b.ReportMetric(64/(ms/1000), "MiB/s")
}
