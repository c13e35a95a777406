//go:build linux

package sitetest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/patchring/patchring/daemon/apitypes"
	"github.com/patchring/patchring/platform/neighbor"
)

const policyUnmanaged = `schema: 1
name: %s
expires: 2035-01-01T00:00:00Z
rings:
  - name: all
    default: true
    defer: 0s
unmanaged:
  interval: 2s
  expiry: 15s
%s`

// sweepRate is the policy's sweep rate in the test (probes per second).
const sweepRate = 40

// TestSiteListsUnmanagedDevices: three agents on the site's bridge and
// four namespaces that run no agent and talk on the LAN (a ping, an HTTP
// request, a DHCP-like broadcast, an mDNS announcement). Each device is
// listed once by every member with its MAC and address, no agent is ever
// listed, and a device that leaves expires. A fifth, silent device (never
// sends; IPv6 off) is found only once the policy enables the sweep, whose
// ARP requests a capture on the LAN counts: one node sends them, once per
// address of the subnet, within the rate. With discovery off by policy
// nothing is listed or recorded, and no probe is sent.
func TestSiteListsUnmanagedDevices(t *testing.T) {
	// Mostly waits on timers (expiries, deadlines): runs beside the
	// other waiting tests once the WAN-measuring ones are done.
	t.Parallel()
	const agents, devices = 3, 4
	s := newSite(t, siteConfig{Nodes: agents, Devices: devices})
	s.origin.publishPolicy(t, fmt.Sprintf(policyUnmanaged, "unmanaged-on", ""))
	s.startNodes(t)
	s.waitConverged(t, 2*time.Minute, "unmanaged-on")

	agentMAC := map[string]bool{}
	agentIP := map[string]bool{}
	for i := range agents {
		agentMAC[macIn(t, s.net.nodes[i])] = true
		agentIP[nodeIP(i)] = true
	}
	type device struct {
		name, ns, ip, mac, hostname string
		talk                        func(ctx context.Context) error
	}
	var devs []*device
	target := nodeIP(0)
	for i, kind := range []string{"ping", "http", "dhcp", "mdns"} {
		d := &device{name: kind, ns: s.net.nodes[agents+i], ip: nodeIP(agents + i)}
		d.mac = macIn(t, d.ns)
		switch kind {
		case "ping":
			d.talk = func(ctx context.Context) error { return pingFrom(d.ns, target) }
		case "http":
			d.talk = func(ctx context.Context) error { return httpFrom(ctx, d.ns, "http://"+target+":4001/") }
		case "dhcp":
			d.hostname = "dhcp-dev"
			d.talk = func(ctx context.Context) error { return dhcpFrom(d.ns, d.mac, d.hostname) }
		case "mdns":
			d.hostname = "mdns-dev"
			d.talk = func(ctx context.Context) error { return mdnsFrom(d.ns, d.hostname, d.ip) }
		}
		devs = append(devs, d)
	}
	silent := addSilentDevice(t, s.net, "10.200.1.200")

	// Every device talks every 2 s until the test stops it.
	stops := map[string]context.CancelFunc{}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		for _, stop := range stops {
			stop()
		}
		wg.Wait()
	})
	for _, d := range devs {
		ctx, cancel := context.WithCancel(context.Background())
		stops[d.name] = cancel
		wg.Go(func() {
			for {
				if err := d.talk(ctx); err != nil && ctx.Err() == nil {
					t.Logf("%s device: %v", d.name, err)
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(2 * time.Second):
				}
			}
		})
	}

	var violations []string
	list := func(ctx context.Context, i int) (apitypes.Unmanaged, error) {
		u, err := s.nodes[i].c.Unmanaged(ctx)
		if err != nil {
			return u, err
		}
		for _, d := range u.Devices {
			if agentMAC[d.MAC] || slices.ContainsFunc(d.Addrs, func(a string) bool { return agentIP[a] }) {
				violations = append(violations, fmt.Sprintf("%s lists an agent: %+v", s.nodes[i].hostname, d))
			}
		}
		return u, nil
	}
	listedOnAll := func(want []*device, gone []string) func(ctx context.Context) (bool, string) {
		return func(ctx context.Context) (bool, string) {
			for i := range agents {
				u, err := list(ctx, i)
				if err != nil {
					return false, err.Error()
				}
				for _, d := range want {
					n := 0
					for _, got := range u.Devices {
						if got.MAC != d.mac {
							continue
						}
						n++
						if !slices.Contains(got.Addrs, d.ip) || got.Hostname != d.hostname || got.Vendor != "(locally administered)" || len(got.SeenBy) == 0 {
							return false, fmt.Sprintf("%s lists the %s device as %+v, want %s %s", s.nodes[i].hostname, d.name, got, d.ip, d.hostname)
						}
					}
					if n != 1 {
						return false, fmt.Sprintf("%s lists the %s device (%s) %d times; list %+v", s.nodes[i].hostname, d.name, d.mac, n, u.Devices)
					}
				}
				for _, mac := range gone {
					if slices.ContainsFunc(u.Devices, func(got apitypes.UnmanagedDevice) bool { return got.MAC == mac }) {
						return false, fmt.Sprintf("%s still lists %s", s.nodes[i].hostname, mac)
					}
				}
			}
			return true, ""
		}
	}
	start := time.Now()
	s.waitFor(t, 90*time.Second, "every talking device listed once on every member", listedOnAll(devs, []string{silent.mac}))
	t.Logf("talking devices listed on every member after %s", time.Since(start).Round(time.Second))
	// The admin's command shows them on every member.
	for _, n := range s.nodes {
		out, err := exec.Command(patchringCLI.Path(t), "--socket", n.sock, "fleet", "unmanaged").CombinedOutput()
		if err != nil {
			t.Fatalf("%s: patchring fleet unmanaged: %v\n%s", n.hostname, err, out)
		}
		for _, d := range devs {
			line := ""
			for _, l := range strings.Split(string(out), "\n") {
				if strings.HasPrefix(l, d.mac+" ") {
					line = l
				}
			}
			if line == "" || !strings.Contains(line, d.ip) || !strings.Contains(line, "(locally administered)") || (d.hostname != "" && !strings.Contains(line, d.hostname)) {
				t.Errorf("%s: patchring fleet unmanaged shows the %s device as %q:\n%s", n.hostname, d.name, line, out)
			}
		}
		if bytes.Contains(out, []byte(silent.mac)) {
			t.Errorf("%s: patchring fleet unmanaged lists the silent device before any sweep:\n%s", n.hostname, out)
		}
	}

	// The mDNS device leaves the LAN (its port on the bridge is removed).
	stops["mdns"]()
	run(t, "ip", "-n", s.net.router, "link", "del", fmt.Sprintf("p%02d", agents+3))
	left := time.Now()
	s.waitFor(t, 90*time.Second, "the device that left expires", listedOnAll(devs[:3], []string{devs[3].mac, silent.mac}))
	t.Logf("the device that left expired after %s (expiry 15s)", time.Since(left).Round(time.Second))

	// The sweep, enabled for the site's subnet: the silent device is found.
	capture := startARPCapture(t, silent.ns)
	s.origin.publishPolicy(t, fmt.Sprintf(policyUnmanaged, "unmanaged-sweep",
		fmt.Sprintf("  sweep:\n    subnets: [10.200.1.0/24]\n    rate: %d\n    every: 1h\n", sweepRate)))
	s.waitConverged(t, time.Minute, "unmanaged-sweep")
	silentDev := &device{name: "silent", ip: silent.ip, mac: silent.mac}
	s.waitFor(t, 2*time.Minute, "the silent device found by the sweep on every member", listedOnAll(append(devs[:3:3], silentDev), nil))
	// The sweep ends: 253 addresses less the sweeper's own.
	var probes int64
	s.waitFor(t, time.Minute, "the sweep done", func(ctx context.Context) (bool, string) {
		probes = 0
		for i := range agents {
			u, err := list(ctx, i)
			if err != nil {
				return false, err.Error()
			}
			probes += u.Probes
		}
		return probes >= 253, fmt.Sprintf("%d probes", probes)
	})
	frames := capture.stop()
	// Probes are the ARP requests for addresses nothing in the test uses
	// (nobody else asks for them).
	used := map[string]bool{routerLANIP: true, silent.ip: true}
	for i := range agents + devices {
		used[nodeIP(i)] = true
	}
	senders := map[string]int{}
	perTarget := map[netip.Addr]int{}
	var times []time.Time
	subnet := netip.MustParsePrefix("10.200.1.0/24")
	for _, f := range frames {
		if used[f.target.String()] {
			continue
		}
		if !agentMAC[f.sender] {
			t.Errorf("ARP request for %s from %s, not an agent", f.target, f.sender)
			continue
		}
		if !subnet.Contains(f.target) {
			t.Errorf("probe for %s outside the subnet", f.target)
		}
		senders[f.sender]++
		perTarget[f.target]++
		times = append(times, f.at)
	}
	unused := 254 - len(used)
	if len(senders) != 1 {
		t.Errorf("probes from %d agents (%v), want one node per site", len(senders), senders)
	}
	if len(perTarget) != unused {
		t.Errorf("%d unused addresses probed, want all %d", len(perTarget), unused)
	}
	for a, n := range perTarget {
		if n != 1 {
			t.Errorf("%s probed %d times in one sweep", a, n)
		}
	}
	if probes != 253 {
		t.Errorf("members report %d probes, want 253 (the /24's hosts less the sweeper)", probes)
	}
	if capture.unstamped > 0 {
		t.Errorf("%d captured frames came without the kernel's arrival time (SO_TIMESTAMPNS)", capture.unstamped)
	}
	maxPerSecond := 0
	for i := range times {
		n := 0
		for j := i; j < len(times) && times[j].Sub(times[i]) < time.Second; j++ {
			n++
		}
		maxPerSecond = max(maxPerSecond, n)
	}
	// The sweeper's ticker sends at most one late tick at once, and a
	// one-second window can hold one tick more than the rate; the kernel
	// stamps frames on arrival, which a loaded machine can delay by a few
	// milliseconds: 10% over the rate is a limiter that works.
	if maxPerSecond > max(sweepRate+2, sweepRate*11/10) {
		t.Errorf("%d probes within one second, the policy allows %d/s", maxPerSecond, sweepRate)
	}
	t.Logf("sweep: %d probes counted by the members, %d captured for unused addresses, at most %d in a second (rate %d/s)", probes, len(times), maxPerSecond, sweepRate)

	// Discovery off: nothing listed, nothing recorded, nothing sent.
	capture = startARPCapture(t, silent.ns)
	s.origin.publishPolicy(t, fmt.Sprintf(policyUnmanaged, "unmanaged-off", "")+"  enabled: false\n")
	s.waitConverged(t, time.Minute, "unmanaged-off")
	s.waitFor(t, 30*time.Second, "discovery off on every member", func(ctx context.Context) (bool, string) {
		for i := range agents {
			u, err := list(ctx, i)
			if err != nil {
				return false, err.Error()
			}
			if u.Enabled || len(u.Devices) != 0 || u.Observed != 0 {
				return false, fmt.Sprintf("%s: %+v", s.nodes[i].hostname, u)
			}
		}
		return true, ""
	})
	// Devices keep talking for three intervals; nothing is recorded.
	time.Sleep(6 * time.Second) // a span the daemons run through, not a wait for a condition
	for i := range agents {
		u, err := list(t.Context(), i)
		if err != nil || u.Enabled || len(u.Devices) != 0 || u.Observed != 0 {
			t.Errorf("%s with discovery off: %+v %v", s.nodes[i].hostname, u, err)
		}
	}
	for _, f := range capture.stop() {
		if !used[f.target.String()] {
			t.Errorf("with discovery off, %s asked for %s", f.sender, f.target)
		}
	}
	if len(violations) > 0 {
		t.Errorf("agents listed as unmanaged:\n%s", strings.Join(violations, "\n"))
	}
}

