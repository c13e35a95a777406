package gossip

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-sockaddr"
	"github.com/hashicorp/memberlist"
)

// transport carries memberlist's packets (UDP) and streams (TCP) on one
// address and port, as memberlist's own NetTransport does, with one
// difference that matters to an idle agent: a received packet is copied
// into a buffer of its own size. NetTransport reads every packet into a
// fresh 64 KiB buffer, which the Go runtime zeroes, and which the agent's
// small heap then collects and hands back to the kernel: at a few packets a
// second that churn (page faults, TLB flushes, collections) cost more CPU
// than the gossip itself.
type transport struct {
	log      *slog.Logger
	bindAll  bool // bound to the unspecified address
	tcp      *net.TCPListener
	udp      *net.UDPConn
	packetCh chan *memberlist.Packet
	streamCh chan net.Conn
	closed   atomic.Bool
	done     chan struct{} // closed by Shutdown: nobody may read the channels any more
	wg       sync.WaitGroup
}

var _ memberlist.NodeAwareTransport = (*transport)(nil)

const (
	// maxPacket is the largest UDP payload.
	maxPacket = 65536
	// udpRecvBuffer is the socket receive buffer asked for (halved
	// until the kernel accepts one): bursts of gossip must not be dropped.
	udpRecvBuffer = 2 << 20
)

// newTransport listens on addr:port (port 0: one the kernel picks, the
// same for TCP and UDP; tried up to ten times, since another process may
// hold the UDP port of the TCP one).
func newTransport(addr string, port int, log *slog.Logger) (*transport, error) {
	ip := net.ParseIP(addr)
	if ip == nil {
		return nil, fmt.Errorf("gossip transport: bind address %q is not an IP address", addr)
	}
	tries := 1
	if port == 0 {
		tries = 10
	}
	var err error
	for range tries {
		var t *transport
		if t, err = listen(ip, port, log); err == nil {
			t.wg.Add(2)
			go t.acceptLoop()
			go t.readLoop()
			return t, nil
		}
		if !errors.Is(err, errPortTaken) {
			break
		}
	}
	return nil, err
}

var errPortTaken = errors.New("UDP port taken")

func listen(ip net.IP, port int, log *slog.Logger) (*transport, error) {
	tcp, err := net.ListenTCP("tcp", &net.TCPAddr{IP: ip, Port: port})
	if err != nil {
		return nil, fmt.Errorf("gossip transport: listen on TCP %s: %w", net.JoinHostPort(ip.String(), strconv.Itoa(port)), err)
	}
	bound := tcp.Addr().(*net.TCPAddr).Port
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip, Port: bound})
	if err != nil {
		_ = tcp.Close()
		err = fmt.Errorf("gossip transport: listen on UDP %s: %w", net.JoinHostPort(ip.String(), strconv.Itoa(bound)), err)
		if port == 0 {
			err = fmt.Errorf("%w: %w", errPortTaken, err)
		}
		return nil, err
	}
	for size := udpRecvBuffer; size > 0; size /= 2 {
		if udp.SetReadBuffer(size) == nil {
			break
		}
	}
	return &transport{log: log, bindAll: ip.IsUnspecified(), tcp: tcp, udp: udp,
		packetCh: make(chan *memberlist.Packet), streamCh: make(chan net.Conn), done: make(chan struct{})}, nil
}

// port is the port bound.
func (t *transport) port() int { return t.tcp.Addr().(*net.TCPAddr).Port }

// FinalAdvertiseAddr implements memberlist.Transport: the address given,
// else the bound one, else (bound to all addresses) a private address of
// this machine.
func (t *transport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	if ip != "" {
		a := net.ParseIP(ip)
		if a == nil {
			return nil, 0, fmt.Errorf("gossip transport: advertise address %q is not an IP address", ip)
		}
		if a4 := a.To4(); a4 != nil {
			a = a4
		}
		return a, port, nil
	}
	if !t.bindAll {
		return t.tcp.Addr().(*net.TCPAddr).IP, t.port(), nil
	}
	priv, err := sockaddr.GetPrivateIP()
	if err != nil {
		return nil, 0, fmt.Errorf("gossip transport: find a private address to advertise: %w", err)
	}
	a := net.ParseIP(priv)
	if a == nil {
		return nil, 0, errors.New("gossip transport: no private address to advertise; set advertise_addr")
	}
	return a, t.port(), nil
}

// WriteTo implements memberlist.Transport.
func (t *transport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress implements memberlist.NodeAwareTransport.
func (t *transport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	ua, err := net.ResolveUDPAddr("udp", a.Addr)
	if err != nil {
		return time.Time{}, err
	}
	_, err = t.udp.WriteTo(b, ua)
	return time.Now(), err
}

// PacketCh implements memberlist.Transport.
func (t *transport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }

// DialTimeout implements memberlist.Transport.
func (t *transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout implements memberlist.NodeAwareTransport.
func (t *transport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	return d.Dial("tcp", a.Addr)
}

// StreamCh implements memberlist.Transport.
func (t *transport) StreamCh() <-chan net.Conn { return t.streamCh }

// Shutdown implements memberlist.Transport: it closes both sockets and
// waits for the loops.
func (t *transport) Shutdown() error {
	if t.closed.Swap(true) {
		return nil
	}
	close(t.done)
	_ = t.tcp.Close()
	_ = t.udp.Close()
	t.wg.Wait()
	return nil
}

// readLoop hands every packet to memberlist in a buffer of its size.
func (t *transport) readLoop() {
	defer t.wg.Done()
	buf := make([]byte, maxPacket)
	for {
		n, from, err := t.udp.ReadFrom(buf)
		at := time.Now()
		if err != nil {
			if t.closed.Load() {
				return
			}
			t.log.Debug("gossip transport: read UDP", "err", err)
			continue
		}
		if n == 0 {
			continue // memberlist wants at least the message type
		}
		select {
		case t.packetCh <- &memberlist.Packet{Buf: append([]byte(nil), buf[:n]...), From: from, Timestamp: at}:
		case <-t.done:
			return
		}
	}
}

// acceptLoop hands every TCP connection to memberlist, backing off (5 ms
// doubling to 1 s) while accepting fails.
func (t *transport) acceptLoop() {
	defer t.wg.Done()
	var delay time.Duration
	for {
		c, err := t.tcp.Accept()
		if err != nil {
			if t.closed.Load() {
				return
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			t.log.Warn("gossip transport: accept TCP", "err", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		select {
		case t.streamCh <- c:
		case <-t.done:
			_ = c.Close()
			return
		}
	}
}
