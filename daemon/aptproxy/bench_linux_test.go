package aptproxy

import (
	"context"
	"testing"
	"time"

	"github.com/patchring/patchring/internal/benchtarget"
	"github.com/patchring/patchring/platform/apt/apttest"
)

// BenchmarkAptProxyOverhead reports apt_proxy_overhead_ratio: the wall
// time of apt-get update + install of a 3-package batch on one node
// through the proxy (gpgv, hashing into the content store, parsing the
// 5,000-stanza index) / the same straight from the archive, each on a
// fresh sandbox, in the same run. Goal <= 1.2.
func BenchmarkAptProxyOverhead(b *testing.B) {
	var direct, proxied time.Duration
	for range b.N {
		f := newFixtureTB(b, fixtureOptions{})
		run := func(s *apttest.Sandbox, viaProxy bool) time.Duration {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			var opts []string
			if viaProxy {
				opts = []string{"-o", "Acquire::http::Proxy=" + f.proxy.URL(), "-o", "Acquire::PDiffs=false"}
			}
			start := time.Now()
			for _, args := range [][]string{{"update"}, {"install", "-y", "batch0", "batch1", "batch2"}} {
				if out, err := s.Run(ctx, "apt-get", append(append([]string{"-q"}, opts...), args...)...); err != nil {
					b.Fatalf("apt-get %v: %v\n%s", args, err, out)
				}
			}
			return time.Since(start)
		}
		// Direct first: the archive's page cache is as warm for the proxy.
		sd := apttest.MustSandbox(b, apttest.SandboxOptions{})
		sd.MustAddRepo(b, "archive", f.repo)
		direct += run(sd, false)
		sp := apttest.MustSandbox(b, apttest.SandboxOptions{ProxyAllowed: true})
		sp.MustAddRepo(b, "archive", f.repo)
		proxied += run(sp, true)
	}
	b.ReportMetric(direct.Seconds()/float64(b.N), "apt_direct@s")
	b.ReportMetric(proxied.Seconds()/float64(b.N), "apt_proxied@s")
	benchtarget.Report(b, float64(proxied)/float64(direct), "apt_proxy_overhead_ratio", "x", benchtarget.AtMost(1.2), benchtarget.Plausible(0.5, 20))
}
