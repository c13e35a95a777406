//go:build linux

package sitetest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/sys/unix"

	"github.com/patchring/patchring/daemon/client"
	"github.com/patchring/patchring/internal/testutil"
)

// TestLANDiscoveryFormsOnePool: real patchringd processes on the site's
// bridge, none with a gossip seed, find each other by the discovery
// beacon (UDP broadcast on 10.200.1.255) and form one pool. A node with
// another fleet key beacons on the same LAN and is never added (its
// beacons fail authentication, which the others count); a node with
// discovery turned off is found by nobody.
func TestLANDiscoveryFormsOnePool(t *testing.T) {
	const fleetNodes = 4
	tp := newTopo(t, fleetNodes+2, "100mbit")
	dir := t.TempDir()
	fleetKey, otherKey := writeKeyFile(t, dir, "fleet.key"), writeKeyFile(t, dir, "other.key")

	var nodes []*node
	s := &testSite{dir: dir, net: tp}
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for _, n := range nodes {
			wg.Go(n.stop)
		}
		wg.Wait()
		if t.Failed() {
			for _, n := range nodes {
				t.Logf("---- %s (%s, %s) log tail:\n%s", n.hostname, n.ip, n.id, n.logTail(30))
			}
		}
	})
	for i := range fleetNodes + 2 {
		key, extra := fleetKey, ""
		switch i {
		case fleetNodes:
			key = otherKey
		case fleetNodes + 1:
			extra = "  discovery: false\n"
		}
		n := startBareNode(t, tp, i, dir, key, extra)
		nodes = append(nodes, n)
	}
	s.nodes = nodes
	fleet, outsider, hermit := nodes[:fleetNodes], nodes[fleetNodes], nodes[fleetNodes+1]

	start := time.Now()
	s.waitFor(t, 90*time.Second, "one pool of the fleet's nodes, found without seeds", func(ctx context.Context) (bool, string) {
		for _, n := range fleet {
			f, err := n.c.Fleet(ctx)
			if err != nil {
				return false, fmt.Sprintf("%s: fleet: %v", n.hostname, err)
			}
			var alive []string
			for _, m := range f.Members {
				if m.NodeID == outsider.id.String() || m.NodeID == hermit.id.String() {
					t.Fatalf("%s lists %s (%s), which must not join", n.hostname, m.Hostname, m.NodeID)
				}
				if m.Liveness == "alive" && m.Site == "branch" {
					alive = append(alive, m.Hostname)
				}
			}
			if len(alive) != fleetNodes {
				return false, fmt.Sprintf("%s sees %v alive", n.hostname, alive)
			}
		}
		return true, ""
	})
	t.Logf("%d nodes formed one pool from LAN discovery in %s", fleetNodes, time.Since(start).Round(100*time.Millisecond))

	// The outsider's beacons reached the fleet and failed authentication;
	// the fleet's beacons reached the outsider and failed there too.
	s.waitFor(t, 30*time.Second, "the outsider's beacons refused", func(ctx context.Context) (bool, string) {
		for _, n := range append([]*node{outsider}, fleet...) {
			m, err := nodeMetrics(ctx, n)
			if err != nil {
				return false, fmt.Sprintf("%s: metrics: %v", n.hostname, err)
			}
			if m[`patchring_discovery_received_total{result="bad_auth"}`] == 0 || m["patchring_discovery_sent_total"] == 0 {
				return false, fmt.Sprintf("%s: no beacon sent or refused yet: %v", n.hostname, m)
			}
			want := 1.0 // every node hears at least one accepted beacon...
			if n == outsider {
				want = 0 // ...but the outsider accepts none
			}
			if got := m[`patchring_discovery_received_total{result="accepted"}`]; (got > 0) != (want > 0) {
				return false, fmt.Sprintf("%s: %v accepted beacons", n.hostname, got)
			}
		}
		return true, ""
	})
	for _, n := range []*node{outsider, hermit} {
		f, err := n.c.Fleet(context.Background())
		if err != nil {
			t.Fatalf("%s: fleet: %v", n.hostname, err)
		}
		if len(f.Members) != 1 || !f.Members[0].Local {
			t.Errorf("%s lists %d members, want only itself", n.hostname, len(f.Members))
		}
	}
}

// writeKeyFile writes a new random gossip key file and returns its path.
func writeKeyFile(t testing.TB, dir, name string) string {
	t.Helper()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// startBareNode starts a patchringd with gossip only (no apt, policy or
// payload sharing) and no seeds in namespace i of tp; extra is appended to
// its gossip settings. Metrics are served on 127.0.0.1:9273 inside the
// namespace. The caller stops it (node.stop) in its cleanup.
func startBareNode(t testing.TB, tp *topo, i int, dir, keyFile, extra string) *node {
	t.Helper()
	n := &node{hostname: fmt.Sprintf("desk-%02d", i), ns: tp.nodes[i], ip: nodeIP(i), dir: filepath.Join(dir, fmt.Sprintf("n%02d", i))}
	n.sock = filepath.Join(n.dir, "api.sock")
	n.logPath = filepath.Join(n.dir, "patchringd.log")
	n.c = &client.Client{Socket: n.sock}
	if err := os.MkdirAll(filepath.Join(n.dir, "state"), 0o700); err != nil {
		t.Fatal(err)
	}
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := crypto.MarshalPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(n.dir, "state", "node.key"), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if n.id, err = peer.IDFromPrivateKey(key); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`state_dir: %s
socket: %s
hostname: %s
site: branch
log_level: info
metrics_listen: 127.0.0.1:9273
inventory:
  interval: 0s
reboot:
  command: ["/bin/true"]
gossip:
  enabled: true
  listen: %s:7946
  key_file: %s
  label: sitetest
%s`, filepath.Join(n.dir, "state"), n.sock, n.hostname, n.ip, keyFile, extra)
	cfgFile := filepath.Join(n.dir, "patchringd.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(n.logPath)
	if err != nil {
		t.Fatal(err)
	}
	n.cmd = nsCommand(n.ns, patchringd.Path(t), "run", "--config", cfgFile)
	n.cmd.Stdout, n.cmd.Stderr = logf, logf
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := testutil.Start(n.cmd); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", n.hostname, err)
	}
	n.done = make(chan struct{})
	go func() {
		n.err = n.cmd.Wait()
		logf.Close()
		close(n.done)
	}()
	return n
}

// nodeMetrics scrapes the node's Prometheus endpoint (on the loopback of
// its namespace) and returns the samples by name and labels.
func nodeMetrics(ctx context.Context, n *node) (map[string]float64, error) {
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return dialIn(ctx, n.ns, network, addr)
	}}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:9273/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("%s: %s", resp.Status, body)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "patchring_discovery_") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if i < 0 || err != nil {
			return nil, fmt.Errorf("bad sample %q", line)
		}
		out[line[:i]] = v
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no patchring_discovery_ samples")
	}
	return out, sc.Err()
}

// dialIn connects to addr from inside namespace ns: the socket belongs to
// ns for its whole life. The thread switches to ns for the dial and back
// afterwards, so the runtime keeps it. Should switching back fail, the
// thread stays locked and ends with its goroutine, so no other goroutine
// ever runs in ns (children are started by testutil.Start, whose thread
// never ends, so no Pdeathsig fires).
func dialIn(ctx context.Context, ns, network, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("open own namespace: %w", err)}
			return
		}
		defer orig.Close()
		f, err := os.Open(filepath.Join("/run/netns", ns))
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: fmt.Errorf("open namespace %s: %w", ns, err)}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{err: fmt.Errorf("enter namespace %s: %w", ns, err)}
			return
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}
