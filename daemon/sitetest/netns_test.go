//go:build linux

package sitetest

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// Addresses inside the namespaces a test creates (nothing outside them is
// touched). The WAN is 10.200.0.0/24 between the origin and the site
// router; the site LAN is 10.200.1.0/24 on the router's bridge.
const (
	routerWANIP = "10.200.0.1"
	originIP    = "10.200.0.2" // apt indices and TUF metadata
	cdnIP       = "10.200.0.3" // the apt pool (payloads), reached through a redirect
	routerLANIP = "10.200.1.1"

	// Class ids of the classifier on the router's LAN side: payload bytes
	// from the CDN host, and everything else that came over the WAN.
	classPayload = "1:10"
	classOther   = "1:20"
)

func nodeIP(i int) string { return fmt.Sprintf("10.200.1.%d", 10+i) }

// topo is a test's network: an origin namespace, a router namespace with
// the WAN link and the site's LAN bridge, and one namespace per node.
//
//	origin ns            router ns ("lan")                 node ns (x N)
//	wan0 10.200.0.2/.3 --- wan1 10.200.0.1   br0 10.200.1.1 --- pNN ~ eth0 10.200.1.(10+i)
//	tbf (downstream)       tbf (upstream)    htb classifier
//
// The WAN is shaped in both directions with tbf. br0 carries every packet
// routed from the WAN to the LAN (nodes talk to each other through the
// bridge without passing br0's own queue), so an htb classifier there
// splits the downstream WAN bytes into payload (from the CDN host) and
// other (indices, metadata, redirects) without shaping anything.
type topo struct {
	prefix string
	origin string
	router string
	nodes  []string // namespace of node i
	rate   string
}

// requireNetTools fails t when the test cannot build namespaces.
func requireNetTools(t testing.TB) {
	t.Helper()
	for _, tool := range []string{"ip", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found in PATH: install the Debian package iproute2", tool)
		}
	}
	if os.Geteuid() != 0 {
		t.Fatalf("the site tests create network namespaces and need root (euid %d)", os.Geteuid())
	}
}

