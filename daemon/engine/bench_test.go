package engine_test

import (
	"context"
	"testing"
	"time"

	"github.com/patchring/patchring/internal/benchtarget"
	"github.com/patchring/patchring/platform/apt/apttest"
	"github.com/patchring/patchring/policy"
)

// BenchmarkEngineOverhead compares, in one run, a bare apt-get install of
// acme-tool 1.1 with the engine's journaled install of the same package
// (fetch, verify, place, install, confirm, health check) in an identical
// sandbox. Both start after apt-get update.
func BenchmarkEngineOverhead(b *testing.B) {
	ctx := context.Background()
	var bare, eng time.Duration
	for i := 0; i < b.N; i++ {
		w := newWorld(b, apttest.Package{})
		w.publish11(b)
		sbBare := apttest.MustSandbox(b, apttest.SandboxOptions{TempDir: w.sandboxDir})
		sbBare.MustAddRepo(b, "test", w.repo)
		if err := sbBare.DpkgInstall(ctx, w.deb10); err != nil {
			b.Fatal(err)
		}
		if out, err := sbBare.Run(ctx, "apt-get", "update", "-qq"); err != nil {
			b.Fatalf("apt-get update: %v\n%s", err, out)
		}
		n := w.newNode(b, "pilot-1", []string{"pilot"}, mustPolicy(b, ""))
		if _, err := n.eng.Plan(ctx); err != nil {
			b.Fatal(err)
		}

		start := time.Now()
		if out, err := sbBare.Run(ctx, "apt-get", "install", "-y", "-qq", "acme-tool=1.1"); err != nil {
			b.Fatalf("bare apt-get install: %v\n%s", err, out)
		}
		bare += time.Since(start)

		start = time.Now()
		u := policy.Update{Source: "apt", Package: "acme-tool", Version: "1.1", InstalledVersion: "1.0"}
		if _, err := n.eng.Install(ctx, u, "benchmark", "v1"); err != nil {
			b.Fatal(err)
		}
		eng += time.Since(start)
	}
	b.ReportMetric(float64(bare.Milliseconds())/float64(b.N), "apt_install_bare_same_run@ms")
	b.ReportMetric(float64(eng.Milliseconds())/float64(b.N), "engine_install@ms")
	benchtarget.Report(b, float64(eng)/float64(bare), "engine_install_overhead_ratio", "x", benchtarget.AtMost(1.2), benchtarget.Plausible(0.5, 1000))
}
