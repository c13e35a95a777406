package gossip

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/patchring/patchring/internal/testutil"
)

// newIdle returns a Gossip that is not running (its listeners are).
func newIdle(t testing.TB) *Gossip {
	t.Helper()
	g, err := New(testConfig(t, 0, newKey(t)), testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	return g
}

// signedBy makes a signed message of typ about signer's node.
func signedBy(t testing.TB, signer *Gossip, typ msgType, ltime uint64, body []byte) []byte {
	t.Helper()
	e := envelope{typ: typ, node: signer.id, ltime: ltime, body: body}
	sig, err := signer.priv.Sign(e.signingInput(signer.cfg.Label))
	if err != nil {
		t.Fatal(err)
	}
	e.sig = sig
	return e.marshal()
}

func TestNotifyMsgDropsBadInput(t *testing.T) {
	t.Parallel()
	g := newIdle(t)
	other := newIdle(t) // a signer with a valid identity and the same label
	goodState := (&stateBody{Hostname: "h", State: State{Ring: "r"}}).marshal()
	valid := signedBy(t, other, msgState, 5, goodState)

	tamperedBody := signedBy(t, other, msgState, 6, goodState)
	tamperedBody[len(tamperedBody)-70] ^= 1 // inside the body, before the signature

	wrongLabel := func() []byte {
		e := envelope{typ: msgState, node: other.id, ltime: 7, body: goodState}
		sig, _ := other.priv.Sign(e.signingInput("another-fleet"))
		e.sig = sig
		return e.marshal()
	}()
	typeSwap := bytes.Clone(signedBy(t, other, msgContent, 8, (&ContentIndex{}).marshal()))
	typeSwap[0] = byte(msgLease)

	tooManyTags := &stateBody{}
	for i := range maxTags + 1 {
		tooManyTags.State.Tags = append(tooManyTags.State.Tags, fmt.Sprint(i))
	}
	badBloom := appendBytesField(appendUintField(nil, 1, 100), 3, make([]byte, 10))
	wrongWireType := protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 3) // node as varint

	for _, tc := range []struct {
		name string
		msg  []byte
		stat func(Stats) uint64
	}{
		{"empty", nil, func(s Stats) uint64 { return s.Malformed }},
		{"unknown type", []byte{0x7f, 1, 2, 3}, func(s Stats) uint64 { return s.Malformed }},
		{"push-pull bundle with a bad entry", (&pushPull{ltime: 1, messages: [][]byte{{1, 2}}}).marshal(), func(s Stats) uint64 { return s.Malformed }},
		{"truncated envelope", valid[:len(valid)/2], func(s Stats) uint64 { return s.Malformed }},
		{"truncated varint", []byte{byte(msgState), 0x10, 0xff}, func(s Stats) uint64 { return s.Malformed }},
		{"field with wrong wire type", append([]byte{byte(msgState)}, wrongWireType...), func(s Stats) uint64 { return s.Malformed }},
		{"oversized", append(bytes.Clone(valid), make([]byte, maxBroadcastLen)...), func(s Stats) uint64 { return s.Oversized }},
		{"no signature", append([]byte{byte(msgState)}, (&envelope{node: other.id, ltime: 9, body: goodState}).unsigned()...), func(s Stats) uint64 { return s.Malformed }},
		{"tampered body", tamperedBody, func(s Stats) uint64 { return s.BadSignature }},
		{"signed for another fleet", wrongLabel, func(s Stats) uint64 { return s.BadSignature }},
		{"type byte swapped", typeSwap, func(s Stats) uint64 { return s.Malformed + s.BadSignature }},
		{"too many tags", signedBy(t, other, msgState, 10, tooManyTags.marshal()), func(s Stats) uint64 { return s.Oversized }},
		{"bad bloom filter", signedBy(t, other, msgContent, 11, badBloom), func(s Stats) uint64 { return s.Malformed }},
		{"lease without group", signedBy(t, other, msgLease, 12, (&leaseBody{Phase: leaseHeld}).marshal()), func(s Stats) uint64 { return s.Malformed }},
		{"absurd Lamport time", signedBy(t, other, msgState, 1<<60, goodState), func(s Stats) uint64 { return s.Rejected }},
		{"state request with bad ID", []byte{byte(msgStateRequest), 0x0a, 0x02, 0x01, 0x02}, func(s Stats) uint64 { return s.Malformed }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.stat(g.Stats())
			(&delegate{g}).NotifyMsg(tc.msg)
			if got := tc.stat(g.Stats()); got != before+1 {
				t.Fatalf("counter %d -> %d, want one more drop; stats %+v", before, got, g.Stats())
			}
			if g.Stats().Accepted != 0 {
				t.Fatalf("accepted: %+v", g.Stats())
			}
			g.mu.Lock()
			n := len(g.members)
			g.mu.Unlock()
			if n != 1 {
				t.Fatalf("member table has %d entries after bad input", n)
			}
		})
	}

	// Positive control: the valid message is accepted once, then a duplicate.
	(&delegate{g}).NotifyMsg(valid)
	(&delegate{g}).NotifyMsg(valid)
	if s := g.Stats(); s.Accepted != 1 || s.Duplicates != 1 {
		t.Fatalf("valid message: %+v, want 1 accepted and 1 duplicate", s)
	}
	// The message is about a node memberlist never reported: held, not listed.
	if _, ok := g.Member(other.NodeID()); ok {
		t.Fatal("a member memberlist never reported is listed")
	}
}

