package discovery

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var (
	testKey   = bytes.Repeat([]byte{0x42}, 32)
	otherKey  = bytes.Repeat([]byte{0x17}, 32)
	testLabel = "fleet-test"
	testTime  = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	testID    = "12D3KooWGzBV4GMo6V1ykYnp2UKDDX2WF3mSmQDNgcFf4wahpAwT"
)

func testAnnouncement() announcement {
	return announcement{NodeID: testID, Time: testTime, Gossip: netip.MustParseAddrPort("10.1.0.7:7946")}
}

func (a announcement) equal(b announcement) bool {
	return a.NodeID == b.NodeID && a.Time.Equal(b.Time) && a.Gossip == b.Gossip
}

func mustSeal(t testing.TB, a announcement, key []byte) []byte {
	t.Helper()
	b, err := seal(a, key)
	if err != nil {
		t.Fatalf("seal: %v", err)
	}
	return b
}

// reMAC replaces the datagram's tag with a valid one for its body, so a
// test can change a field and still get past authentication.
func reMAC(b, key []byte) []byte {
	body := append([]byte(nil), b[:len(b)-tagLen]...)
	m := hmac.New(sha256.New, key)
	m.Write(body)
	return m.Sum(body)
}

func TestSealOpenRoundTrip(t *testing.T) {
	k := deriveKey(testKey, testLabel)
	for _, tc := range []struct {
		name string
		a    announcement
	}{
		{"ipv4", testAnnouncement()},
		{"no ip", announcement{NodeID: "n", Time: testTime, Gossip: netip.AddrPortFrom(netip.Addr{}, 1)}},
		{"unspecified ip sent as none", announcement{NodeID: "n", Time: testTime, Gossip: netip.MustParseAddrPort("0.0.0.0:7946")}},
		{"ipv6", announcement{NodeID: "n", Time: testTime, Gossip: netip.MustParseAddrPort("[fd00::7]:7946")}},
		{"mapped ipv4 sent as ipv4", announcement{NodeID: "n", Time: testTime, Gossip: netip.MustParseAddrPort("[::ffff:10.1.0.7]:65535")}},
		{"longest node id", announcement{NodeID: strings.Repeat("x", maxNodeIDLen), Time: testTime, Gossip: netip.MustParseAddrPort("[fd00::7]:7946")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := mustSeal(t, tc.a, k)
			if len(b) > MaxDatagram || len(b) < minDatagram {
				t.Fatalf("datagram of %d bytes outside %d..%d", len(b), minDatagram, MaxDatagram)
			}
			got, err := open(b, [][]byte{deriveKey(otherKey, testLabel), k})
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			want := tc.a
			ip := want.Gossip.Addr().Unmap()
			if ip.IsUnspecified() {
				ip = netip.Addr{}
			}
			want.Gossip = netip.AddrPortFrom(ip, want.Gossip.Port())
			if !got.equal(want) {
				t.Fatalf("open(seal(a)) = %+v, want %+v", got, want)
			}
		})
	}
}

func TestSealRejectsBadAnnouncement(t *testing.T) {
	k := deriveKey(testKey, testLabel)
	for _, tc := range []struct {
		name string
		a    announcement
	}{
		{"empty node id", announcement{Time: testTime, Gossip: netip.MustParseAddrPort("10.1.0.7:7946")}},
		{"node id too long", announcement{NodeID: strings.Repeat("x", maxNodeIDLen+1), Time: testTime, Gossip: netip.MustParseAddrPort("10.1.0.7:7946")}},
		{"port 0", announcement{NodeID: "n", Time: testTime, Gossip: netip.MustParseAddrPort("10.1.0.7:0")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if b, err := seal(tc.a, k); err == nil {
				t.Fatalf("seal accepted %+v: %x", tc.a, b)
			}
		})
	}
}

// TestOpenAuthentication: only the right key and label verify, and any
// change to any byte of a datagram fails.
func TestOpenAuthentication(t *testing.T) {
	k := deriveKey(testKey, testLabel)
	good := mustSeal(t, testAnnouncement(), k)
	for _, tc := range []struct {
		name string
		keys [][]byte
	}{
		{"other gossip key", [][]byte{deriveKey(otherKey, testLabel)}},
		{"other label", [][]byte{deriveKey(testKey, "other-fleet")}},
		{"raw gossip key, not derived", [][]byte{testKey}},
		{"no keys", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := open(good, tc.keys); !errors.Is(err, errBadAuth) {
				t.Fatalf("open = %v, want %v", err, errBadAuth)
			}
		})
	}
	t.Run("every byte flipped", func(t *testing.T) {
		for i := range good {
			b := bytes.Clone(good)
			b[i] ^= 0x01
			if a, err := open(b, [][]byte{k}); err == nil {
				t.Fatalf("byte %d flipped: accepted %+v", i, a)
			}
		}
	})
	t.Run("truncated", func(t *testing.T) {
		for n := range len(good) {
			if a, err := open(good[:n], [][]byte{k}); err == nil {
				t.Fatalf("first %d bytes accepted: %+v", n, a)
			}
		}
	})
}

