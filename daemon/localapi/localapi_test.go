package localapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchring/patchring/daemon/client"
	"github.com/patchring/patchring/daemon/localapi"
	"github.com/patchring/patchring/internal/testutil"
	"github.com/patchring/patchring/platform/ipc"
)

// The test binary doubles as a client process: run with
// PATCHRING_TEST_CLIENT set it calls the API once and prints the outcome.
func TestMain(m *testing.M) {
	if sock := os.Getenv("PATCHRING_TEST_CLIENT"); sock != "" {
		os.Exit(clientMain(sock, os.Getenv("PATCHRING_TEST_METHOD"), os.Getenv("PATCHRING_TEST_PATH")))
	}
	code := m.Run()
	testutil.RemoveSelfShared()
	os.Exit(code)
}

func clientMain(sock, method, path string) int {
	c := &client.Client{Socket: sock}
	var out map[string]any
	err := c.Do(context.Background(), method, path, nil, &out)
	var ae *client.APIError
	switch {
	case err == nil:
		fmt.Printf("ok %v\n", out["uid"])
	case errors.As(err, &ae):
		fmt.Printf("error %d %s %v: %s\n", ae.Status, ae.Code, client.IsAccessDenied(err), ae.Msg)
	default:
		fmt.Printf("fail %v\n", err)
	}
	return 0
}

func startServer(t *testing.T) string {
	t.Helper()
	// The socket's directory must be reachable by the unprivileged client.
	sock := filepath.Join(testutil.SocketDir(t), "api.sock")
	s := localapi.New(testutil.Logger(t), "")
	whoami := func(ctx context.Context, r *localapi.Request) (any, error) {
		return map[string]any{"uid": r.Caller.Cred.UID, "admin": r.Caller.Admin}, nil
	}
	localapi.Handle(s, http.MethodGet, "/read", localapi.PermRead, whoami)
	localapi.Handle(s, http.MethodPost, "/user", localapi.PermUser, whoami)
	localapi.Handle(s, http.MethodPost, "/admin", localapi.PermAdmin, whoami)
	ln, err := ipc.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return sock
}

// runClient runs this test binary as a client process with uid.
func runClient(t *testing.T, uid int, sock, method, path string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, testutil.SelfShared(t), "-test.run=^$")
	cmd.Env = append(os.Environ(), "PATCHRING_TEST_CLIENT="+sock, "PATCHRING_TEST_METHOD="+method, "PATCHRING_TEST_PATH="+path, "GORACE=atexit_sleep_ms=0")
	testutil.AsUser(cmd, uid, uid)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("client as uid %d: %v\n%s", uid, err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestAuthorizationByPeerCredentials(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root to run a client as another uid (make test runs as root)")
	}
	sock := startServer(t)
	const nobody = 65534
	// The test binary must be readable and executable by nobody.
	tests := []struct {
		name         string
		uid          int
		method, path string
		want         string
	}{
		{"root reads", 0, "GET", "/read", "ok 0"},
		{"root administers", 0, "POST", "/admin", "ok 0"},
		{"user reads", nobody, "GET", "/read", "ok 65534"},
		{"user may call user routes", nobody, "POST", "/user", "ok 65534"},
		{"user may not administer", nobody, "POST", "/admin", "error 403 access-denied true: uid 65534 may not do this: it needs root or membership in the agent's admin group"},
		{"unknown route", nobody, "GET", "/nope", "error 404 not-found false"},
		{"wrong method", 0, "DELETE", "/read", "error 405 bad-request false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := runClient(t, tt.uid, sock, tt.method, tt.path)
			if !strings.HasPrefix(got, tt.want) {
				t.Errorf("uid %d %s %s:\n got %q\nwant prefix %q", tt.uid, tt.method, tt.path, got, tt.want)
			}
		})
	}
}

func TestClientSaysDaemonNotRunning(t *testing.T) {
	c := &client.Client{Socket: filepath.Join(t.TempDir(), "none.sock")}
	_, err := c.Status(context.Background())
	if !client.IsNotRunning(err) {
		t.Fatalf("err = %v, want not running", err)
	}
	if !strings.Contains(err.Error(), "patchringd run") || strings.Count(err.Error(), "\n") != 0 {
		t.Errorf("message should be one line saying how to start it: %q", err)
	}
}

func TestListenRefusesLiveSocketAndReplacesStale(t *testing.T) {
	sock := startServer(t)
	if _, err := ipc.Listen(sock); err == nil || !strings.Contains(err.Error(), "already serving") {
		t.Fatalf("second listen: %v", err)
	}
	stale := filepath.Join(t.TempDir(), "stale.sock")
	ln, err := ipc.Listen(stale)
	if err != nil {
		t.Fatal(err)
	}
	// Closing a unix listener removes the file; recreate a dead socket file.
	ln.(interface{ SetUnlinkOnClose(bool) }).SetUnlinkOnClose(false)
	ln.Close()
	ln, err = ipc.Listen(stale)
	if err != nil {
		t.Fatalf("listen over stale socket: %v", err)
	}
	ln.Close()
}

func TestErrorBodyIsJSON(t *testing.T) {
	sock := startServer(t)
	c := &client.Client{Socket: sock}
	resp, err := c.Open(context.Background(), "GET", "/read", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	if v["uid"] != float64(os.Geteuid()) {
		t.Errorf("uid = %v", v["uid"])
	}
}

// A client that sends no request, or stays idle after one, is disconnected.
func TestIdleConnectionsAreClosed(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "api.sock")
	s := localapi.New(testutil.Logger(t), "")
	s.SetLimits(localapi.Limits{ReadHeaderTimeout: 200 * time.Millisecond, IdleTimeout: 200 * time.Millisecond})
	localapi.Handle(s, http.MethodGet, "/read", localapi.PermRead, func(ctx context.Context, r *localapi.Request) (any, error) { return "hi", nil })
	ln, err := ipc.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })

	closedByServer := func(t *testing.T, c net.Conn) {
		t.Helper()
		// The test's own deadline is generous; the server's timeout is what
		// ends the read.
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		if _, err := io.Copy(io.Discard, c); err != nil {
			t.Errorf("the server did not close the connection: %v", err)
		}
	}
	t.Run("no request", func(t *testing.T) {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		closedByServer(t, c)
	})
	t.Run("idle after a request", func(t *testing.T) {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /v1/read HTTP/1.1\r\nHost: x\r\n\r\n")
		closedByServer(t, c)
	})
}
