package enroll

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/patchring/patchring/policy/credential"
)

// Defaults for ServerConfig's zero values.
const (
	DefaultValidity   = 30 * 24 * time.Hour
	DefaultRenewGrace = 7 * 24 * time.Hour
	// RequestWindow is how far a request's creation time may be from the
	// service's clock (it limits replaying a captured request).
	RequestWindow = 15 * time.Minute
	DefaultRate   = rate.Limit(1) // requests per second per client
	DefaultBurst  = 20
	maxClients    = 10000
)

// FleetSource gives the current fleet document: the service checks every
// credential it issues against it, and renewals against its revocations.
type FleetSource interface {
	Fleet(ctx context.Context) (*credential.Trust, error)
}

// ServerConfig configures a Server.
type ServerConfig struct {
	Store *Store
	// DataDir holds the ledger of issued credentials (LedgerFile).
	DataDir string
	// IssuerKey signs credentials; the fleet document must hold an
	// IssuerCert for it (or it must be a CA key, in tests).
	IssuerKey ed25519.PrivateKey
	Fleet     FleetSource
	// Validity is the lifetime of an issued credential (default 30 days).
	Validity time.Duration
	// RenewGrace is how long after expiry a credential may still be
	// renewed (default 7 days).
	RenewGrace time.Duration
	// Rate and Burst limit requests per client address.
	Rate  rate.Limit
	Burst int
	Now   func() time.Time
	Log   *slog.Logger
}

// Server is the issuing service, an http.Handler.
type Server struct {
	cfg ServerConfig
	mux *http.ServeMux

	mu      sync.Mutex
	clients map[string]*rate.Limiter
	issue   sync.Mutex // one issuance at a time: the ledger is appended in order
}

var _ http.Handler = (*Server)(nil)

// NewServer checks cfg and returns the service.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Store == nil || cfg.DataDir == "" {
		return nil, errors.New("issuing service: no token store or data directory")
	}
	if len(cfg.IssuerKey) != ed25519.PrivateKeySize {
		return nil, errors.New("issuing service: no issuing key")
	}
	if cfg.Fleet == nil {
		return nil, errors.New("issuing service: no fleet document source")
	}
	if cfg.Validity <= 0 {
		cfg.Validity = DefaultValidity
	}
	if cfg.RenewGrace <= 0 {
		cfg.RenewGrace = DefaultRenewGrace
	}
	if cfg.Rate <= 0 {
		cfg.Rate = DefaultRate
	}
	if cfg.Burst <= 0 {
		cfg.Burst = DefaultBurst
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux(), clients: map[string]*rate.Limiter{}}
	s.mux.HandleFunc("POST "+PathEnroll, s.handle(s.enroll))
	s.mux.HandleFunc("POST "+PathRenew, s.handle(s.renew))
	return s, nil
}

// LedgerPath is where the service records what it issued.
func (s *Server) LedgerPath() string { return filepath.Join(s.cfg.DataDir, LedgerFile) }

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func (s *Server) allow(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.clients[host]
	if !ok {
		if len(s.clients) >= maxClients {
			clear(s.clients)
		}
		l = rate.NewLimiter(s.cfg.Rate, s.cfg.Burst)
		s.clients[host] = l
	}
	return l.AllowN(s.cfg.Now(), 1)
}

// handle wraps an operation: rate limit, bounded body, JSON answer.
func (s *Server) handle(op func(ctx context.Context, body []byte, client string) ([]byte, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.allow(r) {
			s.answer(w, r, nil, refuse(ReasonRateLimited, "too many requests from "+r.RemoteAddr+"; retry later"))
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
		if err != nil {
			s.answer(w, r, nil, refuse(ReasonBadRequest, fmt.Sprintf("request body: %v (at most %d bytes)", err, MaxBody)))
			return
		}
		cred, err := op(r.Context(), body, r.RemoteAddr)
		s.answer(w, r, cred, err)
	}
}

func (s *Server) answer(w http.ResponseWriter, r *http.Request, cred []byte, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if err == nil {
		_ = json.NewEncoder(w).Encode(Response{Credential: cred})
		return
	}
	var ref *RefusedError
	if !errors.As(err, &ref) {
		s.cfg.Log.Error("issuing service failed", "path", r.URL.Path, "client", r.RemoteAddr, "err", err)
		ref = refuse(ReasonCannotIssue, err.Error())
	} else {
		s.cfg.Log.Warn("issuing service refused", "path", r.URL.Path, "client", r.RemoteAddr, "reason", ref.Reason, "err", ref.Message)
	}
	w.WriteHeader(ref.Reason.status())
	_ = json.NewEncoder(w).Encode(ErrorResponse{Reason: ref.Reason, Error: ref.Message})
}

func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return refuse(ReasonBadRequest, "request body: "+err.Error())
	}
	return nil
}

