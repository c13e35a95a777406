package gossip

import (
	"bytes"
	"testing"
	"time"
)

func fuzzSeeds(t testing.TB) (*Gossip, [][]byte) {
	g := newIdle(t)
	other := newIdle(t)
	st := stateBody{Hostname: "h", Site: "s", State: State{Ring: "r", Tags: []string{"t"}, PolicyVersion: 9,
		Reboot: RebootState{Required: true, Since: time.UnixMilli(1)}}}
	var big [][32]byte
	for i := range 40 {
		big = append(big, [32]byte{byte(i), byte(i * 7)})
	}
	bigIdx := NewContentIndex(big)
	state := signedBy(t, other, msgState, 2, st.marshal())
	withResults := st
	withResults.State.Results = manyResults(MaxResults)
	legacy := appendBytesField(st.marshal(), 20, legacyResult("apt", "openssl", "3.0.15-1", true))
	return g, [][]byte{
		state,
		withResults.marshal(),
		legacy,
		signedBy(t, other, msgContent, 3, bigIdx.marshal()),
		signedBy(t, other, msgContent, 4, (&ContentIndex{count: 1, hashes: [][32]byte{{1}}}).marshal()),
		signedBy(t, other, msgLease, 5, (&leaseBody{Group: "g", Phase: leaseHeld, Expiry: time.UnixMilli(99)}).marshal()),
		(&pushPull{ltime: 7, messages: [][]byte{state}}).marshal(),
		marshalStateRequest(other.id),
		(&nodeMeta{stateLTime: 3, policyVersion: 4, site: "s"}).marshal(),
	}
}

// FuzzDecode feeds arbitrary bytes to every decoder of gossip input and to
// the delegate itself: nothing may panic, and whatever decodes re-encodes
// to something that decodes the same.
func FuzzDecode(f *testing.F) {
	g, seeds := fuzzSeeds(f)
	for _, s := range seeds {
		f.Add(s)
	}
	d := &delegate{g}
	f.Fuzz(func(t *testing.T, b []byte) {
		in := bytes.Clone(b)
		d.NotifyMsg(b)
		d.MergeRemoteState(b, false)
		if !bytes.Equal(in, b) {
			t.Fatal("input modified")
		}
		_, _ = unmarshalPushPull(b)
		_, _ = unmarshalStateRequest(b)
		_, _ = unmarshalMeta(b)
		_, _ = unmarshalContentIndex(b)
		_, _ = unmarshalLeaseBody(b)
		if s, err := unmarshalStateBody(b); err == nil {
			s2, err := unmarshalStateBody(s.marshal())
			if err != nil || !equalStates(&s.State, &s2.State) || s.Hostname != s2.Hostname || s.Leaving != s2.Leaving {
				t.Fatalf("state re-encoding differs: %v", err)
			}
		}
		p, err := parseSigned(b)
		if err != nil {
			return
		}
		p2, err := parseSigned(p.env.marshal())
		if err != nil {
			t.Fatalf("re-encoded envelope does not decode: %v", err)
		}
		if p2.env.node != p.env.node || p2.env.ltime != p.env.ltime || !bytes.Equal(p2.env.body, p.env.body) ||
			!bytes.Equal(p2.env.sig, p.env.sig) || p2.env.typ != p.env.typ {
			t.Fatal("envelope re-encoding differs")
		}
	})
}