// run runs a command and fails t with its output when it fails.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// newTopo builds the network for n nodes with the WAN shaped to rate (a tc
// rate, e.g. "20mbit"). Everything is deleted in t.Cleanup.
func newTopo(t testing.TB, n int, rate string) *topo {
	t.Helper()
	requireNetTools(t)
	if n < 1 || n > 200 {
		t.Fatalf("newTopo: %d nodes: want 1..200", n)
	}
	var rnd [3]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatal(err)
	}
	removeStaleNamespaces(t)
	tp := &topo{prefix: fmt.Sprintf("prs%dx%s", os.Getpid(), hex.EncodeToString(rnd[:])), rate: rate}
	tp.origin, tp.router = tp.prefix+"-o", tp.prefix+"-r"
	var created []string
	t.Cleanup(func() { tp.destroy(t, created) })
	addNS := func(name string) {
		run(t, "ip", "netns", "add", name)
		created = append(created, name)
	}
	ipn := func(ns string, args ...string) { run(t, "ip", append([]string{"-n", ns}, args...)...) }
	tcn := func(ns string, args ...string) { run(t, "tc", append([]string{"-n", ns}, args...)...) }

	addNS(tp.origin)
	addNS(tp.router)
	run(t, "ip", "link", "add", "wan1", "netns", tp.router, "type", "veth", "peer", "name", "wan0", "netns", tp.origin)
	ipn(tp.router, "link", "add", "br0", "type", "bridge")
	ipn(tp.router, "addr", "add", routerWANIP+"/24", "dev", "wan1")
	ipn(tp.router, "addr", "add", routerLANIP+"/24", "dev", "br0")
	ipn(tp.origin, "addr", "add", originIP+"/24", "dev", "wan0")
	ipn(tp.origin, "addr", "add", cdnIP+"/24", "dev", "wan0")
	for _, l := range []struct{ ns, dev string }{{tp.origin, "lo"}, {tp.origin, "wan0"}, {tp.router, "lo"}, {tp.router, "wan1"}, {tp.router, "br0"}} {
		ipn(l.ns, "link", "set", l.dev, "up")
	}
	ipn(tp.origin, "route", "add", "default", "via", routerWANIP)
	run(t, "ip", "netns", "exec", tp.router, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward")
	for _, q := range []struct{ ns, dev string }{{tp.origin, "wan0"}, {tp.router, "wan1"}} {
		// One segment per packet, as on a real WAN: a veth passes TCP's
		// GSO packets whole, which wan1 counts as one packet with one set
		// of headers and br0's classifier as the segments they stand for
		// (a header each), so under load the two counters drifted apart
		// by 66 bytes per extra segment.
		ipn(q.ns, "link", "set", q.dev, "gso_max_segs", "1")
		tcn(q.ns, "qdisc", "add", "dev", q.dev, "root", "tbf", "rate", rate, "burst", "32kbit", "latency", "400ms")
	}
	tcn(tp.router, "qdisc", "add", "dev", "br0", "root", "handle", "1:", "htb", "default", "20")
	for _, c := range []string{classPayload, classOther} {
		tcn(tp.router, "class", "add", "dev", "br0", "parent", "1:", "classid", c, "htb", "rate", "10gbit", "burst", "1mb", "cburst", "1mb", "quantum", "60000")
	}
	tcn(tp.router, "filter", "add", "dev", "br0", "parent", "1:", "protocol", "ip", "prio", "1", "u32", "match", "ip", "src", cdnIP+"/32", "flowid", classPayload)

	for i := range n {
		ns := fmt.Sprintf("%s-n%02d", tp.prefix, i)
		addNS(ns)
		port := fmt.Sprintf("p%02d", i)
		run(t, "ip", "link", "add", port, "netns", tp.router, "type", "veth", "peer", "name", "eth0", "netns", ns)
		ipn(tp.router, "link", "set", port, "master", "br0", "up")
		ipn(ns, "addr", "add", nodeIP(i)+"/24", "dev", "eth0")
		ipn(ns, "link", "set", "lo", "up")
		ipn(ns, "link", "set", "eth0", "up")
		ipn(ns, "route", "add", "default", "via", routerLANIP)
		tp.nodes = append(tp.nodes, ns)
	}
	return tp
}

// staleName matches the namespaces newTopo creates: prs<pid>x<6 hex>-...
var staleName = regexp.MustCompile(`^prs(\d+)x[0-9a-f]{6}-`)

// removeStaleNamespaces deletes namespaces an earlier run left behind when
// it died without its cleanup (a go test timeout): those whose creating
// test process is gone and in which nothing runs any more (the daemons
// die with the test process, see startNode). Anything else is left alone.
func removeStaleNamespaces(t testing.TB) {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		m := staleName.FindStringSubmatch(f[0])
		if m == nil {
			continue
		}
		if _, err := os.Stat("/proc/" + m[1]); err == nil {
			continue // its test is still running
		}
		if pids, err := exec.Command("ip", "netns", "pids", f[0]).Output(); err != nil || len(strings.TrimSpace(string(pids))) > 0 {
			continue
		}
		if out, err := exec.Command("ip", "netns", "del", f[0]).CombinedOutput(); err != nil {
			t.Logf("remove stale namespace %s: %v: %s", f[0], err, out)
		}
	}
}

