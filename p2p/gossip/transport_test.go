package gossip

import (
	"bytes"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/patchring/patchring/internal/testutil"
)

// TestTransportPacketsAndStreams: packets arrive in buffers of their own
// size (not 64 KiB each), TCP connections arrive on the stream channel,
// both on the one port picked for port 0, and Shutdown ends the loops
// even with a packet nobody reads.
func TestTransportPacketsAndStreams(t *testing.T) {
	t.Parallel()
	tr, err := newTransport("127.0.0.1", 0, testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Shutdown() })
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(tr.port()))
	if ip, port, err := tr.FinalAdvertiseAddr("", 0); err != nil || !ip.Equal(net.IPv4(127, 0, 0, 1)) || port != tr.port() {
		t.Fatalf("advertise %v %d %v, want 127.0.0.1 %d", ip, port, err, tr.port())
	}

	msg := bytes.Repeat([]byte{7}, 100)
	if _, err := tr.WriteTo(msg, addr); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-tr.PacketCh():
		if !bytes.Equal(p.Buf, msg) || cap(p.Buf) > 2*len(msg) || p.From == nil || p.Timestamp.IsZero() {
			t.Fatalf("packet of %d bytes (cap %d) from %v", len(p.Buf), cap(p.Buf), p.From)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no packet")
	}

	c, err := tr.DialTimeout(addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case s := <-tr.StreamCh():
		s.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("no stream")
	}

	// A packet nobody reads does not hold Shutdown.
	if _, err := tr.WriteTo(msg, addr); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = tr.Shutdown(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return")
	}
}