// nsDo runs fn on a thread inside namespace ns; sockets fn opens stay in
// ns. The thread returns to its own namespace afterwards, or, should that
// fail, stays locked and ends with its goroutine.
func nsDo(ns string, fn func() error) error {
	ch := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			ch <- err
			return
		}
		defer self.Close()
		f, err := os.Open(filepath.Join("/run/netns", ns))
		if err != nil {
			ch <- fmt.Errorf("open namespace %s: %w", ns, err)
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- fmt.Errorf("enter namespace %s: %w", ns, err)
			return
		}
		err = fn()
		if unix.Setns(int(self.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		ch <- err
	}()
	return <-ch
}

// macIn is the MAC address of eth0 in namespace ns.
func macIn(t testing.TB, ns string) string {
	t.Helper()
	var mac string
	if err := nsDo(ns, func() error {
		ifc, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		mac = ifc.HardwareAddr.String()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return mac
}

// pingFrom sends one ICMP echo request from ns to dst.
func pingFrom(ns, dst string) error {
	return nsDo(ns, func() error {
		c, err := net.Dial("ip4:icmp", dst)
		if err != nil {
			return err
		}
		defer c.Close()
		msg := []byte{8, 0, 0, 0, 0x12, 0x34, 0, 1, 'p', 'i', 'n', 'g'}
		var sum uint32
		for i := 0; i < len(msg); i += 2 {
			sum += uint32(msg[i])<<8 | uint32(msg[i+1])
		}
		for sum>>16 != 0 {
			sum = sum&0xffff + sum>>16
		}
		binary.BigEndian.PutUint16(msg[2:4], ^uint16(sum))
		_, err = c.Write(msg)
		return err
	})
}

// httpFrom makes an HTTP request from ns (the server's answer does not
// matter).
func httpFrom(ctx context.Context, ns, url string) error {
	tr := &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return dialIn(ctx, ns, network, addr)
	}}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err == nil {
		resp.Body.Close()
	}
	return nil
}

