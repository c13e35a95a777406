package inventory

import (
	"context"
	"os/exec"
	"testing"
	"time"
)

// BenchmarkFullScan times a full Collect of this machine and, in the same
// run, `dpkg-query -W`, so the two can be compared.
func BenchmarkFullScan(b *testing.B) {
	ctx := context.Background()
	if _, err := Collect(ctx, Options{}); err != nil { // warm the page cache like a running daemon
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := Collect(ctx, Options{}); err != nil {
			b.Fatal(err)
		}
	}
	scan := float64(b.Elapsed().Microseconds()) / 1000 / float64(b.N)
	b.StopTimer()

	if _, err := exec.LookPath("dpkg-query"); err != nil {
		b.Fatalf("dpkg-query not found: install the Debian package dpkg")
	}
	const runs = 10
	start := time.Now()
	for range runs {
		if err := exec.Command("dpkg-query", "-W").Run(); err != nil {
			b.Fatal(err)
		}
	}
	query := float64(time.Since(start).Microseconds()) / 1000 / runs
	b.ReportMetric(scan, "inventory_full_scan@ms")
	b.ReportMetric(query, "dpkg_query_W@ms")
}
