// Package client is the Go client of patchringd's local API, used by the
// patchring CLI and the tray. Its zero value talks to the default socket.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/patchring/patchring/daemon/apitypes"
	"github.com/patchring/patchring/platform/ipc"
	"github.com/patchring/patchring/platform/paths"
)

// DefaultSocket is PATCHRING_SOCKET when set, else the per-user default.
func DefaultSocket() string {
	if s := os.Getenv("PATCHRING_SOCKET"); s != "" {
		return s
	}
	return paths.For().Socket
}

// Client talks to patchringd. The zero value uses DefaultSocket.
type Client struct {
	// Socket is the path of the daemon's socket.
	Socket string
}

func (c *Client) socket() string {
	if c == nil || c.Socket == "" {
		return DefaultSocket()
	}
	return c.Socket
}

// transports holds one HTTP client per socket path, so long-running
// users (the tray) reuse connections instead of leaking a transport per
// call.
var transports sync.Map // socket path -> *http.Client

func (c *Client) http() *http.Client {
	sock := c.socket()
	if hc, ok := transports.Load(sock); ok {
		return hc.(*http.Client)
	}
	hc := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return ipc.Dial(ctx, sock)
		},
		DisableCompression: true,
		MaxIdleConns:       4,
		IdleConnTimeout:    90 * time.Second,
	}}
	actual, _ := transports.LoadOrStore(sock, hc)
	return actual.(*http.Client)
}

// APIError is an error answered by the daemon.
type APIError struct {
	Status int
	Code   string
	Msg    string
}

func (e *APIError) Error() string { return e.Msg }

// NotRunningError says no daemon answers on the socket.
type NotRunningError struct {
	Socket string
	Err    error
}

func (e *NotRunningError) Error() string {
	return fmt.Sprintf("patchringd is not running (nothing answers on %s); start it with 'systemctl start patchringd' or 'patchringd run'", e.Socket)
}

func (e *NotRunningError) Unwrap() error { return e.Err }

// IsAccessDenied reports whether err is the daemon refusing the caller.
func IsAccessDenied(err error) bool { return hasCode(err, apitypes.CodeAccessDenied) }

// IsNotFound reports whether err is the daemon saying a thing does not exist.
func IsNotFound(err error) bool { return hasCode(err, apitypes.CodeNotFound) }

// IsUnavailable reports whether err says a subsystem is not running.
func IsUnavailable(err error) bool { return hasCode(err, apitypes.CodeUnavailable) }

// IsNotRunning reports whether err means the daemon could not be reached.
func IsNotRunning(err error) bool {
	var nr *NotRunningError
	return errors.As(err, &nr)
}

func hasCode(err error, code string) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Code == code
}

// Do calls method path (without the /v1 prefix) with in as the JSON body
// (nil for none) and decodes the answer into out (nil to discard).
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	resp, err := c.Open(ctx, method, path, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// Open sends a request and returns the successful response with its body
// unread (for event streams). The caller closes the body.
func (c *Client) Open(ctx context.Context, method, path string, in any) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("%s %s: encode: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://patchringd"+apitypes.APIVersion+path, body)
	if err != nil {
		return nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http().Do(req)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, os.ErrNotExist) {
			return nil, &NotRunningError{Socket: c.socket(), Err: err}
		}
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		var e apitypes.Error
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if json.Unmarshal(raw, &e) != nil || e.Error == "" {
			e.Error = fmt.Sprintf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(raw))
		}
		return nil, &APIError{Status: resp.StatusCode, Code: e.Code, Msg: e.Error}
	}
	return resp, nil
}

// Status returns the node's status.
func (c *Client) Status(ctx context.Context) (apitypes.Status, error) {
	var st apitypes.Status
	err := c.Do(ctx, http.MethodGet, "/status", nil, &st)
	return st, err
}
