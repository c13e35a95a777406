package enroll

import (
	"bytes"
	"compress/flate"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"github.com/theupdateframework/go-tuf/v2/metadata/trustedmetadata"
)

// TokenPrefix starts every token string, so a token is recognisable in a
// file, a paste or a log line (where it must never appear).
const TokenPrefix = "patchring-enroll-1:"

// Limits on a token.
const (
	// MaxTokenSize bounds the token string (a root.json of a few keys
	// compresses to well under this).
	MaxTokenSize = 64 << 10
	// maxTokenJSON bounds the inflated token.
	maxTokenJSON = 512 << 10
	idLen        = 8  // bytes, hex in the token
	secretLen    = 32 // bytes
)

// ErrBadToken means a string is not a well-formed token.
var ErrBadToken = errors.New("not a valid enrollment token")

// Token is what an admin gives a new node.
type Token struct {
	// ID names the token in the service's store (16 hex digits).
	ID string `json:"id"`
	// Secret is the one-time secret; the service keeps its hash only.
	Secret []byte `json:"secret"`
	// Origin is the base URL of the fleet's TUF repository.
	Origin string `json:"origin"`
	// Service is the issuing service's base URL.
	Service string `json:"service"`
	// Pin, when set, is the hex SHA-256 of the service's TLS certificate
	// (DER): the client then trusts that certificate and no other.
	Pin string `json:"pin,omitempty"`
	// Root is the fleet's trusted root.json.
	Root json.RawMessage `json:"root"`
}

// NewTokenSecret returns a fresh token ID and secret.
func NewTokenSecret() (id string, secret []byte, err error) {
	b := make([]byte, idLen+secretLen)
	if _, err := rand.Read(b); err != nil {
		return "", nil, fmt.Errorf("new token: %w", err)
	}
	return hex.EncodeToString(b[:idLen]), b[idLen:], nil
}

// FleetID is the fingerprint of a fleet's trusted root: the hex SHA-256 of
// root.json with insignificant white space removed (a token carries it
// compacted). The service's store records it for each token, so a token of
// another fleet is refused as such. Bytes that are not JSON hash as they
// are.
func FleetID(root []byte) string {
	var buf bytes.Buffer
	if err := json.Compact(&buf, root); err == nil {
		root = buf.Bytes()
	}
	sum := sha256.Sum256(root)
	return hex.EncodeToString(sum[:])
}

// String encodes the token: TokenPrefix, then base64url (no padding) of
// the deflated JSON.
func (t *Token) String() (string, error) {
	if err := t.validate(); err != nil {
		return "", err
	}
	raw, err := json.Marshal(t)
	if err != nil {
		return "", fmt.Errorf("encode token: %w", err)
	}
	var buf bytes.Buffer
	w, err := flate.NewWriter(&buf, flate.BestCompression)
	if err != nil {
		return "", fmt.Errorf("encode token: %w", err)
	}
	if _, err := w.Write(raw); err != nil {
		return "", fmt.Errorf("encode token: %w", err)
	}
	if err := w.Close(); err != nil {
		return "", fmt.Errorf("encode token: %w", err)
	}
	s := TokenPrefix + base64.RawURLEncoding.EncodeToString(buf.Bytes())
	if len(s) > MaxTokenSize {
		return "", fmt.Errorf("encode token: %d bytes, at most %d (is root.json that large?)", len(s), MaxTokenSize)
	}
	return s, nil
}

// ParseToken decodes and checks a token string (surrounding white space is
// ignored): its shape, its URLs, and that its root.json is a root signed by
// its own keys.
func ParseToken(s string) (*Token, error) {
	s = strings.TrimSpace(s)
	if len(s) > MaxTokenSize {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrBadToken, len(s), MaxTokenSize)
	}
	rest, ok := strings.CutPrefix(s, TokenPrefix)
	if !ok {
		return nil, fmt.Errorf("%w: it does not start with %q", ErrBadToken, TokenPrefix)
	}
	packed, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadToken, err)
	}
	raw, err := io.ReadAll(io.LimitReader(flate.NewReader(bytes.NewReader(packed)), maxTokenJSON+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadToken, err)
	}
	if len(raw) > maxTokenJSON {
		return nil, fmt.Errorf("%w: more than %d bytes inflated", ErrBadToken, maxTokenJSON)
	}
	var t Token
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadToken, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the token", ErrBadToken)
	}
	if err := t.validate(); err != nil {
		return nil, err
	}
	return &t, nil
}

// ReadTokenFile reads a token from a file (as written by `patchring
// enroll-token create --out`).
func ReadTokenFile(path string) (*Token, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read token: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxTokenSize+2))
	if err != nil {
		return nil, fmt.Errorf("read token %s: %w", path, err)
	}
	t, err := ParseToken(string(b))
	if err != nil {
		return nil, fmt.Errorf("token file %s: %w", path, err)
	}
	return t, nil
}

func (t *Token) validate() error {
	if len(t.ID) != 2*idLen || !isLowerHex(t.ID) {
		return fmt.Errorf("%w: id %q is not %d hex digits", ErrBadToken, t.ID, 2*idLen)
	}
	if len(t.Secret) != secretLen {
		return fmt.Errorf("%w: secret has %d bytes, want %d", ErrBadToken, len(t.Secret), secretLen)
	}
	if err := checkURL("origin", t.Origin); err != nil {
		return err
	}
	if err := checkURL("service", t.Service); err != nil {
		return err
	}
	if t.Pin != "" && (len(t.Pin) != 64 || !isLowerHex(t.Pin)) {
		return fmt.Errorf("%w: pin is not a hex SHA-256", ErrBadToken)
	}
	if len(t.Root) == 0 || string(t.Root) == "null" {
		return fmt.Errorf("%w: no root.json", ErrBadToken)
	}
	if _, err := trustedmetadata.New(t.Root); err != nil {
		return fmt.Errorf("%w: root.json: %v", ErrBadToken, err)
	}
	return nil
}

// FleetID is the fingerprint of the token's root.json.
func (t *Token) FleetID() string { return FleetID(t.Root) }

func checkURL(what, s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%w: %s URL: %v", ErrBadToken, what, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%w: %s URL %q: want http(s)://host[:port][/path]", ErrBadToken, what, s)
	}
	return nil
}

func isLowerHex(s string) bool {
	for _, r := range s {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
			return false
		}
	}
	return true
}