// checkRequest verifies the node's signed request and its nonce and age.
func (s *Server) checkRequest(raw []byte, nonce string) (*credential.Request, error) {
	req, err := credential.ParseRequest(raw)
	if err != nil {
		return nil, refuse(ReasonBadRequest, err.Error())
	}
	if req.Nonce != nonce {
		return nil, refuse(ReasonBadRequest, fmt.Sprintf("request from %s is bound to another token or credential (nonce %q)", req.NodeID, req.Nonce))
	}
	now := s.cfg.Now()
	if d := now.Sub(req.Created); d > RequestWindow || d < -RequestWindow {
		return nil, refuse(ReasonBadRequest, fmt.Sprintf("request from %s made at %s, more than %s from the service's clock %s (check the node's clock)",
			req.NodeID, req.Created.Format(time.RFC3339), RequestWindow, now.UTC().Format(time.RFC3339)))
	}
	return req, nil
}

func (s *Server) fleet(ctx context.Context) (*credential.Trust, error) {
	t, err := s.cfg.Fleet.Fleet(ctx)
	if err != nil {
		return nil, refuse(ReasonUnavailable, "fleet document: "+err.Error())
	}
	return t, nil
}

// sign makes, checks and records a credential. The caller holds s.issue.
func (s *Server) sign(tr *credential.Trust, req *credential.Request, site string, tags []string, how string) ([]byte, *credential.Credential, error) {
	serial, err := credential.NewSerial()
	if err != nil {
		return nil, nil, err
	}
	now := s.cfg.Now()
	c := &credential.Credential{
		NodeID: req.NodeID, Hostname: req.Hostname, Site: site, Tags: tags, Serial: serial,
		NotBefore: now.Add(-backdate(s.cfg.Validity)), NotAfter: now.Add(s.cfg.Validity),
	}
	if err := c.Validate(); err != nil {
		return nil, nil, refuse(ReasonBadRequest, err.Error())
	}
	if err := c.Sign(s.cfg.IssuerKey); err != nil {
		return nil, nil, err
	}
	// What the agents will refuse is not issued: an issuing key the
	// fleet document does not (or no longer) delegate, a site outside
	// its scope, a revoked node.
	if err := tr.Verify(c, now); err != nil {
		if errors.Is(err, credential.ErrRevoked) {
			return nil, nil, refuse(ReasonRevoked, err.Error())
		}
		return nil, nil, fmt.Errorf("the credential would not verify in the fleet document: %w", err)
	}
	raw, err := c.Marshal()
	if err != nil {
		return nil, nil, err
	}
	if err := credential.AppendLedger(s.LedgerPath(), credential.IssuedFrom(c, now, how)); err != nil {
		return nil, nil, err
	}
	return raw, c, nil
}