func TestMergeRemoteStateDropsBadBundles(t *testing.T) {
	t.Parallel()
	g := newIdle(t)
	other := newIdle(t)
	good := signedBy(t, other, msgState, 3, (&stateBody{State: State{Ring: "x"}}).marshal())
	for _, tc := range []struct {
		name     string
		buf      []byte
		accepted uint64
	}{
		{"wrong prefix", append([]byte{byte(msgState)}, good...), 0},
		{"truncated", (&pushPull{ltime: 1, messages: [][]byte{good}}).marshal()[:20], 0},
		{"unsigned entry", (&pushPull{ltime: 1, messages: [][]byte{marshalStateRequest(other.id)}}).marshal(), 0},
		{"good entry", (&pushPull{ltime: 1, messages: [][]byte{good, {}}}).marshal(), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := g.Stats().Accepted
			(&delegate{g}).MergeRemoteState(tc.buf, false)
			if got := g.Stats().Accepted - before; got != tc.accepted {
				t.Fatalf("accepted %d, want %d (%+v)", got, tc.accepted, g.Stats())
			}
		})
	}
}

func TestStateRoundTrip(t *testing.T) {
	t.Parallel()
	in := stateBody{
		Hostname: "ws-17", Site: "berlin",
		State: State{
			Ring: "pilot", Tags: []string{"a", "b"}, Addrs: []string{"/ip4/10.0.0.1/tcp/4001"},
			PolicyVersion: 42, InventoryDigest: "sha256:abc",
			Updates: UpdateSummary{Pending: 3, Installed: 10, Failed: 1},
			Reboot: RebootState{Required: true, Since: time.UnixMilli(1700000000123).UTC(),
				Deadline: time.UnixMilli(1700003600000).UTC(), RefusedByUser: true, HookHeld: true, Unhealthy: true},
			AgentVersion: "0.3.1", LastUpdate: time.UnixMilli(-5).UTC(),
			Results: []UpdateResult{NewUpdateResult("apt", "openssl", "3.0.15-1~deb12u1", true),
				NewUpdateResult("catalog", "acme-agent", "2.1", false)},
			Exposure: Exposure{Critical: 2, High: 5, Medium: 40, Low: 300, KEV: 1, NoFix: 120, AdvisoryVersion: 77},
			Format:   "rpm",
		},
		Keyring: KeyringInfo{Primary: "0011223344556677", Installed: []string{"0011223344556677"}},
		Leaving: true,
	}
	out, err := unmarshalStateBody(in.marshal())
	if err != nil {
		t.Fatal(err)
	}
	if !equalStates(&in.State, &out.State) || out.Hostname != in.Hostname || out.Site != in.Site ||
		out.Keyring.Primary != in.Keyring.Primary || !out.Leaving {
		t.Fatalf("round trip:\n in %+v\nout %+v", in, out)
	}
	if !out.State.Reboot.HookHeld || !out.State.Reboot.Unhealthy {
		t.Fatalf("reboot hook flags lost: %+v", out.State.Reboot)
	}
	// Unknown fields (a newer agent) are skipped.
	extra := appendStringField(in.marshal(), 99, "future")
	if _, err := unmarshalStateBody(extra); err != nil {
		t.Fatalf("unknown field: %v", err)
	}
}

