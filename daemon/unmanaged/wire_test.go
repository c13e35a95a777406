package unmanaged

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/patchring/patchring/platform/neighbor"
)

func sampleReport() *Report {
	t0 := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	return &Report{
		SelfMACs:  []neighbor.MAC{ifcA.MAC},
		SelfAddrs: []netip.Addr{netip.MustParseAddr("10.200.1.10"), netip.MustParseAddr("fe80::1")},
		Devices: []Device{
			{MAC: printer, Addrs: []netip.Addr{netip.MustParseAddr("10.200.1.50")}, Hostname: "printer-3", FirstSeen: t0, LastSeen: t0.Add(time.Hour)},
			{MAC: camera, FirstSeen: t0, LastSeen: t0},
		},
	}
}

func TestReportRoundTrip(t *testing.T) {
	t.Parallel()
	b := sampleReport().Marshal()
	got, err := ParseReport(b, 10)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Marshal(), b) || got.Devices[0].Hostname != "printer-3" || !got.Devices[0].LastSeen.Equal(sampleReport().Devices[0].LastSeen) {
		t.Fatalf("round trip: %+v", got)
	}
	// 2 devices in 58+... bytes: compact.
	if len(b) > 120 {
		t.Fatalf("%d bytes for two devices", len(b))
	}
}

func TestParseReportRefuses(t *testing.T) {
	t.Parallel()
	good := sampleReport().Marshal()
	bad := func(mut func(r *Report)) []byte {
		r := sampleReport()
		mut(r)
		return r.Marshal()
	}
	tests := []struct {
		name string
		b    []byte
		max  int
		want string
	}{
		{"not ours", []byte("GET / HTTP/1.0"), 10, "not a sightings file"},
		{"truncated", good[:len(good)-3], 10, "truncated"},
		{"trailing", append(append([]byte{}, good...), 0), 10, "trailing"},
		{"over the member cap", good, 1, "2 devices, at most 1"},
		{"multicast device", bad(func(r *Report) { r.Devices[0].MAC = neighbor.MAC{1, 0, 0x5e, 0, 0, 1} }), 10, "not a unicast MAC"},
		{"time backwards", bad(func(r *Report) { r.Devices[0].LastSeen = r.Devices[0].FirstSeen.Add(-time.Hour) }), 10, "last seen before first seen"},
		{"host name", bad(func(r *Report) { r.Devices[0].Hostname = "a b" }), 10, "bad host name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseReport(tc.b, tc.max)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// FuzzParseReport: a member's sightings are untrusted. Whatever parses
// must marshal back to the same bytes (one encoding per report).
func FuzzParseReport(f *testing.F) {
	f.Add(sampleReport().Marshal())
	f.Add((&Report{}).Marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseReport(b, 1000)
		if err != nil {
			return
		}
		if len(r.Devices) > 1000 {
			t.Fatalf("%d devices", len(r.Devices))
		}
		if out := r.Marshal(); !bytes.Equal(out, b) {
			t.Fatalf("re-marshal differs:\n%x\n%x", b, out)
		}
	})
}

func TestOUIRegistry(t *testing.T) {
	t.Parallel()
	o := &OUI{Path: DefaultOUIFile}
	if v := o.Vendor(neighbor.MAC{0x00, 0x00, 0x48, 1, 2, 3}); v == "" {
		if o.Err() != nil {
			t.Skipf("ieee-data is not installed: %v", o.Err())
		}
		t.Fatal("no vendor for 00:00:48 (Seiko Epson) in the IEEE registry")
	}
	missing := &OUI{Path: "testdata/none.csv"}
	if v := missing.Vendor(printer); v != "" || missing.Err() == nil {
		t.Fatalf("a missing registry: %q %v", v, missing.Err())
	}
}
