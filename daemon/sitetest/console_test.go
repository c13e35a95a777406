//go:build linux

package sitetest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/patchring/patchring/console/report"
	"github.com/patchring/patchring/internal/testutil"
	"github.com/patchring/patchring/internal/testutil/consoletest"
)

var patchringCLI = &testutil.Binary{Pkg: "github.com/patchring/patchring/cmd/patchring"}

// consoleProc is a real `patchring console serve` in the origin's
// namespace, with TLS (its certificate pinned by the signed policy) and
// the fleet document fetched from the origin through TUF.
type consoleProc struct {
	dir, data, cert, key, pin, addr string
	cmd                             *exec.Cmd
	done                            chan struct{}
}

func newConsole(t *testing.T, s *testSite) *consoleProc {
	c := &consoleProc{dir: filepath.Join(s.dir, "console"), addr: originIP + ":8443"}
	c.data = filepath.Join(c.dir, "data")
	if err := os.MkdirAll(c.data, 0o700); err != nil {
		t.Fatal(err)
	}
	// A self-signed certificate for the console's address.
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "console"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP(originIP)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	c.pin = hex.EncodeToString(sum[:])
	kd, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	c.cert, c.key = filepath.Join(c.dir, "cert.pem"), filepath.Join(c.dir, "key.pem")
	if err := os.WriteFile(c.cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), 0o600); err != nil {
		t.Fatal(err)
	}
	// Beyond loopback the console needs an account.
	add := exec.Command(patchringCLI.Path(t), "console", "account", "add", "admin", "--role", "operator", "--data", c.data)
	add.Stdin = strings.NewReader("a-long-enough-password\n")
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("console account add: %v\n%s", err, out)
	}
	return c
}

func (c *consoleProc) start(t *testing.T, s *testSite) {
	t.Helper()
	logf, err := os.OpenFile(filepath.Join(c.dir, "console.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	c.cmd = nsCommand(s.net.origin, patchringCLI.Path(t), "console", "serve", "--data", c.data, "--listen", c.addr,
		"--tls-cert", c.cert, "--tls-key", c.key, "--fleet-origin", s.origin.policyURL(), "--fleet-root", s.origin.rootFile)
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := testutil.Start(c.cmd); err != nil {
		logf.Close()
		t.Fatal(err)
	}
	done := make(chan struct{})
	c.done = done
	go func() { c.cmd.Wait(); logf.Close(); close(done) }()
	t.Cleanup(func() { c.stop() })
}

// stop ends the console process it started (by PID), and waits for it.
func (c *consoleProc) stop() {
	if c.cmd == nil || c.cmd.Process == nil {
		return
	}
	select {
	case <-c.done:
		return
	default:
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(15 * time.Second):
		c.cmd.Process.Kill()
		<-c.done
	}
}

func (c *consoleProc) logTail() string {
	b, _ := os.ReadFile(filepath.Join(c.dir, "console.log"))
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-30):], "\n")
}

const policyConsole = `schema: 1
name: %s
expires: 2035-01-01T00:00:00Z
rings:
  - name: broad
    default: true
    defer: 30d
console:
  url: https://%s
  tls_pin: %s
`

// TestSiteReportsToConsole: three credentialed agents of one site report
// to a real console (TLS, pinned by the signed policy; fleet credentials
// checked against fleet.json fetched from the origin through TUF) through
// the one reporter rendezvous picks; the overview lists them under the
// site their credentials name. The console goes down, the admin publishes
// a new policy version: every node's new record waits in its outbox and
// reaches the console once it is back.
func TestSiteReportsToConsole(t *testing.T) {
	s := newSite(t, siteConfig{Nodes: 3, ReportInterval: 2 * time.Second})
	c := newConsole(t, s)
	s.origin.publishPolicy(t, fmt.Sprintf(policyConsole, "console-v1", c.addr, c.pin))
	c.start(t, s)
	s.startNodes(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("---- console log tail:\n%s", c.logTail())
		}
	})

	st := consoletest.OpenStore(t, c.data)
	s.waitFor(t, 2*time.Minute, "the console lists the site's three nodes", func(ctx context.Context) (bool, string) {
		rows, err := st.Overview(ctx)
		if err != nil {
			return false, err.Error()
		}
		if len(rows) == 1 && rows[0].Site == "branch" && rows[0].Nodes == 3 {
			return true, ""
		}
		return false, fmt.Sprintf("overview %+v", rows)
	})
	for _, n := range s.nodes {
		node, err := st.Node(t.Context(), n.id.String())
		if err != nil || node.Hostname != n.hostname || node.Ring != "broad" {
			t.Errorf("%s on the console: %+v %v", n.hostname, node, err)
		}
	}
	v1 := func() int64 {
		node, _ := st.Node(t.Context(), s.nodes[0].id.String())
		return node.PolicyVersion
	}()

	// Outage: the console stops; a new policy version reaches the nodes.
	c.stop()
	s.origin.publishPolicy(t, fmt.Sprintf(policyConsole, "console-v2", c.addr, c.pin))
	s.waitConverged(t, time.Minute, "console-v2")
	// Give the reporter rounds to fail against the stopped console.
	s.waitFor(t, time.Minute, "every node's new record queued in its outbox", func(ctx context.Context) (bool, string) {
		for _, n := range s.nodes {
			if !queuedAbove(n, v1) {
				return false, n.hostname + " has no queued record of the new policy version"
			}
		}
		return true, ""
	})
	if node, _ := st.Node(t.Context(), s.nodes[0].id.String()); node.PolicyVersion != v1 {
		t.Fatalf("the stopped console got a record: %+v", node)
	}
	c.start(t, s)
	s.waitFor(t, 2*time.Minute, "the queued records delivered", func(ctx context.Context) (bool, string) {
		for _, n := range s.nodes {
			node, err := st.Node(ctx, n.id.String())
			if err != nil {
				return false, err.Error()
			}
			if node.PolicyVersion <= v1 {
				return false, fmt.Sprintf("%s still at policy version %d", n.hostname, node.PolicyVersion)
			}
		}
		return true, ""
	})
}

// queuedAbove reports whether node n's outbox holds a record of a policy
// version above v.
func queuedAbove(n *node, v int64) bool {
	b, err := os.ReadFile(filepath.Join(n.dir, "state", "report-outbox.json"))
	if err != nil {
		return false
	}
	var box struct {
		Queue []report.Envelope `json:"queue"`
	}
	if json.Unmarshal(b, &box) != nil {
		return false
	}
	for _, e := range box.Queue {
		if r, _, err := report.Open(e); err == nil && r.PolicyVersion > v {
			return true
		}
	}
	return false
}
