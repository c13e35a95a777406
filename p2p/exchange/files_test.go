package exchange

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/patchring/patchring/internal/testutil"
)

// memFiles serves files from memory; a path in block is served by a
// reader that sends its first byte and then blocks until the test ends or
// the stream is reset.
type memFiles struct {
	files map[string][]byte
	block map[string]chan struct{}

	mu     sync.Mutex
	opened []string
}

func (m *memFiles) OpenFile(ctx context.Context, path string) (io.ReadCloser, int64, error) {
	m.mu.Lock()
	m.opened = append(m.opened, path)
	m.mu.Unlock()
	if path == "unavailable" {
		return nil, 0, fmt.Errorf("%s: %w", path, ErrFileUnavailable)
	}
	if ch, ok := m.block[path]; ok {
		return &blockingReader{first: []byte{'x'}, release: ch, ctx: ctx}, 1 << 20, nil
	}
	data, ok := m.files[path]
	if !ok {
		return nil, 0, fmt.Errorf("%s: %w", path, ErrFileNotFound)
	}
	return io.NopCloser(bytes.NewReader(data)), int64(len(data)), nil
}

func (m *memFiles) openedPaths() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.opened...)
}

type blockingReader struct {
	first   []byte
	release chan struct{}
	ctx     context.Context
}

func (r *blockingReader) Read(p []byte) (int, error) {
	if len(r.first) > 0 {
		n := copy(p, r.first)
		r.first = r.first[n:]
		return n, nil
	}
	select {
	case <-r.release:
	case <-r.ctx.Done():
	}
	return 0, io.ErrUnexpectedEOF
}

func (r *blockingReader) Close() error { return nil }

