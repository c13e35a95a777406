package server

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/patchring/patchring/console/auth"
	"github.com/patchring/patchring/console/report"
	"github.com/patchring/patchring/console/store"
	"github.com/patchring/patchring/internal/benchtarget"
	"github.com/patchring/patchring/internal/testutil/pgtest"
)

// Fleet shape of the console benchmarks: 2,000 sites x 50 nodes, each
// node's first record of a cycle carrying a package list of benchPackages
// (PATCHRING_BENCH_CONSOLE_NODES scales the fleet down while iterating).
const (
	benchNodesPerSite = 50
	benchPackages     = 30
)

func benchNodes(b *testing.B) int {
	if v := os.Getenv("PATCHRING_BENCH_CONSOLE_NODES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < benchNodesPerSite {
			b.Fatalf("PATCHRING_BENCH_CONSOLE_NODES=%q", v)
		}
		return n
	}
	return 100_000
}

// benchBodies signs one full report cycle of the fleet and returns one
// ingest request body per site (the reporters' work, done before the
// clock starts).
func benchBodies(b *testing.B, nodes int) [][]byte {
	sites := nodes / benchNodesPerSite
	bodies := make([][]byte, sites)
	var wg sync.WaitGroup
	workers := 2
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := w; s < sites; s += workers {
				req := IngestRequest{Records: make([]report.Envelope, 0, benchNodesPerSite)}
				for i := range benchNodesPerSite {
					seed := make([]byte, ed25519.SeedSize)
					binary.BigEndian.PutUint64(seed, uint64(s*benchNodesPerSite+i+1))
					key := ed25519.NewKeyFromSeed(seed)
					pkgs := make([]report.Package, benchPackages)
					for p := range pkgs {
						pkgs[p] = report.Package{Name: fmt.Sprintf("pkg%03d", p), Version: fmt.Sprintf("1.%d-%d", p, (s+i+p)%7), Arch: "amd64"}
					}
					r := report.Record{Node: report.NodeID(key.Public().(ed25519.PublicKey)), Seq: 1, Time: t0, Site: fmt.Sprintf("site-%04d", s),
						Hostname: fmt.Sprintf("s%04d-n%02d", s, i), Ring: []string{"lab", "pilot", "broad", "broad", "broad"}[i%5], State: "idle",
						PolicyVersion: 9, Reboot: report.Reboot{State: report.RebootNone}, Packages: pkgs, PackagesDigest: report.DigestPackages(pkgs),
						BytesFromPeers: 5 << 20, BytesFromOrigin: 1 << 20}
					if i%17 == 0 {
						r.State = "failed"
						r.Outcomes = []report.Outcome{{Source: "apt", Package: "pkg001", Version: "1.2-3", Result: report.ResultFailed, Reason: "dpkg exit status 1", At: t0}}
					}
					env, err := report.Sign(r, key)
					if err != nil {
						b.Error(err)
						return
					}
					req.Records = append(req.Records, env)
				}
				bodies[s], _ = json.Marshal(req)
			}
		}()
	}
	wg.Wait()
	return bodies
}

// BenchmarkConsole measures, per backend, console_ingest_100k_s (a fleet
// of 100,000 nodes in 2,000 sites sends one full report cycle, one request
// per site, four at a time over loopback HTTP: seconds until all is
// stored and queryable) and console_overview_p95_ms (the overview's JSON
// API at that size, p95 of 50 requests).
func BenchmarkConsole(b *testing.B) {
	nodes := benchNodes(b)
	bodies := benchBodies(b, nodes)
	for _, backend := range []string{"sqlite", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			var st *store.Store
			var err error
			if backend == "sqlite" {
				st, err = store.OpenSQLite(b.Context(), b.TempDir())
			} else {
				st, err = store.OpenPostgres(b.Context(), pgtest.Start(b).NewDatabase(b))
			}
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { st.Close() })
			hash, _ := auth.HashPassword("bench-password-1")
			st.PutAccount(b.Context(), store.Account{Name: "bench", PasswordHash: hash, Role: RoleViewer, CreatedAt: t0}, false)
			_, token, err := NewToken(b.Context(), st, "bench", "bench", t0)
			if err != nil {
				b.Fatal(err)
			}
			srv := httptest.NewServer(New(Config{Store: st}))
			b.Cleanup(srv.Close)
			for b.Loop() {
				start, cpu0 := time.Now(), processCPU()
				next := make(chan []byte)
				var wg sync.WaitGroup
				for range 4 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for body := range next {
							resp, err := http.Post(srv.URL+"/api/v1/ingest", "application/json", bytes.NewReader(body))
							if err != nil {
								b.Error(err)
								continue
							}
							var out IngestResponse
							json.NewDecoder(resp.Body).Decode(&out)
							resp.Body.Close()
							for _, r := range out.Results {
								if r.Status != "stored" && r.Status != "duplicate" {
									b.Errorf("record of %s: %s %s", r.Node, r.Status, r.Error)
								}
							}
						}
					}()
				}
				for _, body := range bodies {
					next <- body
				}
				close(next)
				wg.Wait()
				elapsed, cpu := time.Since(start), processCPU()-cpu0
				c, err := st.Count(b.Context())
				if err != nil || c.Nodes != nodes || c.Packages != nodes*benchPackages {
					b.Fatalf("after ingest: %+v %v, want %d nodes", c, err, nodes)
				}
				name := "console_ingest_100k_s"
				if backend == "postgres" {
					name = "console_ingest_100k_pg_s"
				}
				if nodes != 100_000 {
					name = fmt.Sprintf("console_ingest_%dn_s", nodes)
				}
				benchtarget.Report(b, elapsed.Seconds(), name, "s", benchtarget.AtMost(60), benchtarget.Plausible(0.01, 3600))
				// The CPU it took (the console's and, for PostgreSQL, not the
				// server's): a figure the machine's load moves less.
				if cpu > 0 {
					b.ReportMetric(cpu.Seconds(), "ingest_cpu_s")
				}

				var lat []float64
				for range 50 {
					req, _ := http.NewRequest("GET", srv.URL+"/api/v1/overview", nil)
					req.Header.Set("Authorization", "Bearer "+token)
					t := time.Now()
					resp, err := http.DefaultClient.Do(req)
					if err != nil || resp.StatusCode != 200 {
						b.Fatalf("overview: %v %v", err, resp.Status)
					}
					var rows []store.OverviewRow
					json.NewDecoder(resp.Body).Decode(&rows)
					resp.Body.Close()
					lat = append(lat, float64(time.Since(t).Microseconds())/1000)
					if len(rows) != 3*nodes/benchNodesPerSite {
						b.Fatalf("overview has %d rows", len(rows))
					}
				}
				slices.Sort(lat)
				name = "console_overview_p95_ms"
				if backend == "postgres" {
					name = "console_overview_pg_p95_ms"
				}
				benchtarget.Report(b, lat[len(lat)*95/100], name, "ms", benchtarget.AtMost(300), benchtarget.Plausible(0.01, 60_000))
			}
		})
	}
}
