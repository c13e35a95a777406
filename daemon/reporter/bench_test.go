package reporter

import (
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patchring/patchring/console/server"
	"github.com/patchring/patchring/console/store"
	"github.com/patchring/patchring/internal/benchtarget"
	"github.com/patchring/patchring/internal/testutil"
	"github.com/patchring/patchring/policy/credential"
	"github.com/patchring/patchring/policy/credential/credtest"
)

// countingListener counts every byte the console reads: HTTP requests
// with their headers (plain HTTP; TLS adds its records and handshakes).
type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	return countingConn{c, l.n}, err
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	k, err := c.Conn.Read(p)
	c.n.Add(int64(k))
	return k, err
}

// BenchmarkReportWANBytesPerNodeDay: a site of 50 nodes with 1,500
// packages each reports every 15 minutes for a simulated day in steady
// state (nothing changes: the daily heartbeat only), after the first
// full records. The figure is the bytes the console received per node
// for that day. Goal (#15): at most 20 KB.
func BenchmarkReportWANBytesPerNodeDay(b *testing.B) {
	const nodes = 50
	for range b.N {
		func() {
			st, err := store.OpenSQLite(b.Context(), b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			ca := credtest.NewCA(b)
			h := server.New(server.Config{Store: st, Verifier: server.FleetVerifier{Fleet: fixedFleet{ca.Trust(b, credential.Revocations{})}}, Logger: testutil.Logger(b)})
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			var read atomic.Int64
			srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
			go srv.Serve(countingListener{ln, &read})
			defer srv.Close()
			s := newSite(b, ca, nodes, "http://"+ln.Addr().String(), 1500)
			start := time.Now()
			s.clock = start
			for range 2 { // first full records
				if err := s.round(b); err != nil {
					b.Fatal(err)
				}
			}
			before := read.Load()
			for range 24 * 4 {
				s.mu.Lock()
				s.clock = s.clock.Add(15 * time.Minute)
				s.mu.Unlock()
				if err := s.round(b); err != nil {
					b.Fatal(err)
				}
			}
			day := read.Load() - before
			// Goal 20 KB; a day without even the heartbeat (0) or with
			// package lists resent (~100 KB) is a broken measurement.
			benchtarget.Report(b, float64(day)/nodes, "report_wan_bytes_per_node_day", "B",
				benchtarget.AtMost(20_000), benchtarget.Plausible(100, 50_000))
			n, _ := st.Count(b.Context())
			if n.Nodes != nodes {
				b.Fatalf("console has %d nodes", n.Nodes)
			}
		}()
	}
}
