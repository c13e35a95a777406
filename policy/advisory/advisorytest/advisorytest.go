// Package advisorytest generates advisory data of realistic size for
// benchmarks and tests (policy/advisory, daemon/vulns). Tests only.
package advisorytest

import (
	"fmt"
	"math/rand/v2"

	"github.com/patchring/patchring/policy/advisory"
)

// SyntheticDebian builds a Debian advisory set of the size osv.dev
// publishes for Debian (tens of thousands of records: one DEBIAN-CVE per
// CVE per source package, and DSA/DLA records naming several CVEs) over
// sources source packages, with Debian-style versions (epochs, tildes,
// +debNuM revisions).
func SyntheticDebian(seed uint64, records, sources int) []*advisory.OSV {
	rng := rand.New(rand.NewPCG(seed, 1))
	recs := make([]*advisory.OSV, 0, records)
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
		var events []advisory.OSVEvent
		switch rng.IntN(4) {
		case 0: // no fix yet
			events = []advisory.OSVEvent{{Introduced: "0"}}
		case 1:
			events = []advisory.OSVEvent{{Introduced: vers[rng.IntN(len(vers))]}, {Fixed: fmt.Sprintf("%d.%d-%d+deb12u%d", 1+rng.IntN(9), rng.IntN(20), 1+rng.IntN(3), 1+rng.IntN(5))}}
		default:
			events = []advisory.OSVEvent{{Introduced: "0"}, {Fixed: fmt.Sprintf("%d.%d-%d+deb12u%d", 1+rng.IntN(9), rng.IntN(20), 1+rng.IntN(3), 1+rng.IntN(5))}}
		}
		r := &advisory.OSV{ID: id, Modified: "2024-09-03T00:00:00Z", Upstream: up, Summary: src + " - security update",
			Affected: []advisory.OSVAffected{{Package: advisory.OSVPackage{Ecosystem: "Debian:12", Name: src}, Ranges: []advisory.OSVRange{{Type: "ECOSYSTEM", Events: events}}}}}
		if rng.IntN(3) == 0 {
			r.Severity = []advisory.OSVSeverity{{Type: "CVSS_V3", Score: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}}
		}
		if rng.IntN(2) == 0 {
			r.Affected = append(r.Affected, advisory.OSVAffected{Package: advisory.OSVPackage{Ecosystem: "Debian:11", Name: src},
				Ranges: []advisory.OSVRange{{Type: "ECOSYSTEM", Events: []advisory.OSVEvent{{Introduced: "0"}, {Fixed: "1.0-1+deb11u1"}}}}})
		}
		recs = append(recs, r)
	}
	return recs
}