// destroy kills what still runs in the namespaces (children of the nodes
// the test started, e.g. an apt-get a killed daemon left behind) by PID and
// deletes the namespaces; their links and the bridge go with them.
func (tp *topo) destroy(t testing.TB, names []string) {
	for i := len(names) - 1; i >= 0; i-- {
		ns := names[i]
		if out, err := exec.Command("ip", "netns", "pids", ns).Output(); err == nil {
			for _, f := range strings.Fields(string(out)) {
				if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("delete namespace %s: %v: %s", ns, err, out)
		}
	}
}

// cutWAN takes the WAN link down (both ends lose carrier).
func (tp *topo) cutWAN(t testing.TB) {
	t.Helper()
	run(t, "ip", "-n", tp.router, "link", "set", "wan1", "down")
}

// healWAN brings the WAN link up again after cutWAN.
func (tp *topo) healWAN(t testing.TB) {
	t.Helper()
	run(t, "ip", "-n", tp.router, "link", "set", "wan1", "up")
}

// wanCounters are byte counts of the WAN, read from the router's side of
// the link and from the classifier on its LAN side.
type wanCounters struct {
	Down, Up     int64 // wan1 rx and tx bytes (Ethernet frames)
	Payload      int64 // downstream bytes from the CDN host (class 1:10)
	Other        int64 // every other downstream byte (class 1:20)
	PayloadPkts  int64
	OtherPackets int64
	DownPackets  int64
	UpPackets    int64
}

func (c wanCounters) sub(o wanCounters) wanCounters {
	return wanCounters{
		Down: c.Down - o.Down, Up: c.Up - o.Up, Payload: c.Payload - o.Payload, Other: c.Other - o.Other,
		PayloadPkts: c.PayloadPkts - o.PayloadPkts, OtherPackets: c.OtherPackets - o.OtherPackets,
		DownPackets: c.DownPackets - o.DownPackets, UpPackets: c.UpPackets - o.UpPackets,
	}
}

// counters reads the WAN's counters now.
func (tp *topo) counters(t testing.TB) wanCounters {
	t.Helper()
	var c wanCounters
	out := run(t, "ip", "-j", "-s", "-n", tp.router, "link", "show", "dev", "wan1")
	var links []struct {
		Stats struct {
			RX struct{ Bytes, Packets int64 } `json:"rx"`
			TX struct{ Bytes, Packets int64 } `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		t.Fatalf("parse `ip -j -s link show dev wan1`: %v\n%s", err, out)
	}
	c.Down, c.DownPackets = links[0].Stats.RX.Bytes, links[0].Stats.RX.Packets
	c.Up, c.UpPackets = links[0].Stats.TX.Bytes, links[0].Stats.TX.Packets
	classes, err := parseClassStats(run(t, "tc", "-n", tp.router, "-s", "class", "show", "dev", "br0"))
	if err != nil {
		t.Fatalf("read the WAN classifier: %v", err)
	}
	c.Payload, c.PayloadPkts = classes[classPayload][0], classes[classPayload][1]
	c.Other, c.OtherPackets = classes[classOther][0], classes[classOther][1]
	return c
}

// parseClassStats reads `tc -s class show` output: for each class id, the
// bytes and packets sent.
//
//	class htb 1:10 root prio 0 rate 10Gbit ceil 10Gbit burst 1Mb cburst 1Mb
//	 Sent 4182901 bytes 2768 pkt (dropped 0, overlimits 0 requeues 0)
func parseClassStats(out string) (map[string][2]int64, error) {
	res := map[string][2]int64{}
	cur := ""
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) >= 3 && f[0] == "class":
			cur = f[2]
		case len(f) >= 5 && f[0] == "Sent" && f[2] == "bytes" && cur != "":
			b, err1 := strconv.ParseInt(f[1], 10, 64)
			p, err2 := strconv.ParseInt(f[3], 10, 64)
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("class %s: bad counters %q", cur, sc.Text())
			}
			res[cur] = [2]int64{b, p}
			cur = ""
		}
	}
	for _, c := range []string{classPayload, classOther} {
		if _, ok := res[c]; !ok {
			return nil, fmt.Errorf("no counters for class %s in:\n%s", c, out)
		}
	}
	return res, nil
}

// listenIn opens a TCP listener inside namespace ns. The socket belongs to
// that namespace for its whole life, so the test process can serve the
// origin's HTTP from its own goroutines while every byte goes through the
// origin's WAN link. The thread that switched namespace is locked and
// never unlocked, so it ends with its goroutine and no other goroutine
// ever runs in the origin's namespace.
func listenIn(ns, addr string) (net.Listener, error) {
	type result struct {
		ln  net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open(filepath.Join("/run/netns", ns))
		if err != nil {
			ch <- result{err: fmt.Errorf("open namespace %s: %w", ns, err)}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{err: fmt.Errorf("enter namespace %s: %w", ns, err)}
			return
		}
		ln, err := net.Listen("tcp", addr)
		ch <- result{ln, err}
	}()
	r := <-ch
	return r.ln, r.err
}

// nsCommand returns a command that runs name with args inside ns.
func nsCommand(ns, name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...)
}