func TestOpenMalformed(t *testing.T) {
	k := deriveKey(testKey, testLabel)
	good := mustSeal(t, testAnnouncement(), k)
	// Offsets in good: IP length at 15, IP at 16..19, node ID length at 20.
	edit := func(f func(b []byte) []byte) []byte { return reMAC(f(bytes.Clone(good)), k) }
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, errMalformed},
		{"other protocol", bytes.Repeat([]byte{'x'}, 80), errMalformed},
		{"oversized", append(bytes.Clone(good), make([]byte, MaxDatagram)...), errOversized},
		{"version 2", edit(func(b []byte) []byte { b[4] = 2; return b }), errMalformed},
		{"port 0", edit(func(b []byte) []byte { b[13], b[14] = 0, 0; return b }), errMalformed},
		{"ip length 5", edit(func(b []byte) []byte { b[15] = 5; return b }), errMalformed},
		{"ip length 16 over a 4-byte ip", edit(func(b []byte) []byte { b[15] = 16; return b }), errMalformed},
		{"unspecified ip", edit(func(b []byte) []byte { copy(b[16:20], []byte{0, 0, 0, 0}); return b }), errMalformed},
		{"node id length 0", edit(func(b []byte) []byte { b[20] = 0; return b }), errMalformed},
		{"node id shorter than said", edit(func(b []byte) []byte { b[20]++; return b }), errMalformed},
		{"node id longer than said", edit(func(b []byte) []byte { b[20]--; return b }), errMalformed},
		{"absurd time", edit(func(b []byte) []byte { b[5] = 0xff; return b }), errMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := open(tc.b, [][]byte{k})
			if !errors.Is(err, tc.want) {
				t.Fatalf("open = %+v, %v; want %v", a, err, tc.want)
			}
		})
	}
}

func TestDeriveKeyDependsOnKeyAndLabel(t *testing.T) {
	a := deriveKey(testKey, testLabel)
	for name, b := range map[string][]byte{
		"other key":                deriveKey(otherKey, testLabel),
		"other label":              deriveKey(testKey, testLabel+"x"),
		"label moved into the key": deriveKey(append(bytes.Clone(testKey), 'f'), "leet-test"),
	} {
		if bytes.Equal(a, b) {
			t.Errorf("%s: same derived key", name)
		}
	}
	if !bytes.Equal(a, deriveKey(testKey, testLabel)) {
		t.Error("derivation is not deterministic")
	}
	if len(a) != 32 || bytes.Equal(a, testKey) {
		t.Errorf("derived key %x", a)
	}
}

// TestCorpusVectors pins the wire format: the valid-* seeds of FuzzOpen
// were written by an independent implementation (Python's hmac and a
// hand-written HKDF) and must open under the test key and label.
func TestCorpusVectors(t *testing.T) {
	k := deriveKey(testKey, testLabel)
	for name, want := range map[string]announcement{
		"valid-ipv4":  testAnnouncement(),
		"valid-no-ip": {NodeID: "n", Time: testTime, Gossip: netip.AddrPortFrom(netip.Addr{}, 7946)},
	} {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzOpen", name))
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSpace(string(data)), "\n")
			lit, ok := strings.CutPrefix(lines[len(lines)-1], "[]byte(")
			if !ok {
				t.Fatalf("not a []byte corpus entry: %q", lines[len(lines)-1])
			}
			s, err := strconv.Unquote(strings.TrimSuffix(lit, ")"))
			if err != nil {
				t.Fatal(err)
			}
			got, err := open([]byte(s), [][]byte{k})
			if err != nil || !got.equal(want) {
				t.Fatalf("open = %+v, %v; want %+v", got, err, want)
			}
			if b := mustSeal(t, want, k); string(b) != s {
				t.Fatalf("seal differs from the vector:\n%x\n%x", b, s)
			}
		})
	}
}

// TestMaxDatagram: the longest announcement fills MaxDatagram exactly, and
// MaxDatagram is the size docs/GOSSIP.md gives.
func TestMaxDatagram(t *testing.T) {
	a := announcement{NodeID: strings.Repeat("x", maxNodeIDLen), Time: testTime, Gossip: netip.MustParseAddrPort("[fd00::7]:7946")}
	if b := mustSeal(t, a, deriveKey(testKey, testLabel)); len(b) != MaxDatagram || MaxDatagram != 193 {
		t.Fatalf("longest datagram %d bytes, MaxDatagram %d, documented 193", len(b), MaxDatagram)
	}
}
