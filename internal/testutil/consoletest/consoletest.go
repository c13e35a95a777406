// Package consoletest runs a real fleet console (console/server on a
// console/store SQLite database) for the agent side's tests, which may not
// link the console themselves: a harness on a loopback port that a test
// can stop and start again on the same address (a real outage), counting
// the bytes the console reads.
package consoletest

import (
	"context"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patchring/patchring/console/server"
	"github.com/patchring/patchring/console/store"
	"github.com/patchring/patchring/internal/testutil"
	"github.com/patchring/patchring/policy/credential"
)

// FleetFunc gives the fleet document the console verifies credentials
// against.
type FleetFunc func(ctx context.Context) (*credential.Trust, error)

// Fleet implements server.FleetSource.
func (f FleetFunc) Fleet(ctx context.Context) (*credential.Trust, error) { return f(ctx) }

// Console is a running console.
type Console struct {
	t     testing.TB
	Store *store.Store
	h     http.Handler
	addr  string
	read  atomic.Int64

	mu  sync.Mutex
	srv *http.Server
}

// Start runs a console that accepts records with credentials fleet
// trusts; it stops when the test ends.
func Start(t testing.TB, fleet FleetFunc) *Console {
	t.Helper()
	st := OpenStore(t, t.TempDir())
	c := &Console{t: t, Store: st, h: server.New(server.Config{Store: st, Verifier: server.FleetVerifier{Fleet: fleet}, Logger: testutil.Logger(t)})}
	c.Start()
	t.Cleanup(c.Stop)
	return c
}

// OpenStore opens (and migrates) the console database in dir, closed when
// the test ends: a test reads what a console process stored.
func OpenStore(t testing.TB, dir string) *store.Store {
	t.Helper()
	st, err := store.OpenSQLite(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// URL is the console's base URL.
func (c *Console) URL() string { return "http://" + c.addr }

// BytesRead is every byte the console read from its connections.
func (c *Console) BytesRead() int64 { return c.read.Load() }

// Start serves (again, on the same address after Stop).
func (c *Console) Start() {
	c.t.Helper()
	addr := c.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ln net.Listener
	testutil.WaitFor(c.t, 10*time.Second, "listen on the console's port", func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	})
	c.addr = ln.Addr().String()
	srv := &http.Server{Handler: c.h, ReadHeaderTimeout: 10 * time.Second}
	c.mu.Lock()
	c.srv = srv
	c.mu.Unlock()
	go srv.Serve(countingListener{ln, &c.read})
}

// Stop closes the listener and every connection: the console is gone.
func (c *Console) Stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.srv != nil {
		c.srv.Close()
		c.srv = nil
	}
}

type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{conn, l.n}, nil
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	k, err := c.Conn.Read(p)
	c.n.Add(int64(k))
	return k, err
}

// ExposedTo lists the nodes the console has as exposed to the
// vulnerability id (the agent side's tests may not name console/store's
// filter type).
func (c *Console) ExposedTo(ctx context.Context, id string) ([]store.VulnNode, error) {
	return c.Store.VulnNodes(ctx, store.VulnFilter{CVE: id}, 10000)
}
