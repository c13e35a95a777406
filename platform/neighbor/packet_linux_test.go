package neighbor

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// testNetns makes a network namespace with a veth pair a/b (MACs set,
// IPv6 off so the kernel sends nothing of its own) and removes it when
// the test ends.
func testNetns(t *testing.T) (ns string, a, b MAC) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces and packet sockets")
	}
	ns = fmt.Sprintf("prnb%d", os.Getpid())
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	ip("netns", "add", ns)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v\n%s", ns, err, out)
		}
	})
	a, b = MAC{2, 0xaa, 0, 0, 0, 1}, MAC{2, 0xbb, 0, 0, 0, 2}
	ip("-n", ns, "link", "add", "name", "va", "address", a.String(), "type", "veth", "peer", "name", "vb", "address", b.String())
	for _, l := range []string{"va", "vb"} {
		if out, err := exec.Command("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf."+l+".disable_ipv6=1").CombinedOutput(); err != nil {
			t.Fatalf("disable ipv6 on %s: %v\n%s", l, err, out)
		}
		ip("-n", ns, "link", "set", l, "up")
	}
	return ns, a, b
}

// inNetns runs fn on a thread in ns; the thread is never used again.
func inNetns(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // not unlocked: the thread ends with this goroutine
		f, err := os.Open("/run/netns/" + ns)
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// TestListenSeesOnlyWhatNeighboursAnnounce listens on a veth in a
// namespace while its peer sends: a node's unicast traffic (a ping to
// the listener) and the listener's own frames do not reach the parser;
// ARP does; and the listener ends when its context does.
func TestListenSeesOnlyWhatNeighboursAnnounce(t *testing.T) {
	ns, macA, macB := testNetns(t)
	var idxA, idxB int
	if err := inNetns(ns, func() error {
		for name, idx := range map[string]*int{"va": &idxA, "vb": &idxB} {
			ifc, err := netInterfaceIndex(name)
			if err != nil {
				return err
			}
			*idx = ifc
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []Observation
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- inNetns(ns, func() error {
			return Listen(ctx, Iface{Name: "va", Index: idxA, MAC: macA}, func(o Observation) {
				mu.Lock()
				seen = append(seen, o)
				mu.Unlock()
			})
		})
	}()
	sent := func(ip string) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, o := range seen {
			for _, a := range o.Addrs {
				if a.String() == ip {
					return true
				}
			}
		}
		return false
	}
	send := func(ifindex int, frame []byte) {
		t.Helper()
		if err := inNetns(ns, func() error {
			fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			to := &unix.SockaddrLinklayer{Ifindex: ifindex, Halen: 6}
			copy(to.Addr[:], frame[0:6])
			return unix.Sendto(fd, frame, 0, to)
		}); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
	waitSeen := func(ip string, frame []byte) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !sent(ip) {
			if time.Now().After(deadline) {
				t.Fatalf("the listener did not report %s", ip)
			}
			send(idxB, frame)
			time.Sleep(20 * time.Millisecond)
		}
	}
	target := netip.MustParseAddr("10.9.0.1")
	// The listener is up once it reports the first ARP request.
	waitSeen("10.9.0.50", ARPRequest(macB, netip.MustParseAddr("10.9.0.50"), target))
	// Unicast IP from b and anything a sends itself, then ARP again: a
	// veth delivers in order, so once the second ARP is reported the
	// others were filtered, not late.
	send(idxB, eth(macA, macB, etherTypeIPv4, ipv4(netip.MustParseAddr("10.9.0.51"), target, 1, []byte{8, 0, 0, 0})))
	send(idxA, ARPRequest(macA, netip.MustParseAddr("10.9.0.52"), target))
	send(idxA, eth(bcast, macA, etherTypeIPv4, ipv4(netip.MustParseAddr("10.9.0.53"), netip.MustParseAddr("10.9.0.255"), 17, udp(1, 2, nil))))
	waitSeen("10.9.0.54", ARPRequest(macB, netip.MustParseAddr("10.9.0.54"), target))
	for _, ip := range []string{"10.9.0.51", "10.9.0.52", "10.9.0.53"} {
		if sent(ip) {
			t.Errorf("the listener reported %s, which the filter should have dropped: %+v", ip, seen)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Listen ended with %v after its context ended", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Listen did not end within 20s of its context")
	}
}

func netInterfaceIndex(name string) (int, error) {
	ifs, err := Interfaces()
	if err != nil {
		return 0, err
	}
	for _, i := range ifs {
		if i.Name == name {
			return i.Index, nil
		}
	}
	return 0, fmt.Errorf("no interface %s", name)
}