func TestFileProtocol(t *testing.T) {
	timestamp := []byte(`{"signed":{"_type":"timestamp","version":7}}`)
	big := bytes.Repeat([]byte("0123456789abcdef"), 20000) // 320000 bytes: several chunks
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	files := &memFiles{
		files: map[string][]byte{"metadata/timestamp.json": timestamp, "metadata/3.targets.json": big, "empty": {}},
		block: map[string]chan struct{}{"slow": release},
	}
	server := newTestNode(t, Config{})
	client := newTestNode(t, Config{})
	mesh(server, client)
	server.ServeFiles(files)
	ai := server.AddrInfo()
	ctx := context.Background()

	fetch := func(path string, max int64) ([]byte, int64, error) {
		rc, n, err := client.FetchFile(ctx, ai, path, max)
		if err != nil {
			return nil, 0, err
		}
		defer rc.Close()
		data, err := io.ReadAll(rc)
		return data, n, err
	}
	for _, tc := range []struct {
		name string
		path string
		max  int64
		want []byte
	}{
		{"small file", "metadata/timestamp.json", 16384, timestamp},
		{"exactly the maximum", "metadata/timestamp.json", int64(len(timestamp)), timestamp},
		{"several chunks", "metadata/3.targets.json", 1 << 20, big},
		{"empty file", "empty", 10, []byte{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, n, err := fetch(tc.path, tc.max)
			if err != nil {
				t.Fatalf("FetchFile: %v", err)
			}
			if n != int64(len(tc.want)) || !bytes.Equal(data, tc.want) {
				t.Errorf("got %d bytes (announced %d), want %d", len(data), n, len(tc.want))
			}
		})
	}
	for _, tc := range []struct {
		name string
		path string
		max  int64
		want error
	}{
		{"not found", "metadata/4.root.json", 512000, ErrFileNotFound},
		{"longer than the maximum", "metadata/timestamp.json", int64(len(timestamp)) - 1, ErrFileTooLarge},
		{"cannot serve now", "unavailable", 100, ErrFileUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := fetch(tc.path, tc.max)
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("bad path refused before asking", func(t *testing.T) {
		before := len(files.openedPaths())
		for _, p := range []string{"", "/etc/passwd", "metadata/../../x", "a//b", `a\b`, strings.Repeat("a", MaxFilePath+1)} {
			if _, _, err := fetch(p, 10); err == nil || errors.Is(err, ErrFileNotFound) {
				t.Errorf("path %q: error %v, want a refusal that is not a 404", p, err)
			}
		}
		if got := files.openedPaths(); len(got) != before {
			t.Errorf("the server opened %v for bad paths", got[before:])
		}
	})
	t.Run("cancelled while reading", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		rc, _, err := client.FetchFile(cctx, ai, "slow", 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		// The server announced the file and then stalls (it never fills
		// its first chunk).
		errc := make(chan error, 1)
		go func() { _, err := io.ReadAll(rc); errc <- err }()
		cancel()
		select {
		case err := <-errc:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("read after cancel: %v, want context.Canceled", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("read did not stop after the context was cancelled")
		}
	})
}

func TestFileProtocolMembership(t *testing.T) {
	files := &memFiles{files: map[string][]byte{"metadata/timestamp.json": []byte("{}")}}
	server := newTestNode(t, Config{})
	member := newTestNode(t, Config{})
	outsider := newTestNode(t, Config{})
	bare := newTestNode(t, Config{}) // a member that serves no files
	mesh(server, member, bare)
	server.ServeFiles(files)
	ctx := context.Background()

	t.Run("member served", func(t *testing.T) {
		rc, _, err := member.FetchFile(ctx, server.AddrInfo(), "metadata/timestamp.json", 100)
		if err != nil {
			t.Fatal(err)
		}
		rc.Close()
	})
	t.Run("outsider refused by the server", func(t *testing.T) {
		// The outsider allows the server, the server does not allow it.
		outsider.SetAllowed([]peer.ID{server.ID()})
		_, _, err := outsider.FetchFile(ctx, server.AddrInfo(), "metadata/timestamp.json", 100)
		if err == nil || errors.Is(err, ErrFileNotFound) {
			t.Fatalf("outsider: error %v, want a refused connection", err)
		}
	})
	t.Run("non-member not asked", func(t *testing.T) {
		_, _, err := member.FetchFile(ctx, outsider.AddrInfo(), "metadata/timestamp.json", 100)
		if err == nil || !strings.Contains(err.Error(), "not a fleet member") {
			t.Fatalf("asking a non-member: error %v, want a refusal", err)
		}
	})
	t.Run("peer without files is no denial", func(t *testing.T) {
		_, _, err := member.FetchFile(ctx, bare.AddrInfo(), "metadata/2.root.json", 100)
		if err == nil || errors.Is(err, ErrFileNotFound) {
			t.Fatalf("peer that serves no files: error %v, want an error that is not a 404", err)
		}
	})
	if got := files.openedPaths(); len(got) != 1 {
		t.Errorf("server opened %v, want only the member's request", got)
	}
}

// TestFileProtocolLyingServer: the client holds a server to what it
// announced, whatever it sends.
func TestFileProtocolLyingServer(t *testing.T) {
	server := newTestNode(t, Config{})
	client := newTestNode(t, Config{})
	mesh(server, client)
	var reply func(w io.Writer)
	var mu sync.Mutex
	server.h.SetStreamHandler(protocol.ID(FileProtocolID), func(s network.Stream) {
		defer s.Close()
		if _, _, err := ReadFileRequest(s); err != nil {
			s.Reset()
			return
		}
		mu.Lock()
		r := reply
		mu.Unlock()
		r(s)
	})
	set := func(f func(w io.Writer)) { mu.Lock(); reply = f; mu.Unlock() }
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		reply func(w io.Writer)
		max   int64
		check func(t *testing.T, data []byte, openErr, readErr error)
	}{
		{"announces more than the maximum", func(w io.Writer) { writeFileHeader(w, FileOK, 1000); w.Write(make([]byte, 1000)) }, 100,
			func(t *testing.T, _ []byte, openErr, _ error) {
				if !errors.Is(openErr, ErrFileTooLarge) {
					t.Errorf("error %v, want ErrFileTooLarge", openErr)
				}
			}},
		{"sends more than announced", func(w io.Writer) { writeFileHeader(w, FileOK, 4); w.Write([]byte("abcdefgh")) }, 100,
			func(t *testing.T, data []byte, openErr, readErr error) {
				if openErr != nil || readErr != nil || string(data) != "abcd" {
					t.Errorf("got %q (%v, %v), want exactly the 4 announced bytes", data, openErr, readErr)
				}
			}},
		{"stops short", func(w io.Writer) { writeFileHeader(w, FileOK, 10); w.Write([]byte("abc")) }, 100,
			func(t *testing.T, _ []byte, openErr, readErr error) {
				if openErr != nil || !errors.Is(readErr, io.ErrUnexpectedEOF) {
					t.Errorf("errors %v, %v; want io.ErrUnexpectedEOF while reading", openErr, readErr)
				}
			}},
		{"garbage header", func(w io.Writer) { w.Write([]byte{9, 0, 0, 0, 0, 0, 0, 0, 1, 'x'}) }, 100,
			func(t *testing.T, _ []byte, openErr, _ error) {
				if !errors.Is(openErr, ErrFrame) {
					t.Errorf("error %v, want ErrFrame", openErr)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set(tc.reply)
			rc, _, err := client.FetchFile(ctx, server.AddrInfo(), "metadata/timestamp.json", tc.max)
			var data []byte
			var readErr error
			if err == nil {
				data, readErr = io.ReadAll(rc)
				rc.Close()
			}
			tc.check(t, data, err, readErr)
		})
	}
}

func TestFileWireRoundTrip(t *testing.T) {
	var b bytes.Buffer
	if err := writeFileRequest(&b, "metadata/12.root.json", 512000); err != nil {
		t.Fatal(err)
	}
	p, max, err := ReadFileRequest(&b)
	if err != nil || p != "metadata/12.root.json" || max != 512000 {
		t.Fatalf("request: %q %d %v", p, max, err)
	}
	b.Reset()
	writeFileError(&b, FileNotFound, "%s", strings.Repeat("x", 2000))
	st, n, msg, err := ReadFileResponse(&b)
	if err != nil || st != FileNotFound || n != 0 || len(msg) != maxErrorMessage {
		t.Fatalf("error response: %v %d %d bytes %v", st, n, len(msg), err)
	}
}

func FuzzReadFileRequest(f *testing.F) {
	var b bytes.Buffer
	writeFileRequest(&b, "metadata/timestamp.json", 16384)
	f.Add(b.Bytes())
	f.Add([]byte{0, 2, '.', '.', 0, 0, 0, 0, 0, 0, 0, 1})
	f.Add([]byte{0, 1, 'a', 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		p, max, err := ReadFileRequest(bytes.NewReader(data))
		if err != nil {
			return
		}
		if ValidFilePath(p) != nil || max <= 0 || max > MaxPayloadSize {
			t.Fatalf("accepted path %q max %d", p, max)
		}
		var out bytes.Buffer
		if err := writeFileRequest(&out, p, max); err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(data, out.Bytes()) {
			t.Fatalf("re-encoding differs: %x vs %x", out.Bytes(), data)
		}
	})
}

func FuzzReadFileResponse(f *testing.F) {
	var b bytes.Buffer
	writeFileHeader(&b, FileOK, 3)
	b.WriteString("abc")
	f.Add(b.Bytes())
	b.Reset()
	writeFileError(&b, FileNotFound, "metadata/2.root.json: not found")
	f.Add(b.Bytes())
	f.Add([]byte{2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{7, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		st, n, msg, err := ReadFileResponse(bytes.NewReader(data))
		if err != nil {
			return
		}
		if st > FileUnavailable || n < 0 || n > MaxPayloadSize || len(msg) > maxErrorMessage || (st != FileOK && n != 0) {
			t.Fatalf("accepted status %d length %d message of %d bytes", st, n, len(msg))
		}
	})
}

// BenchmarkFetchFile: one metadata-sized file (a 4 KiB timestamp) from a
// peer over real libp2p hosts on 127.0.0.1, a new stream per request on
// an established connection.
func BenchmarkFetchFile(b *testing.B) {
	data := bytes.Repeat([]byte("t"), 4096)
	server := newTestNode(b, Config{})
	client := newTestNode(b, Config{})
	mesh(server, client)
	server.ServeFiles(&memFiles{files: map[string][]byte{"metadata/timestamp.json": data}})
	ai := server.AddrInfo()
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		rc, _, err := client.FetchFile(ctx, ai, "metadata/timestamp.json", 16384)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil || n != int64(len(data)) {
			b.Fatalf("read %d bytes: %v", n, err)
		}
	}
	b.ReportMetric(float64(time.Since(start).Microseconds())/float64(b.N), "p2p_meta_fetch_4k@us")
}

// TestFileOneSlotPerPeer: a peer holding a file slot (a transfer that
// stalls) is answered busy for a second file, while another peer is
// served (issue 11, finding 5). Before the fix one peer could take all 8.
func TestFileOneSlotPerPeer(t *testing.T) {
	timestamp := []byte(`{"signed":{"_type":"timestamp","version":7}}`)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	files := &memFiles{
		files: map[string][]byte{"metadata/timestamp.json": timestamp},
		block: map[string]chan struct{}{"slow": release},
	}
	server := newTestNode(t, Config{})
	greedy := newTestNode(t, Config{})
	other := newTestNode(t, Config{})
	mesh(server, greedy, other)
	server.ServeFiles(files)
	ai := server.AddrInfo()
	ctx := context.Background()
	rc, _, err := greedy.FetchFile(ctx, ai, "slow", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, _, err := greedy.FetchFile(ctx, ai, "metadata/timestamp.json", 1<<10); !errors.Is(err, ErrFileUnavailable) {
		t.Fatalf("second file of the same peer: %v, want busy (unavailable)", err)
	}
	rc2, _, err := other.FetchFile(ctx, ai, "metadata/timestamp.json", 1<<10)
	if err != nil {
		t.Fatalf("file of another peer: %v", err)
	}
	_ = rc2.Close()
	if st := server.ServerStats().File; st.RefusedPeerBusy != fileBusyTries {
		t.Errorf("file stats %+v, want %d refusals (the client asks again) for a peer already holding a slot", st, fileBusyTries)
	}
}

// TestFileBackToBack: a client that asks for one file right after another
// is served every time, although the server releases its slot for the
// peer only after the last byte left (a TUF refresh through a peer asks
// for several files in a row: it failed with "one transfer per peer at a
// time" before FetchFile asked a busy peer again).
func TestFileBackToBack(t *testing.T) {
	data := bytes.Repeat([]byte("t"), 4096)
	server := newTestNode(t, Config{})
	client := newTestNode(t, Config{})
	mesh(server, client)
	server.ServeFiles(&memFiles{files: map[string][]byte{"metadata/timestamp.json": data}})
	ai := server.AddrInfo()
	ctx := t.Context()
	for i := range 300 {
		rc, _, err := client.FetchFile(ctx, ai, "metadata/timestamp.json", 16384)
		if err != nil {
			t.Fatalf("fetch %d: %v", i, err)
		}
		n, err := io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil || n != int64(len(data)) {
			t.Fatalf("fetch %d: read %d bytes: %v", i, n, err)
		}
	}
}

// TestFileSlowReaderCut: a client that reads a file slowly is cut at the
// transfer deadline (idle timeout + length at the minimum rate). Before the
// fix every chunk re-armed the write deadline and this transfer completed
// after about 13 s.
func TestFileSlowReaderCut(t *testing.T) {
	big := randPayload(t, 4<<20, 31)
	files := &memFiles{files: map[string][]byte{"big": big}}
	server := newTestNode(t, Config{IdleTimeout: time.Second, MinUploadRate: 1 << 20})
	client := newTestNode(t, Config{})
	mesh(server, client)
	server.ServeFiles(files)
	rc, n, err := client.FetchFile(context.Background(), server.AddrInfo(), "big", 8<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	buf := make([]byte, 32<<10)
	var got int64
	var rerr error
	for got < n {
		<-tick.C
		k, err := io.ReadFull(rc, buf[:min(int64(len(buf)), n-got)])
		got += int64(k)
		if err != nil {
			rerr = err
			break
		}
	}
	if rerr == nil {
		t.Fatalf("a reader at a third of the minimum rate received all %d bytes; want it cut at the deadline", got)
	}
	testutil.WaitFor(t, 10*time.Second, "the server counts the transfer timed out", func() error {
		if st := server.ServerStats().File; st.TimedOut != 1 {
			return fmt.Errorf("file stats %+v, want 1 timed out", st)
		}
		return nil
	})
	t.Logf("cut after %d of %d bytes: %v", got, n, rerr)
}
