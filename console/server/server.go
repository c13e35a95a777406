// Package server is the fleet console's HTTP side: the ingest API that
// takes signed node records, the server-rendered dashboard (html/template,
// no JavaScript needed) with a JSON API and a CSV export for every view,
// and access control: sessions and API tokens of accounts with roles,
// CSRF checks on every form and an audit log of operator actions. It
// keeps no state of its own: everything lives in the store, so several
// console processes may serve one PostgreSQL database.
package server

import (
	"context"
	"crypto/ed25519"
	"log/slog"
	"net/http"
	"time"

	"github.com/patchring/patchring/console/store"
)

// NodeInfo is what the fleet's identity says about a node.
type NodeInfo struct {
	// Site is the node's site from its credential; empty means the
	// verifier does not know, and the record's own site is used.
	Site string
	// Hostname and Tags are the credential's, when there is one.
	Hostname string
	Tags     []string
}

// NodeVerifier checks that a node is a member of the fleet: a valid,
// unrevoked credential for this node ID and key. cred is the credential
// the envelope carried (may be empty). FleetVerifier checks the fleet CA's
// credentials (policy/credential).
type NodeVerifier interface {
	VerifyNode(ctx context.Context, nodeID string, pub ed25519.PublicKey, cred []byte) (NodeInfo, error)
}

// SelfCertified accepts every node whose record its own key signed (the
// signature check happens before the verifier is asked): a node can speak
// only for itself, but any key holder that reaches the ingest API is
// accepted as a node, with the site it claims. It is the default until
// fleet credentials are configured.
type SelfCertified struct{}

// VerifyNode accepts the node.
func (SelfCertified) VerifyNode(context.Context, string, ed25519.PublicKey, []byte) (NodeInfo, error) {
	return NodeInfo{}, nil
}

// Roles.
const (
	RoleViewer   = "viewer"
	RoleOperator = "operator"
)

// ValidRole reports whether r is a role.
func ValidRole(r string) bool { return r == RoleViewer || r == RoleOperator }

// Config is what a Server needs.
type Config struct {
	Store    *store.Store
	Verifier NodeVerifier // nil: SelfCertified
	Logger   *slog.Logger
	Now      func() time.Time // nil: time.Now
	// Secure marks cookies Secure (the console serves TLS).
	Secure bool
	// SessionTTL is how long a login lasts (default 12 hours).
	SessionTTL time.Duration
	// Issuing, when set, is the issuing service (policy/enroll.Server)
	// run inside the console: it answers enrollment and renewal on the
	// console's address, authenticated by tokens and credentials, not by
	// console accounts.
	Issuing http.Handler
}

// Server serves the console's HTTP API and dashboard.
type Server struct {
	cfg Config
	mux *http.ServeMux
}

// New builds a server.
func New(cfg Config) *Server {
	if cfg.Verifier == nil {
		cfg.Verifier = SelfCertified{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SessionTTL == 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux()}
	s.routes()
	return s
}

// ServeHTTP serves the console.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'")
	if s.cfg.Secure {
		h.Set("Strict-Transport-Security", "max-age=31536000")
	}
	s.mux.ServeHTTP(w, r)
}
