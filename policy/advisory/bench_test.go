package advisory

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/patchring/patchring/internal/benchtarget"
)

// syntheticDebian builds a Debian advisory set of the size osv.dev
// publishes for Debian (tens of thousands of records: one DEBIAN-CVE per
// CVE per source package, and DSA/DLA records naming several CVEs) over
// sources source packages, with Debian-style versions (epochs, tildes,
// +debNuM revisions).
func syntheticDebian(seed uint64, records, sources int) []*OSV {
	rng := rand.New(rand.NewPCG(seed, 1))
	recs := make([]*OSV, 0, records)
	vers := []string{"1.2.3-1", "2:4.5-2+deb12u1", "3.0.11-1~deb12u2", "1:9.18.19-1~deb12u1", "2.36-9+deb12u3", "5.4.1-0.2", "0.9~rc1-3"}
	for i := 0; i < records; i++ {
		src := fmt.Sprintf("src%04d", rng.IntN(sources))
		cve := fmt.Sprintf("CVE-%d-%05d", 2010+rng.IntN(15), i)
		id := "DEBIAN-" + cve
		up := []string{cve}
		if i%7 == 0 {
			id = fmt.Sprintf("DSA-%d-1", 4000+i)
			up = []string{cve, fmt.Sprintf("CVE-2023-%05d", i+1)}
		}
		var events []OSVEvent
		switch rng.IntN(4) {
		case 0: // no fix yet
			events = []OSVEvent{{Introduced: "0"}}
		case 1:
			events = []OSVEvent{{Introduced: vers[rng.IntN(len(vers))]}, {Fixed: fmt.Sprintf("%d.%d-%d+deb12u%d", 1+rng.IntN(9), rng.IntN(20), 1+rng.IntN(3), 1+rng.IntN(5))}}
		default:
			events = []OSVEvent{{Introduced: "0"}, {Fixed: fmt.Sprintf("%d.%d-%d+deb12u%d", 1+rng.IntN(9), rng.IntN(20), 1+rng.IntN(3), 1+rng.IntN(5))}}
		}
		r := &OSV{ID: id, Modified: "2024-09-03T00:00:00Z", Upstream: up, Summary: src + " - security update",
			Affected: []OSVAffected{{Package: OSVPackage{Ecosystem: "Debian:12", Name: src}, Ranges: []OSVRange{{Type: "ECOSYSTEM", Events: events}}}}}
		if rng.IntN(3) == 0 {
			r.Severity = []OSVSeverity{{Type: "CVSS_V3", Score: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}}
		}
		if rng.IntN(2) == 0 {
			r.Affected = append(r.Affected, OSVAffected{Package: OSVPackage{Ecosystem: "Debian:11", Name: src},
				Ranges: []OSVRange{{Type: "ECOSYSTEM", Events: []OSVEvent{{Introduced: "0"}, {Fixed: "1.0-1+deb11u1"}}}}})
		}
		recs = append(recs, r)
	}
	return recs
}

func syntheticInstalled(seed uint64, n, sources int) []Installed {
	rng := rand.New(rand.NewPCG(seed, 2))
	out := make([]Installed, n)
	for i := range out {
		v := fmt.Sprintf("%d.%d-%d", 1+rng.IntN(9), rng.IntN(20), 1+rng.IntN(3))
		out[i] = Installed{Name: fmt.Sprintf("bin%05d", i), Version: v + "+b1", Source: fmt.Sprintf("src%04d", rng.IntN(sources)), SourceVersion: v}
	}
	return out
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkVulnsMatch5000 matches 5,000 installed packages against 40,000
// Debian advisory records (over 3,000 source packages), as the agent does
// on every inventory change. The memory figure is what the agent holds
// for it: the decoded database, the index and the findings.
func BenchmarkVulnsMatch5000(b *testing.B) {
	const sources = 3000
	db, _, err := Build(syntheticDebian(1, 40_000, sources), BuildOptions{Version: 1, Now: time.Unix(0, 0)})
	if err != nil {
		b.Fatal(err)
	}
	gz, _, err := db.Encode()
	if err != nil {
		b.Fatal(err)
	}
	db = nil
	pkgs := syntheticInstalled(2, 5000, sources)
	cands := map[string]Candidate{}
	for i := 0; i < len(pkgs); i += 10 {
		cands[pkgs[i].Name] = Candidate{Version: "9.99-1", State: FixAvailable}
	}
	before := heapInUse()
	dec, _, err := Decode(gz)
	if err != nil {
		b.Fatal(err)
	}
	ix := NewIndex(dec, []string{"Debian:12"})
	fs := ix.Match(pkgs, cands)
	held := float64(heapInUse()-before) / (1 << 20)
	if len(fs) == 0 {
		b.Fatal("no findings: the benchmark measures nothing")
	}
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		fs = ix.Match(pkgs, cands)
	}
	ms := float64(time.Since(start).Microseconds()) / 1000 / float64(b.N)
	runtime.KeepAlive(ix)
	b.ReportMetric(float64(len(fs)), "findings")
	benchtarget.Report(b, ms, "vulns_match_5000", "ms", benchtarget.AtMost(200), benchtarget.Plausible(0.01, 60_000))
	benchtarget.Report(b, held, "vulns_match_5000_mem", "MB", benchtarget.AtMost(30), benchtarget.Plausible(0.1, 4096))
	b.ReportMetric(float64(len(gz))/(1<<20), "db_gz_MB")
}

// BenchmarkAdvisoriesDelta measures what an agent downloads for a typical
// daily update of a 40,000-record database: 25 new records, 15 changed
// (a fix published), 3 withdrawn, 2 CVEs added to KEV. The goal is at
// most 1% of the full database.
func BenchmarkAdvisoriesDelta(b *testing.B) {
	recs := syntheticDebian(1, 40_000, 3000)
	old, _, err := Build(recs, BuildOptions{Version: 1, Now: time.Unix(0, 0)})
	if err != nil {
		b.Fatal(err)
	}
	next := append([]*OSV(nil), recs...)
	extra := syntheticDebian(3, 25, 3000)
	for i, r := range extra {
		r.ID = fmt.Sprintf("DEBIAN-CVE-2026-%05d", i)
		r.Upstream = []string{r.ID[len("DEBIAN-"):]}
	}
	next = append(next, extra...)
	for i := 0; i < 15; i++ {
		r := *next[i*997]
		r.Modified = "2024-09-04T00:00:00Z"
		r.Affected = []OSVAffected{{Package: r.Affected[0].Package, Ranges: []OSVRange{{Type: "ECOSYSTEM", Events: []OSVEvent{{Introduced: "0"}, {Fixed: "99.0-1+deb12u1"}}}}}}
		next[i*997] = &r
	}
	for i := 0; i < 3; i++ {
		r := *next[i*1231+5]
		r.Withdrawn = "2024-09-04T00:00:00Z"
		next[i*1231+5] = &r
	}
	kev := &KEVCatalog{CatalogVersion: "2024.09.04", Vulnerabilities: []KEVEntry{{CveID: next[100].Upstream[0]}, {CveID: next[200].Upstream[0]}}}
	cur, _, err := Build(next, BuildOptions{Version: 2, KEV: kev, Now: time.Unix(86400, 0)})
	if err != nil {
		b.Fatal(err)
	}
	full, _, err := cur.Encode()
	if err != nil {
		b.Fatal(err)
	}
	var dz []byte
	for b.Loop() {
		d, err := Diff(old, cur)
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
