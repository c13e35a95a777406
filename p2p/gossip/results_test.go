package gossip

import (
	"fmt"
	"strings"
	"testing"
)

// manyResults returns n distinct results, every third one failed.
func manyResults(n int) []UpdateResult {
	out := make([]UpdateResult, n)
	for i := range out {
		out[i] = NewUpdateResult("apt", fmt.Sprintf("libpackage-number-%d", i), fmt.Sprintf("2.36-9+deb12u%d", i), i%3 != 0)
	}
	return out
}

// legacyResult is a field 20 result as agents before 0.4 sent it.
func legacyResult(source, pkg, version string, ok bool) []byte {
	var b []byte
	b = appendStringField(b, 1, source)
	b = appendStringField(b, 2, pkg)
	b = appendStringField(b, 3, version)
	return appendBoolField(b, 4, ok)
}

// TestFullBatchOfResultsFitsOnePacket: a node with long-ish tags,
// addresses and keyring announces MaxResults results (a Debian point
// release at once) in one signed state message, and its peers decode every
// one with its outcome, in order.
func TestFullBatchOfResultsFitsOnePacket(t *testing.T) {
	t.Parallel()
	g := newIdle(t)
	st := State{
		Ring: "broad", Tags: []string{"office-berlin", "workstation", "finance"},
		Addrs: []string{
			"/ip4/192.168.100.200/tcp/40001", "/ip4/192.168.100.200/udp/40001/quic-v1",
			"/ip6/fd00:1234:5678:9abc::200/tcp/40001", "/ip6/fd00:1234:5678:9abc::200/udp/40001/quic-v1",
		},
		PolicyVersion: 123456, InventoryDigest: "sha256:" + strings.Repeat("ab", 32),
		Updates: UpdateSummary{Pending: 60, Installed: 400, Failed: 3}, AgentVersion: "0.4.0-rc1+g1234567",
		Results: manyResults(MaxResults),
	}
	if err := g.SetLocal(st); err != nil {
		t.Fatalf("a state with %d results: %v", MaxResults, err)
	}
	raw, _, err := g.sign(msgState, (&stateBody{Hostname: "workstation-0042.berlin.example.com", Site: "berlin-office", State: st,
		Keyring: KeyringInfo{Primary: "0011223344556677", Installed: []string{"0011223344556677", "8899aabbccddeeff"}}}).marshal())
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	t.Logf("signed state with %d results: %d bytes (limit %d)", MaxResults, len(raw), maxBroadcastLen)
	p, err := parseSigned(raw)
	if err != nil {
		t.Fatal(err)
	}
	out, err := unmarshalStateBody(p.env.body)
	if err != nil {
		t.Fatal(err)
	}
	if len(out.State.Results) != MaxResults {
		t.Fatalf("decoded %d results, want %d", len(out.State.Results), MaxResults)
	}
	for i, r := range out.State.Results {
		if r != st.Results[i] {
			t.Fatalf("result %d = %+v, want %+v", i, r, st.Results[i])
		}
	}
}

// TestLegacyResultsDecode: results as agents before 0.4 sent them (field
// 20, with names) decode to the same IDs.
func TestLegacyResultsDecode(t *testing.T) {
	t.Parallel()
	b := (&stateBody{Hostname: "h"}).marshal()
	b = appendBytesField(b, 20, legacyResult("apt", "openssl", "3.0.15-1", true))
	b = appendBytesField(b, 20, legacyResult("catalog", "tool", "1.0", false))
	s, err := unmarshalStateBody(b)
	if err != nil {
		t.Fatal(err)
	}
	want := []UpdateResult{NewUpdateResult("apt", "openssl", "3.0.15-1", true), NewUpdateResult("catalog", "tool", "1.0", false)}
	if len(s.State.Results) != 2 || s.State.Results[0] != want[0] || s.State.Results[1] != want[1] {
		t.Fatalf("results %+v, want %+v", s.State.Results, want)
	}
}

func TestMalformedResultsRejected(t *testing.T) {
	t.Parallel()
	base := (&stateBody{Hostname: "h"}).marshal()
	ids, ok := encodeResults(manyResults(10))
	tooMany, tooManyOK := encodeResults(manyResults(MaxResults + 1))
	for _, tc := range []struct {
		name    string
		ids, ok []byte
	}{
		{"IDs not a multiple of 8", ids[:len(ids)-1], ok},
		{"outcomes too short", ids, ok[:1]},
		{"outcomes too long", ids, append(ok, 0)},
		{"no outcomes", ids, nil},
		{"zero ID", make([]byte, ResultIDLen), []byte{1}},
		{"too many", tooMany, tooManyOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := appendBytesField(base, 21, tc.ids)
			if tc.ok != nil {
				b = appendBytesField(b, 22, tc.ok)
			}
			if s, err := unmarshalStateBody(b); err == nil {
				t.Fatalf("accepted: %+v", s.State.Results)
			}
		})
	}
}
