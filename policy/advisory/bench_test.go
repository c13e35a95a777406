package advisory_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/patchring/patchring/internal/benchtarget"
	"github.com/patchring/patchring/policy/advisory"
	"github.com/patchring/patchring/policy/advisory/advisorytest"
)

// BenchmarkAdvisoriesDelta measures what an agent downloads for a typical
// daily update of a 40,000-record database: 25 new records, 15 changed
// (a fix published), 3 withdrawn, 2 CVEs added to KEV. The goal is at
// most 1% of the full database.
func BenchmarkAdvisoriesDelta(b *testing.B) {
	recs := advisorytest.SyntheticDebian(1, 40_000, 3000)
	old, _, err := advisory.Build(recs, advisory.BuildOptions{Version: 1, Now: time.Unix(0, 0)})
	if err != nil {
		b.Fatal(err)
	}
	next := append([]*advisory.OSV(nil), recs...)
	extra := advisorytest.SyntheticDebian(3, 25, 3000)
	for i, r := range extra {
		r.ID = fmt.Sprintf("DEBIAN-CVE-2026-%05d", i)
		r.Upstream = []string{r.ID[len("DEBIAN-"):]}
	}
	next = append(next, extra...)
	for i := 0; i < 15; i++ {
		r := *next[i*997]
		r.Modified = "2024-09-04T00:00:00Z"
		r.Affected = []advisory.OSVAffected{{Package: r.Affected[0].Package, Ranges: []advisory.OSVRange{{Type: "ECOSYSTEM", Events: []advisory.OSVEvent{{Introduced: "0"}, {Fixed: "99.0-1+deb12u1"}}}}}}
		next[i*997] = &r
	}
	for i := 0; i < 3; i++ {
		r := *next[i*1231+5]
		r.Withdrawn = "2024-09-04T00:00:00Z"
		next[i*1231+5] = &r
	}
	kev := &advisory.KEVCatalog{CatalogVersion: "2024.09.04", Vulnerabilities: []advisory.KEVEntry{{CveID: next[100].Upstream[0]}, {CveID: next[200].Upstream[0]}}}
	cur, _, err := advisory.Build(next, advisory.BuildOptions{Version: 2, KEV: kev, Now: time.Unix(86400, 0)})
	if err != nil {
		b.Fatal(err)
	}
	full, _, err := cur.Encode()
	if err != nil {
		b.Fatal(err)
	}
	var dz []byte
	for b.Loop() {
		d, err := advisory.Diff(old, cur)
		if err != nil {
			b.Fatal(err)
		}
		if dz, err = d.Encode(); err != nil {
			b.Fatal(err)
		}
	}
	benchtarget.Report(b, float64(len(dz)), "advisories_delta_bytes", "B", benchtarget.Plausible(100, 10<<20))
	benchtarget.Report(b, 100*float64(len(dz))/float64(len(full)), "advisories_delta_ratio", "%", benchtarget.AtMost(1), benchtarget.Plausible(0.001, 100))
	b.ReportMetric(float64(len(full)), "full_db_bytes")
}
