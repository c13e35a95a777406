package engine_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/patchring/patchring/internal/benchtarget"
	"github.com/patchring/patchring/platform/apt/apttest"
	"github.com/patchring/patchring/policy"
)

// Sizes of the package BenchmarkEngineOverhead installs.
const (
	benchFiles      = 1000
	benchMinBytes   = 20_000_000
	benchPairs      = 5
	benchFilesCount = "/var/lib/acme-tool/files"
)

// benchPackage is acme-tool 1.1 as a realistic package: 1,000 files of
// 16-26 KiB of random bytes (about 21 MB that do not compress away) and a
// postinst that counts the installed files, which the policy's health
// check then reads.
func benchPackage(tb testing.TB) apttest.Package {
	tb.Helper()
	rng := rand.New(rand.NewChaCha8([32]byte{19}))
	p := apttest.Package{Name: "acme-tool", Version: "1.1", Postinst: `#!/bin/sh
set -e
if [ "$1" = configure ]; then
	mkdir -p "$DPKG_ROOT/var/lib/acme-tool"
	find "$DPKG_ROOT/usr/share/acme-tool/data" -type f | wc -l > "$DPKG_ROOT` + benchFilesCount + `"
fi
`}
	total := 0
	for i := range benchFiles {
		body := make([]byte, 16<<10+rng.IntN(10<<10))
		for j := range body {
			body[j] = byte(rng.Uint32())
		}
		total += len(body)
		p.Files = append(p.Files, apttest.File{Path: fmt.Sprintf("/usr/share/acme-tool/data/%02d/f%04d.bin", i%50, i), Body: body})
	}
	if total < benchMinBytes {
		tb.Fatalf("benchmark package holds %d bytes, want at least %d", total, benchMinBytes)
	}
	return p
}

// benchHealth is the policy's health check: postinst ran and counted every
// file.
const benchHealth = `health_check:
  command: ["sh", "-c", "test \"$(cat \"$PATCHRING_ROOT` + benchFilesCount + `\")\" -ge 1000"]
  timeout: 60s
`

// BenchmarkEngineOverhead compares a bare apt-get install of acme-tool 1.1
// (a 21 MB package of 1,000 files with a postinst, see benchPackage) with
// the engine's journaled install of the same package (fetch, verify, place,
// install, confirm, the policy's health check), in five alternating runs
// (bare, engine, bare, engine...) in one sandbox that is reset between runs
// (back to 1.0, apt's archive cache emptied, the postinst's output removed;
// the engine gets a fresh state directory each run, so its content store is
// empty too). Both start after apt-get update. It reports the median of
// each and the median of the per-pair ratios.
func BenchmarkEngineOverhead(b *testing.B) {
	ctx := context.Background()
	w := newWorld(b, benchPackage(b))
	w.publish11(b)
	pol := mustPolicy(b, benchHealth)
	n := w.newNode(b, "pilot-1", []string{"pilot"}, pol)
	sb := n.sb
	if out, err := sb.Run(ctx, "apt-get", "update", "-qq"); err != nil {
		b.Fatalf("apt-get update: %v\n%s", err, out)
	}
	if st, err := os.Stat(w.deb11); err == nil {
		b.Logf("acme-tool 1.1: %.1f MB .deb, %d files", float64(st.Size())/1e6, benchFiles)
	}
	reset := func() {
		b.Helper()
		if err := sb.DpkgInstall(ctx, w.deb10); err != nil {
			b.Fatalf("reset to 1.0: %v", err)
		}
		if out, err := sb.Run(ctx, "apt-get", "clean"); err != nil {
			b.Fatalf("apt-get clean: %v\n%s", err, out)
		}
		if err := os.Remove(sb.Path(benchFilesCount)); err != nil && !os.IsNotExist(err) {
			b.Fatal(err)
		}
		if v, _, err := sb.InstalledVersion(ctx, "acme-tool"); err != nil || v != "1.0" {
			b.Fatalf("after reset acme-tool is %q (%v), want 1.0", v, err)
		}
	}
	installed := func(who string) {
		b.Helper()
		if v, _, err := sb.InstalledVersion(ctx, "acme-tool"); err != nil || v != "1.1" {
			b.Fatalf("after the %s install acme-tool is %q (%v), want 1.1", who, v, err)
		}
		if _, err := os.Stat(sb.Path(benchFilesCount)); err != nil {
			b.Fatalf("after the %s install: postinst did not run: %v", who, err)
		}
	}

	var bare, eng, ratios []float64
	run := 0
	for b.Loop() {
		for range benchPairs {
			reset()
			start := time.Now()
			if out, err := sb.Run(ctx, "apt-get", "install", "-y", "-qq", "acme-tool=1.1"); err != nil {
				b.Fatalf("bare apt-get install: %v\n%s", err, out)
			}
			tBare := time.Since(start)
			installed("bare")

			reset()
			run++
			en := openNode(b, "pilot-1", sb, []string{"pilot"}, pol, filepath.Join(w.stateDir, fmt.Sprintf("engine-run-%d", run)))
			if _, err := en.eng.Plan(ctx); err != nil {
				b.Fatal(err)
			}
			start = time.Now()
			u := policy.Update{Source: "apt", Package: "acme-tool", Version: "1.1", InstalledVersion: "1.0"}
			if _, err := en.eng.Install(ctx, u, "benchmark", "v1"); err != nil {
				b.Fatal(err)
			}
			tEng := time.Since(start)
			installed("engine")

			b.Logf("pair %d: bare %v, engine %v, ratio %.3f", len(bare)+1, tBare.Round(time.Millisecond), tEng.Round(time.Millisecond), tEng.Seconds()/tBare.Seconds())
			bare = append(bare, float64(tBare.Microseconds())/1000)
			eng = append(eng, float64(tEng.Microseconds())/1000)
			ratios = append(ratios, tEng.Seconds()/tBare.Seconds())
		}
	}
	benchtarget.Report(b, median(bare), "apt_install_bare_20mb_median", "ms", benchtarget.Plausible(1, 600_000))
	benchtarget.Report(b, median(eng), "engine_install_20mb_median", "ms", benchtarget.Plausible(1, 600_000))
	benchtarget.Report(b, median(ratios), "engine_install_overhead_ratio", "x", benchtarget.AtMost(1.2), benchtarget.Plausible(0.5, 1000))
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