func TestSetLocalRejectsBadState(t *testing.T) {
	t.Parallel()
	g := newIdle(t)
	long := string(bytes.Repeat([]byte("x"), 200))
	for _, tc := range []struct {
		name string
		s    State
	}{
		{"long ring", State{Ring: long}},
		{"too many tags", State{Tags: make([]string, maxTags+1)}},
		{"invalid UTF-8", State{AgentVersion: "\xff"}},
		{"negative count", State{Updates: UpdateSummary{Failed: -1}}},
		{"result without ID", State{Results: []UpdateResult{{Succeeded: true}}}},
		{"too many results", State{Results: manyResults(MaxResults + 1)}},
		{"does not fit a packet", State{Addrs: []string{long, long, long, long, long, long}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := g.SetLocal(tc.s); err == nil {
				t.Fatal("accepted")
			}
			if m, _ := g.Member(g.NodeID()); m.State.Ring != "" || m.StateVersion != 1 {
				t.Fatalf("bad state half-applied: %+v", m)
			}
		})
	}
}

func TestContentIndex(t *testing.T) {
	t.Parallel()
	hash := func(i int) [32]byte { return sha256.Sum256([]byte(fmt.Sprint(i))) }
	for _, n := range []int{0, 1, contentExactMax, contentExactMax + 1, 200, 2000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			var hs [][32]byte
			for i := range n {
				hs = append(hs, hash(i), hash(i)) // duplicates count once
			}
			c := NewContentIndex(hs)
			if c.Len() != n || c.Exact() != (n <= contentExactMax) {
				t.Fatalf("Len %d Exact %v", c.Len(), c.Exact())
			}
			wire, err := unmarshalContentIndex(c.marshal())
			if err != nil {
				t.Fatal(err)
			}
			if !wire.Equal(c) {
				t.Fatal("round trip changed the index")
			}
			if len(c.marshal()) > 600 {
				t.Fatalf("index of %d hashes is %d bytes", n, len(c.marshal()))
			}
			for i := range n {
				if !wire.MayHave(hash(i)) {
					t.Fatalf("false negative for item %d", i)
				}
			}
			fp := 0
			for i := n; i < n+1000; i++ {
				if wire.MayHave(hash(i)) {
					fp++
				}
			}
			if n <= 200 && fp > 10 {
				t.Fatalf("%d false positives of 1000 with %d items", fp, n)
			}
		})
	}
}

func TestSubscriptionNeverBlocksAndCoalesces(t *testing.T) {
	t.Parallel()
	g := newIdle(t)
	sub := g.Subscribe(1)
	// Nobody reads: emitting must not block, however many events.
	for i := range 10000 {
		g.emit(EventUpdate, fmt.Sprintf("node-%d", i%10), 0)
		g.emit(EventPolicyVersion, "node-3", uint64(i))
	}
	// The consumer catches up: it gets the latest of everything, in far
	// fewer events than were emitted.
	nodes := map[string]bool{}
	var maxVersion uint64
	total := 0
	tick := time.NewTimer(10 * time.Second)
	defer tick.Stop()
	for len(nodes) < 10 || maxVersion != 9999 {
		select {
		case ev := <-sub.Events():
			total++
			if ev.Kind == EventPolicyVersion {
				maxVersion = max(maxVersion, ev.PolicyVersion)
			} else {
				nodes[ev.Member.NodeID] = true
			}
		case <-tick.C:
			t.Fatalf("after %d events: %d nodes, policy version %d", total, len(nodes), maxVersion)
		}
	}
	if total > 100 || sub.Coalesced() == 0 {
		t.Fatalf("%d events delivered, %d coalesced", total, sub.Coalesced())
	}
	sub.Close()
	for range sub.Events() { // drains and ends
	}
}
