package exchange

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/patchring/patchring/p2p/content"
)

const testPiece = 64 << 10

func readBlob(tb testing.TB, st *content.Store, h content.Hash) []byte {
	tb.Helper()
	r, err := st.Open(h)
	if err != nil {
		tb.Fatalf("open fetched blob: %v", err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestJudge(t *testing.T) {
	a, b := content.Sum([]byte("a")), content.Sum([]byte("b"))
	tests := []struct {
		name   string
		sum    content.Hash
		claims map[peer.ID][]content.Hash
		want   verdict
	}{
		{"no manifests", a, map[peer.ID][]content.Hash{}, verdictAccept},
		{"own manifest agrees", a, map[peer.ID][]content.Hash{"p": {a}}, verdictAccept},
		{"own manifest contradicts", b, map[peer.ID][]content.Hash{"p": {a}}, verdictLiar},
		{"own claim unknown, others agree", a, map[peer.ID][]content.Hash{"p": {{}}, "q": {a}}, verdictAccept},
		{"majority contradicts", b, map[peer.ID][]content.Hash{"p": {b}, "q": {a}, "r": {a}}, verdictDisputed},
		{"tie is accepted", b, map[peer.ID][]content.Hash{"p": {b}, "q": {a}}, verdictAccept},
		{"majority agrees", a, map[peer.ID][]content.Hash{"p": {a}, "q": {a}, "r": {b}}, verdictAccept},
		{"no own manifest, one contradiction", b, map[peer.ID][]content.Hash{"q": {a}}, verdictDisputed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := judge(0, tc.sum, "p", tc.claims); got != tc.want {
				t.Fatalf("judge = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestFetchOverPipes(t *testing.T) {
	data := randPayload(t, 40*testPiece+123, 1)
	h := content.Sum(data)
	size := int64(len(data))
	type peerSpec struct {
		id   peer.ID
		mode behaviour
	}
	tests := []struct {
		name       string
		peers      []peerSpec
		origin     bool
		originFail bool
		wantErr    error
		// the first peer is bad: honest peers wait until it served a range
		gateOnFirst bool
		wantBad     []peer.ID // proved bad data
		wantFailed  []peer.ID // failures (timeouts, truncation)
		wantOrigin  bool      // bytes came from the origin
	}{
		{name: "one honest peer", peers: []peerSpec{{"a", honest}}},
		{name: "three honest peers", peers: []peerSpec{{"a", honest}, {"b", honest}, {"c", honest}}},
		{name: "honest peer without manifest", peers: []peerSpec{{"a", noManifest}}},
		{
			name: "corrupt peer", peers: []peerSpec{{"bad", corrupt}, {"a", honest}, {"b", honest}},
			gateOnFirst: true, wantBad: []peer.ID{"bad"},
		},
		{
			name: "consistent liar", peers: []peerSpec{{"bad", liar}, {"a", honest}, {"b", honest}},
			gateOnFirst: true, wantBad: []peer.ID{"bad"},
		},
		{
			name: "truncating peer", peers: []peerSpec{{"bad", truncate}, {"a", honest}},
			gateOnFirst: true, wantFailed: []peer.ID{"bad"},
		},
		{
			name: "peer stops mid-transfer", peers: []peerSpec{{"bad", stall}, {"a", honest}},
			gateOnFirst: true, wantFailed: []peer.ID{"bad"},
		},
		{
			name: "trickling peer", peers: []peerSpec{{"bad", trickle}, {"a", honest}},
			gateOnFirst: true, wantFailed: []peer.ID{"bad"},
		},
		{
			name: "peer lies about size", peers: []peerSpec{{"bad", sizeLie}, {"a", honest}},
			wantBad: []peer.ID{"bad"},
		},
		{
			name: "lone liar, origin repairs", peers: []peerSpec{{"bad", liar}}, origin: true,
			wantBad: []peer.ID{"bad"}, wantOrigin: true,
		},
		{name: "no peer holds it: origin", peers: []peerSpec{{"a", noneHave}}, origin: true, wantOrigin: true},
		{name: "no peers: origin", origin: true, wantOrigin: true},
		{name: "no peers, no origin", wantErr: ErrNoSource},
		{name: "only liars, no origin", peers: []peerSpec{{"bad", liar}}, wantErr: content.ErrVerify},
		{name: "origin down", origin: true, originFail: true, wantErr: ErrStalled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pn := newPipeNet(t)
			st := openTestStore(t)
			f := newTestFetcher(t, st, pn.dial)
			gate := make(chan struct{})
			var infos []peer.AddrInfo
			for i, ps := range tc.peers {
				fp := &fakePeer{data: data, pieceSize: testPiece, mode: ps.mode}
				if tc.gateOnFirst {
					if i == 0 {
						fp.onRange = func() { close(gate) }
					} else {
						fp.gate = gate
					}
				}
				infos = append(infos, pn.add(ps.id, fp.serve))
			}
			opts := FetchOptions{PieceSize: testPiece, StallTimeout: 2 * time.Second, OriginDelay: time.Second}
			var o *memOrigin
			if tc.origin {
				o = &memOrigin{data: data}
				o.fail.Store(tc.originFail)
				opts.Origin = o.open
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err := f.fetch(ctx, h, size, infos, opts)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("fetch: %v, want %v", err, tc.wantErr)
				}
				if st.Has(h) {
					t.Fatal("failed fetch left the payload visible")
				}
				return
			}
			if err != nil {
				t.Fatalf("fetch: %v", err)
			}
			if !bytes.Equal(readBlob(t, st, h), data) {
				t.Fatal("fetched payload differs")
			}
			for _, p := range tc.wantBad {
				ps, _ := f.sb.peerStats(p)
				if ps.BadData == 0 || !f.sb.avoided(p) {
					t.Errorf("peer %s: %+v, want bad data recorded and avoided", p, ps)
				}
			}
			for _, p := range tc.wantFailed {
				ps, _ := f.sb.peerStats(p)
				if ps.Failures == 0 || !f.sb.avoided(p) {
					t.Errorf("peer %s: %+v, want failure recorded and avoided", p, ps)
				}
			}
			for _, ps := range tc.peers {
				if ps.mode != honest && ps.mode != noManifest {
					continue
				}
				if st, _ := f.sb.peerStats(ps.id); st.BadData != 0 || st.Failures != 0 {
					t.Errorf("honest peer %s blamed: %+v", ps.id, st)
				}
			}
			tot := f.sb.totals()
			if tc.wantOrigin != (tot.FromOrigin > 0) {
				t.Errorf("bytes from origin = %d, want some=%v", tot.FromOrigin, tc.wantOrigin)
			}
			if !tc.wantOrigin && tot.FromPeers < size {
				t.Errorf("bytes from peers = %d < size %d", tot.FromPeers, size)
			}
		})
	}
}

func TestFetchSpreadsOverPeers(t *testing.T) {
	data := randPayload(t, 64*testPiece, 2)
	h := content.Sum(data)
	pn := newPipeNet(t)
	st := openTestStore(t)
	f := newTestFetcher(t, st, pn.dial)
	var infos []peer.AddrInfo
	fps := map[peer.ID]*fakePeer{}
	for _, id := range []peer.ID{"a", "b", "c", "d"} {
		fp := &fakePeer{data: data, mode: honest}
		fps[id] = fp
		infos = append(infos, pn.add(id, fp.serve))
	}
	if err := f.fetch(context.Background(), h, int64(len(data)), infos, FetchOptions{PieceSize: testPiece}); err != nil {
		t.Fatal(err)
	}
	used := 0
	var total int64
	for id, fp := range fps {
		if fp.ranges.Load() > 0 {
			used++
		}
		ps, _ := f.sb.peerStats(id)
		total += ps.BytesIn
	}
	if used < 2 {
		t.Errorf("pieces came from %d peers, want several", used)
	}
	if total != int64(len(data)) {
		t.Errorf("bytes in = %d, want exactly the payload %d (no piece twice)", total, len(data))
	}
}

func TestFetchResumes(t *testing.T) {
	data := randPayload(t, 32*testPiece, 3)
	h := content.Sum(data)
	size := int64(len(data))
	pn := newPipeNet(t)
	st := openTestStore(t)
	f := newTestFetcher(t, st, pn.dial)
	// The first peer serves 10 ranges, then the download is interrupted.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := &fakePeer{data: data}
	a := pn.add("a", func(ctx2 context.Context, c io.ReadWriteCloser) {
		limited := &countingConn{ReadWriteCloser: c, limit: 10*testPiece + 4096, onLimit: cancel}
		first.serve(ctx2, limited)
	})
	err := f.fetch(ctx, h, size, []peer.AddrInfo{a}, FetchOptions{PieceSize: testPiece})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted fetch: %v, want context.Canceled", err)
	}
	if st.Has(h) {
		t.Fatal("partial download visible")
	}
	before := f.sb.totals().FromPeers
	if before < 8*testPiece {
		t.Fatalf("only %d bytes before the interruption", before)
	}
	b := pn.add("b", (&fakePeer{data: data}).serve)
	if err := f.fetch(context.Background(), h, size, []peer.AddrInfo{b}, FetchOptions{PieceSize: testPiece}); err != nil {
		t.Fatalf("resumed fetch: %v", err)
	}
	if !bytes.Equal(readBlob(t, st, h), data) {
		t.Fatal("resumed payload differs")
	}
	second, _ := f.sb.peerStats("b")
	if second.BytesIn > size-8*testPiece {
		t.Errorf("resumed fetch downloaded %d bytes; pieces from before were not reused", second.BytesIn)
	}
}

// countingConn calls onLimit once limit bytes were written.
type countingConn struct {
	io.ReadWriteCloser
	n, limit int
	onLimit  func()
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.ReadWriteCloser.Write(p)
	c.n += n
	if c.n >= c.limit && c.onLimit != nil {
		c.onLimit()
		c.onLimit = nil
	}
	return n, err
}

func TestDefaultPieceSize(t *testing.T) {
	tests := []struct {
		size, want int64
	}{
		{0, 64 << 10},
		{100 << 10, 64 << 10},
		{4 << 20, 64 << 10},       // 64 pieces: not below 64 KiB
		{16 << 20, 64 << 10},      // 256 pieces
		{32 << 20, 128 << 10},     // 256 pieces
		{64 << 20, 256 << 10},     // 256 pieces
		{100 << 20, 256 << 10},    // 400 pieces
		{2 << 30, 256 << 10},      // 8192 pieces
		{4 << 30, 512 << 10},      // 8192 pieces
		{100 << 30, 1 << 20},      // capped at 1 MiB
		{128 << 30, 1 << 20},      // MaxPieces pieces
		{128<<30 + 1, 2 << 20},    // more would be refused by peers
		{MaxPayloadSize, 8 << 20}, // MaxPieces pieces
	}
	for _, tc := range tests {
		got := DefaultPieceSize(tc.size)
		if got != tc.want {
			t.Errorf("DefaultPieceSize(%d) = %d, want %d", tc.size, got, tc.want)
		}
		if err := CheckGeometry(tc.size, got); err != nil {
			t.Errorf("DefaultPieceSize(%d) = %d: %v", tc.size, got, err)
		}
	}
}

// TestFetchSpreadsSessionsOverCandidates: every node of a site gets the
// same list of holders; the first is tried first (the caller's best source)
// and the rest in random order, so that a site does not crowd the first
// few holders of the list while the others' uploads sit idle.
func TestFetchSpreadsSessionsOverCandidates(t *testing.T) {
	data := randPayload(t, 4*testPiece, 5)
	h := content.Sum(data)
	pn := newPipeNet(t)
	var infos []peer.AddrInfo
	for _, id := range []peer.ID{"a", "b", "c", "d", "e", "f"} {
		infos = append(infos, pn.add(id, (&fakePeer{data: data}).serve))
	}
	second := map[peer.ID]int{}
	for range 20 {
		var mu sync.Mutex
		var dialed []peer.ID
		dial := func(ctx context.Context, ai peer.AddrInfo) (io.ReadWriteCloser, error) {
			mu.Lock()
			dialed = append(dialed, ai.ID)
			mu.Unlock()
			return pn.dial(ctx, ai)
		}
		st := openTestStore(t)
		f := newTestFetcher(t, st, dial)
		if err := f.fetch(context.Background(), h, int64(len(data)), infos, FetchOptions{PieceSize: testPiece, MaxPeers: 2}); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		if len(dialed) < 2 || !slices.Contains(dialed[:2], "a") {
			t.Fatalf("first dials %v: the caller's first candidate is not among them", dialed)
		}
		for _, id := range dialed[:2] {
			if id != "a" {
				second[id]++
			}
		}
		mu.Unlock()
	}
	if len(second) < 3 {
		t.Fatalf("the other session went to %v over 20 downloads: not spread over the candidates", second)
	}
}

// TestManifestKnown: a partial holder is asked for its manifest before its
// first piece, and again only for a piece no manifest vouches for: asking
// before each of its pieces cost 32 bytes a piece each time (4 % more bytes
// on the LAN with 64 KiB pieces).
func TestManifestKnown(t *testing.T) {
	sum := content.Sum([]byte("piece"))
	vouch := func(n int, pieces ...int) []content.Hash {
		c := make([]content.Hash, n)
		for _, i := range pieces {
			c[i] = sum
		}
		return c
	}
	const seed, partial, quiet peer.ID = "seed", "partial", "quiet"
	d := &download{asked: map[peer.ID]bool{}, claims: map[peer.ID][]content.Hash{}}
	if d.manifestKnownLocked(partial, 0) {
		t.Error("a peer never asked: known")
	}
	d.asked[partial] = true
	d.claims[partial] = vouch(4, 0)
	d.asked[quiet] = true // refused: nothing to wait for
	for _, tc := range []struct {
		p     peer.ID
		i     int
		known bool
	}{
		{partial, 0, true},  // it vouches
		{partial, 1, false}, // nobody vouches: ask it again
		{quiet, 1, true},    // it sends no manifest
	} {
		if got := d.manifestKnownLocked(tc.p, tc.i); got != tc.known {
			t.Errorf("before the seed's manifest: %s piece %d known = %v, want %v", tc.p, tc.i, got, tc.known)
		}
	}
	d.asked[seed] = true
	d.claims[seed] = vouch(4, 0, 1, 2, 3)
	for i := range 4 {
		if !d.manifestKnownLocked(partial, i) {
			t.Errorf("with the seed's manifest: partial piece %d not known", i)
		}
	}
}
