package discovery

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// BenchmarkReceive is what one datagram costs a receiver: a valid beacon
// (new time each, so none is a replay), one under another fleet's key, and
// junk that is not a beacon (what a flood on the port costs).
func BenchmarkReceive(b *testing.B) {
	peer := netip.MustParseAddr("10.1.0.7")
	for _, tc := range []struct {
		name   string
		metric string
		make   func(b *testing.B, i int, now time.Time) []byte
	}{
		{"valid", "discovery_receive_valid", func(b *testing.B, i int, now time.Time) []byte {
			return beaconFrom(b, fmt.Sprintf("peer-%d", i%512), now.Add(time.Duration(i)*time.Millisecond), "10.1.0.7:7946", testKey, testLabel)
		}},
		{"bad_auth", "discovery_receive_bad_auth", func(b *testing.B, i int, now time.Time) []byte {
			return beaconFrom(b, "peer", now, "10.1.0.7:7946", otherKey, testLabel)
		}},
		{"junk", "discovery_receive_junk", func(b *testing.B, i int, now time.Time) []byte {
			return make([]byte, 100)
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			r, _, c := newTestBeacon(b)
			pkts := make([][]byte, 1024)
			for i := range pkts {
				pkts[i] = tc.make(b, i, c.Now())
			}
			start := time.Now()
			n := 0
			for i := 0; b.Loop(); i++ {
				n++
				if i%len(pkts) == 0 { // the next round is new, not replayed
					r.mu.Lock()
					clear(r.last)
					r.mu.Unlock()
				}
				r.receive(pkts[i%len(pkts)], peer)
			}
			b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(n), tc.metric+"@ns")
			if st := r.Stats(); tc.name == "valid" && st.Accepted != uint64(n) {
				b.Fatalf("accepted %d of %d valid beacons: %+v", st.Accepted, n, st)
			}
		})
	}
}