// dhcpFrom broadcasts a DHCPDISCOVER from ns (port 68 to 255.255.255.255:67)
// with the client's MAC and a host name; nobody answers.
func dhcpFrom(ns, mac, hostname string) error {
	hw, err := net.ParseMAC(mac)
	if err != nil {
		return err
	}
	b := make([]byte, 240)
	b[0], b[1], b[2] = 1, 1, 6
	binary.BigEndian.PutUint32(b[4:8], 0x5eed)
	copy(b[28:34], hw)
	binary.BigEndian.PutUint32(b[236:240], 0x63825363)
	b = append(b, 53, 1, 1, 12, byte(len(hostname)))
	b = append(b, hostname...)
	b = append(b, 255)
	return nsDo(ns, func() error {
		c, err := net.ListenPacket("udp4", ":68")
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.WriteTo(b, &net.UDPAddr{IP: net.IPv4bcast, Port: 67})
		return err
	})
}

// mdnsFrom multicasts an unsolicited mDNS response from ns: NAME.local A ip.
func mdnsFrom(ns, name, ip string) error {
	b := []byte{0, 0, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0}
	for _, l := range []string{name, "local"} {
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	a := netip.MustParseAddr(ip).As4()
	b = append(b, 0, 0, 1, 0x80, 1, 0, 0, 0, 120, 0, 4, a[0], a[1], a[2], a[3])
	return nsDo(ns, func() error {
		c, err := net.DialUDP("udp4", &net.UDPAddr{Port: 5353}, &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251), Port: 5353})
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write(b)
		return err
	})
}

