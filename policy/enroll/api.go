package enroll

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strconv"
)

// Paths of the service, relative to its base URL.
const (
	PathEnroll = "/v1/enroll"
	PathRenew  = "/v1/renew"
)

// MaxBody bounds a request body (a credential.Request is at most
// credential.MaxRequestSize, base64 and JSON framing add a third).
const MaxBody = 16 << 10

// EnrollRequest is the body of POST PathEnroll.
type EnrollRequest struct {
	Token  string `json:"token"`  // the token's ID
	Secret []byte `json:"secret"` // the token's secret
	Fleet  string `json:"fleet"`  // FleetID of the token's root.json
	// Request is a credential.Request signed by the node key, its nonce
	// EnrollNonce(token ID, secret).
	Request json.RawMessage `json:"request"`
}

// RenewRequest is the body of POST PathRenew.
type RenewRequest struct {
	Credential []byte `json:"credential"` // current credential, wire form
	// Request is a credential.Request by the same node, its nonce
	// RenewNonce(current serial).
	Request json.RawMessage `json:"request"`
}

// Response is the body of a successful answer.
type Response struct {
	Credential []byte `json:"credential"` // wire form
}

// ErrorResponse is the body of a refusal or failure.
type ErrorResponse struct {
	Reason Reason `json:"reason"`
	Error  string `json:"error"`
}

// EnrollNonce binds a node's signed request to one token: whoever holds the
// request without the secret cannot use it with another token.
func EnrollNonce(tokenID string, secret []byte) string {
	h := sha256.New()
	h.Write([]byte("patchring enroll nonce v1\x00"))
	h.Write([]byte(tokenID))
	h.Write([]byte{0})
	h.Write(secret)
	return "enroll:" + hex.EncodeToString(h.Sum(nil)[:16])
}

// RenewNonce binds a renewal request to the credential it renews.
func RenewNonce(serial uint64) string {
	return "renew:" + strconv.FormatUint(serial, 10)
}
