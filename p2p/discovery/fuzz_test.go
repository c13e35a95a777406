package discovery

import (
	"bytes"
	"net/netip"
	"testing"
)

// FuzzOpen feeds arbitrary datagrams to the decoder, as they arrive and
// with a valid tag appended (so the fuzzer reaches the parser behind the
// authentication). open must never panic, and whatever it accepts must
// encode back to an announcement that decodes the same.
func FuzzOpen(f *testing.F) {
	k := deriveKey(testKey, testLabel)
	for _, a := range []announcement{
		testAnnouncement(),
		{NodeID: "n", Time: testTime, Gossip: netip.AddrPortFrom(netip.Addr{}, 7946)},
		{NodeID: "node", Time: testTime, Gossip: netip.MustParseAddrPort("[fd00::1]:1")},
	} {
		b, err := seal(a, k)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)-tagLen])
	}
	f.Add([]byte("PRDB\x01"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		check := func(b []byte) {
			a, err := open(b, [][]byte{k})
			if err != nil {
				return
			}
			if len(b) > MaxDatagram {
				t.Fatalf("accepted %d bytes", len(b))
			}
			again, err := seal(a, k)
			if err != nil {
				t.Fatalf("accepted %+v that does not encode: %v", a, err)
			}
			b2, err := open(again, [][]byte{k})
			if err != nil || !b2.equal(a) {
				t.Fatalf("re-encoded %+v decodes as %+v, %v", a, b2, err)
			}
			if a.Gossip.Addr().Is4() && !bytes.Equal(again, b) && len(b) == len(again) {
				t.Fatalf("same-length re-encoding differs:\n%x\n%x", b, again)
			}
		}
		check(data)
		if len(data) <= MaxDatagram-tagLen {
			check(reMAC(append(bytes.Clone(data), make([]byte, tagLen)...), k))
		}
	})
}