type silentDevice struct{ ns, ip, mac string }

// addSilentDevice adds a namespace on the site's bridge that never sends
// anything on its own: IPv6 is off before its link comes up (no DAD, no
// router solicitation), and nothing runs in it. Its kernel still answers
// ARP requests for its address. Deleted in t.Cleanup.
func addSilentDevice(t testing.TB, tp *topo, ip string) *silentDevice {
	t.Helper()
	d := &silentDevice{ns: tp.prefix + "-silent", ip: ip}
	run(t, "ip", "netns", "add", d.ns)
	t.Cleanup(func() { tp.destroy(t, []string{d.ns}) })
	run(t, "ip", "netns", "exec", d.ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	run(t, "ip", "link", "add", "psil", "netns", tp.router, "type", "veth", "peer", "name", "eth0", "netns", d.ns)
	run(t, "ip", "-n", tp.router, "link", "set", "psil", "master", "br0", "up")
	run(t, "ip", "-n", d.ns, "addr", "add", ip+"/24", "dev", "eth0")
	run(t, "ip", "-n", d.ns, "link", "set", "eth0", "up")
	d.mac = macIn(t, d.ns)
	return d
}

type arpFrame struct {
	sender string
	target netip.Addr
	at     time.Time
}

type arpCapture struct {
	fd     int
	done   chan struct{}
	stopFn func()
	mu     sync.Mutex
	frames []arpFrame
	// unstamped counts frames the kernel gave no arrival time: the rate
	// check would be meaningless on them.
	unstamped int
}

// startARPCapture records the ARP requests eth0 of ns receives, on a
// packet socket opened inside ns, until stop (or the test's end).
func startARPCapture(t testing.TB, ns string) *arpCapture {
	t.Helper()
	c := &arpCapture{done: make(chan struct{})}
	err := nsDo(ns, func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ARP)))
		if err != nil {
			return err
		}
		ifc, err := net.InterfaceByName("eth0")
		if err != nil {
			unix.Close(fd)
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: ifc.Index}); err != nil {
			unix.Close(fd)
			return err
		}
		tv := unix.NsecToTimeval(int64(200 * time.Millisecond))
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			unix.Close(fd)
			return err
		}
		// The kernel stamps each frame on arrival: a capture goroutine
		// that runs late on a loaded machine must not bunch the times.
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
			unix.Close(fd)
			return err
		}
		c.fd = fd
		return nil
	})
	if err != nil {
		t.Fatalf("arp capture in %s: %v", ns, err)
	}
	stopped := make(chan struct{})
	go func() {
		defer close(c.done)
		buf := make([]byte, 1500)
		oob := make([]byte, unix.CmsgSpace(16))
		for {
			select {
			case <-stopped:
				return
			default:
			}
			n, oobn, _, _, err := unix.Recvmsg(c.fd, buf, oob, 0)
			if err != nil {
				if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
					continue
				}
				return
			}
			if dst, ok := neighbor.ARPTarget(buf[:n]); ok {
				at, stamped := arrival(oob[:oobn])
				c.mu.Lock()
				c.frames = append(c.frames, arpFrame{sender: net.HardwareAddr(buf[6:12]).String(), target: dst, at: at})
				if !stamped {
					c.unstamped++
				}
				c.mu.Unlock()
			}
		}
	}()
	var once sync.Once
	stop := func() { once.Do(func() { close(stopped); <-c.done; unix.Close(c.fd) }) }
	c.stopFn = stop
	t.Cleanup(stop)
	return c
}

// arrival returns the kernel's receive time stamp (SCM_TIMESTAMPNS, a
// struct timespec of two native 64-bit words on linux/amd64 and arm64)
// among a frame's control messages; false if there is none.
func arrival(oob []byte) (time.Time, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return time.Time{}, false
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS && len(m.Data) >= 16 {
			sec := int64(binary.NativeEndian.Uint64(m.Data[0:8]))
			nsec := int64(binary.NativeEndian.Uint64(m.Data[8:16]))
			return time.Unix(sec, nsec), true
		}
	}
	return time.Time{}, false
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// stop ends the capture and returns the requests it recorded.
func (c *arpCapture) stop() []arpFrame {
	c.stopFn()
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.frames)
}
