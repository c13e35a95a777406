package credential

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Request is a node's enrollment request: its ID, what it says about
// itself, and a signature by the node key proving it holds that key. An
// offline node writes one to a file (`patchringd enroll --request`); an
// online node sends one to the issuing service with its token.
type Request struct {
	NodeID   string    `json:"node_id"`
	Hostname string    `json:"hostname"`
	Created  time.Time `json:"created"`
	// Nonce binds an online request to the service's challenge or token; an
	// offline request leaves it empty.
	Nonce     string `json:"nonce,omitempty"`
	Signature []byte `json:"signature"`
}

const requestPrefix = "patchring enrollment request v1\x00"

// MaxRequestSize bounds a request file or body.
const MaxRequestSize = 4096

func (r *Request) message() ([]byte, error) {
	c := *r
	c.Signature = nil
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	return append([]byte(requestPrefix), b...), nil
}

// NewRequest makes a request signed by the node key through sign (the
// agent's libp2p key signs raw ed25519).
func NewRequest(nodeID, hostname, nonce string, now time.Time, sign func([]byte) ([]byte, error)) (*Request, error) {
	r := &Request{NodeID: nodeID, Hostname: hostname, Created: now.UTC().Truncate(time.Second), Nonce: nonce}
	if err := r.validate(); err != nil {
		return nil, err
	}
	msg, err := r.message()
	if err != nil {
		return nil, err
	}
	if r.Signature, err = sign(msg); err != nil {
		return nil, fmt.Errorf("sign request: %w", err)
	}
	return r, nil
}

func (r *Request) validate() error {
	if _, err := nodeIDBytes(r.NodeID); err != nil {
		return fmt.Errorf("request: %w", err)
	}
	if err := checkText("hostname", r.Hostname, MaxHostname, true); err != nil {
		return fmt.Errorf("request from %s: %w", r.NodeID, err)
	}
	if len(r.Nonce) > 128 {
		return fmt.Errorf("request from %s: nonce too long", r.NodeID)
	}
	return nil
}

// Marshal encodes the request as JSON.
func (r *Request) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	return append(b, '\n'), nil
}

// ParseRequest decodes a request and checks the node key's signature.
func ParseRequest(b []byte) (*Request, error) {
	if len(b) > MaxRequestSize {
		return nil, fmt.Errorf("request: %d bytes, at most %d", len(b), MaxRequestSize)
	}
	var r Request
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("request: %w", err)
	}
	if err := r.validate(); err != nil {
		return nil, err
	}
	pub, err := NodeKey(r.NodeID)
	if err != nil {
		return nil, err
	}
	msg, err := r.message()
	if err != nil {
		return nil, err
	}
	if !ed25519.Verify(pub, msg, r.Signature) {
		return nil, fmt.Errorf("request from %s: %w", r.NodeID, errBadRequestSig)
	}
	return &r, nil
}

var errBadRequestSig = errors.New("signature by the node key does not verify")
