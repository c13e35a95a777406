package enroll

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/patchring/patchring/policy/credential"
)

// maxResponse bounds the service's answer.
const maxResponse = 64 << 10

// Client talks to an issuing service.
type Client struct {
	// Service is the base URL.
	Service string
	// Pin, when set, is the hex SHA-256 of the service's certificate: it
	// is trusted instead of the system's certificate authorities.
	Pin string
	// Timeout bounds each request (default 30s).
	Timeout time.Duration
	// Transport, when set, carries the requests instead of a TCP
	// connection (tests call a Server in process); Pin is then unused.
	Transport http.RoundTripper
}

func (c *Client) httpClient() *http.Client {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	if c.Transport != nil {
		return &http.Client{Transport: c.Transport, Timeout: timeout}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	if c.Pin != "" {
		pin := strings.ToLower(c.Pin)
		tr.TLSClientConfig = &tls.Config{
			MinVersion: tls.VersionTLS12,
			// The pin replaces the CA check: the certificate must be
			// exactly the one named in the token.
			InsecureSkipVerify: true,
			VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
				if len(raw) == 0 {
					return errors.New("issuing service sent no certificate")
				}
				sum := sha256.Sum256(raw[0])
				if got := hex.EncodeToString(sum[:]); got != pin {
					return fmt.Errorf("issuing service's certificate has SHA-256 %s, the token pins %s", got, pin)
				}
				return nil
			},
		}
	}
	return &http.Client{Transport: tr, Timeout: timeout}
}

// Enroll sends a signed request with a token and returns the issued
// credential, checked to be for the request's node.
func (c *Client) Enroll(ctx context.Context, tok *Token, req *credential.Request) (*credential.Credential, []byte, error) {
	raw, err := json.Marshal(req)
	if err != nil {
		return nil, nil, fmt.Errorf("enroll: %w", err)
	}
	body := EnrollRequest{Token: tok.ID, Secret: tok.Secret, Fleet: tok.FleetID(), Request: raw}
	return c.call(ctx, "enroll", PathEnroll, body, req.NodeID)
}

// Renew sends the current credential and a signed request, and returns the
// new credential.
func (c *Client) Renew(ctx context.Context, current []byte, req *credential.Request) (*credential.Credential, []byte, error) {
	raw, err := json.Marshal(req)
	if err != nil {
		return nil, nil, fmt.Errorf("renew: %w", err)
	}
	return c.call(ctx, "renew", PathRenew, RenewRequest{Credential: current, Request: raw}, req.NodeID)
}

func (c *Client) call(ctx context.Context, op, path string, in any, nodeID string) (*credential.Credential, []byte, error) {
	body, err := json.Marshal(in)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", op, err)
	}
	url := strings.TrimRight(c.Service, "/") + path
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", op, err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := c.httpClient().Do(hreq)
	if err != nil {
		return nil, nil, fmt.Errorf("%s at %s: %w", op, c.Service, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return nil, nil, fmt.Errorf("%s at %s: %w", op, c.Service, err)
	}
	if len(raw) > maxResponse {
		return nil, nil, fmt.Errorf("%s at %s: answer longer than %d bytes", op, c.Service, maxResponse)
	}
	if resp.StatusCode != http.StatusOK {
		var e ErrorResponse
		if json.Unmarshal(raw, &e) != nil || e.Reason == "" {
			return nil, nil, fmt.Errorf("%s at %s: HTTP %s", op, c.Service, resp.Status)
		}
		return nil, nil, fmt.Errorf("%s at %s: %w", op, c.Service, &RefusedError{Reason: e.Reason, Message: e.Error})
	}
	var out Response
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, nil, fmt.Errorf("%s at %s: answer: %w", op, c.Service, err)
	}
	cred, err := credential.Parse(out.Credential)
	if err != nil {
		return nil, nil, fmt.Errorf("%s at %s: answer: %w", op, c.Service, err)
	}
	if cred.NodeID != nodeID {
		return nil, nil, fmt.Errorf("%s at %s: %w: issued for %s, asked for %s", op, c.Service, credential.ErrWrongNode, cred.NodeID, nodeID)
	}
	return cred, out.Credential, nil
}