func (s *Server) enroll(ctx context.Context, body []byte, client string) ([]byte, error) {
	var in EnrollRequest
	if err := decodeStrict(body, &in); err != nil {
		return nil, err
	}
	req, err := s.checkRequest(in.Request, EnrollNonce(in.Token, in.Secret))
	if err != nil {
		return nil, err
	}
	tr, err := s.fleet(ctx)
	if err != nil {
		return nil, err
	}
	if n, ok := tr.Revoked(req.NodeID); ok {
		return nil, refuse(ReasonRevoked, fmt.Sprintf("node %s is revoked in the fleet document (%s); give it a new identity", req.NodeID, n.Reason))
	}
	s.issue.Lock()
	defer s.issue.Unlock()
	var out []byte
	err = s.cfg.Store.use(in.Token, in.Fleet, func(rec *TokenRecord, knownFleet bool) error {
		if rec == nil || rec.Fleet != in.Fleet {
			if !knownFleet {
				return refuse(ReasonTokenForeign, fmt.Sprintf("token %s is for another fleet: its root.json is not one this service issued tokens for", in.Token))
			}
			return refuse(ReasonTokenUnknown, fmt.Sprintf("token %s is unknown to this service (deleted, or never issued here)", in.Token))
		}
		if subtle.ConstantTimeCompare(HashSecret(in.Secret), rec.SecretHash) != 1 {
			return refuse(ReasonTokenSecret, fmt.Sprintf("token %s: the secret does not match", in.Token))
		}
		now := s.cfg.Now()
		if !now.Before(rec.Expires) {
			return refuse(ReasonTokenExpired, fmt.Sprintf("token %s expired at %s", in.Token, rec.Expires.UTC().Format(time.RFC3339)))
		}
		again := slices.Contains(rec.Nodes, req.NodeID)
		if !again && rec.UsesLeft <= 0 {
			return refuse(ReasonTokenUsedUp, fmt.Sprintf("token %s is used up (%d of %d uses)", in.Token, rec.Uses, rec.Uses))
		}
		raw, c, err := s.sign(tr, req, rec.Site, rec.Tags, "token "+rec.ID)
		if err != nil {
			return err
		}
		if !again {
			rec.UsesLeft--
			rec.Nodes = append(rec.Nodes, req.NodeID)
		}
		s.cfg.Log.Info("enrolled", "node", c.NodeID, "hostname", c.Hostname, "site", c.Site, "tags", c.Tags,
			"serial", c.Serial, "token", rec.ID, "uses_left", rec.UsesLeft, "again", again, "client", client)
		out = raw
		return nil
	})
	return out, err
}

func (s *Server) renew(ctx context.Context, body []byte, client string) ([]byte, error) {
	var in RenewRequest
	if err := decodeStrict(body, &in); err != nil {
		return nil, err
	}
	cur, err := credential.Parse(in.Credential)
	if err != nil {
		return nil, refuse(ReasonBadRequest, "current credential: "+err.Error())
	}
	req, err := s.checkRequest(in.Request, RenewNonce(cur.Serial))
	if err != nil {
		return nil, err
	}
	if req.NodeID != cur.NodeID {
		return nil, refuse(ReasonBadRequest, fmt.Sprintf("request signed by node %s for the credential of node %s", req.NodeID, cur.NodeID))
	}
	tr, err := s.fleet(ctx)
	if err != nil {
		return nil, err
	}
	now := s.cfg.Now()
	err = tr.Verify(cur, now)
	if errors.Is(err, credential.ErrExpired) {
		if now.Sub(cur.NotAfter) > s.cfg.RenewGrace {
			return nil, refuse(ReasonCredentialExpired, fmt.Sprintf("credential of node %s expired at %s, more than %s ago: enroll it again",
				cur.NodeID, cur.NotAfter.UTC().Format(time.RFC3339), s.cfg.RenewGrace))
		}
		// Within the grace: everything else must hold as at expiry.
		err = tr.Verify(cur, cur.NotAfter.Add(-time.Second))
	}
	switch {
	case errors.Is(err, credential.ErrRevoked):
		return nil, refuse(ReasonRevoked, err.Error())
	case err != nil:
		return nil, refuse(ReasonCredentialInvalid, err.Error())
	}
	s.issue.Lock()
	defer s.issue.Unlock()
	raw, c, err := s.sign(tr, req, cur.Site, cur.Tags, "renewal")
	if err != nil {
		return nil, err
	}
	s.cfg.Log.Info("renewed", "node", c.NodeID, "site", c.Site, "serial", c.Serial, "previous", cur.Serial, "client", client)
	return raw, nil
}

// backdate is how far before issue a credential starts, for verifiers
// whose clocks are a little behind: a minute, or a tenth of a short
// lifetime (so two thirds of the lifetime still lie ahead).
func backdate(validity time.Duration) time.Duration { return min(time.Minute, validity/10) }
