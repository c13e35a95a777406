// Package localapi is patchringd's local API server: HTTP and JSON over the
// unix socket, versioned routes in one table, and authorization from the
// kernel's account of who is calling.
package localapi

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/patchring/patchring/daemon/apitypes"
	"github.com/patchring/patchring/platform/ipc"
)

// Perm is what a route requires of its caller.
type Perm int

const (
	// PermRead lets any local user call the route.
	PermRead Perm = iota
	// PermUser lets any local user with known credentials call the route;
	// the handler enforces the limits of the policy (reboot deferral).
	PermUser
	// PermAdmin needs root or a member of the admin group.
	PermAdmin
)

func (p Perm) String() string {
	switch p {
	case PermRead:
		return "read"
	case PermUser:
		return "user"
	default:
		return "admin"
	}
}

// Caller is the authenticated identity of a request.
type Caller struct {
	Cred  ipc.Cred
	Known bool // the kernel told us who it is
	Admin bool
}

// Request is what a handler gets.
type Request struct {
	HTTP   *http.Request
	Caller Caller
}

// Decode reads the JSON body into v, rejecting unknown fields.
func (r *Request) Decode(v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.HTTP.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return BadRequest("decode request body: %v", err)
	}
	return nil
}

// HandlerFunc handles one route. It returns the value to encode as JSON or
// an error; *Error values choose the status code.
type HandlerFunc func(ctx context.Context, r *Request) (any, error)

// Error is an API error with its HTTP status and stable code.
type Error struct {
	Status int
	Code   string
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

// BadRequest returns a 400 error.
func BadRequest(format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: apitypes.CodeBadRequest, Msg: fmt.Sprintf(format, args...)}
}

// Forbidden returns a 403 error with the reason.
func Forbidden(format string, args ...any) *Error {
	return &Error{Status: http.StatusForbidden, Code: apitypes.CodeAccessDenied, Msg: fmt.Sprintf(format, args...)}
}

// NotFound returns a 404 error.
func NotFound(format string, args ...any) *Error {
	return &Error{Status: http.StatusNotFound, Code: apitypes.CodeNotFound, Msg: fmt.Sprintf(format, args...)}
}

// Conflict returns a 409 error.
func Conflict(format string, args ...any) *Error {
	return &Error{Status: http.StatusConflict, Code: apitypes.CodeConflict, Msg: fmt.Sprintf(format, args...)}
}

// Unavailable returns a 503 error: the subsystem is not running.
func Unavailable(format string, args ...any) *Error {
	return &Error{Status: http.StatusServiceUnavailable, Code: apitypes.CodeUnavailable, Msg: fmt.Sprintf(format, args...)}
}

type route struct {
	perm Perm
	h    HandlerFunc
	raw  http.HandlerFunc // streaming routes write their own response
}

// Server serves the local API.
type Server struct {
	log        *slog.Logger
	adminGroup string

	mu     sync.RWMutex
	routes map[string]route // "GET /v1/status" -> route
	limits Limits
	ll     *limitListener // while serving
}

// New returns a server with the default Limits. Members of adminGroup (a
// group name; empty for none) may call admin routes besides root.
func New(log *slog.Logger, adminGroup string) *Server {
	return &Server{log: log, adminGroup: adminGroup, routes: map[string]route{}, limits: Limits{}.normalized()}
}

// SetLimits replaces the limits (zero fields: the defaults); call it
// before Serve.
func (s *Server) SetLimits(l Limits) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limits = l.normalized()
}

// TooMany returns a 429 error: the caller holds too much open.
func TooMany(format string, args ...any) *Error {
	return &Error{Status: http.StatusTooManyRequests, Code: apitypes.CodeTooMany, Msg: fmt.Sprintf(format, args...)}
}

// handle registers h for method and path (path without the /v1 prefix).
// The agent's routes come from the route table (Mount).
func (s *Server) handle(method, path string, perm Perm, h HandlerFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.routes[method+" "+apitypes.APIVersion+path] = route{perm: perm, h: h}
}

// handleStream registers a handler that writes its own response (event
// streams). Authorization still happens first.
func (s *Server) handleStream(method, path string, perm Perm, h func(w http.ResponseWriter, r *Request)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.routes[method+" "+apitypes.APIVersion+path] = route{perm: perm, raw: func(w http.ResponseWriter, hr *http.Request) {
		h(w, &Request{HTTP: hr, Caller: callerFrom(hr.Context())})
	}}
}

// Served lists the routes being served ("GET /v1/status") with their
// permissions.
func (s *Server) Served() map[string]Perm {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make(map[string]Perm, len(s.routes))
	for k, r := range s.routes {
		out[k] = r.perm
	}
	return out
}

type ctxKey struct{}

func callerFrom(ctx context.Context) Caller {
	c, _ := ctx.Value(ctxKey{}).(Caller)
	return c
}

// Serve answers requests on ln until ctx is done, within the server's
// Limits: connections beyond a cap are turned away with 429, clients that
// do not send a request in time or stay idle are disconnected.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.mu.Lock()
	lim := s.limits
	ll := &limitListener{Listener: ln, s: s, lim: lim, perID: map[int]int{}}
	s.ll = ll
	s.mu.Unlock()
	hs := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: lim.ReadHeaderTimeout,
		IdleTimeout:       lim.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			caller, err := callerOf(c)
			if err != nil {
				caller = s.identify(c)
			}
			return context.WithValue(ctx, ctxKey{}, caller)
		},
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ll) }()
	select {
	case err := <-errc:
		return fmt.Errorf("local api: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		hs.Close()
	}
	<-errc
	return nil
}

func (s *Server) identify(c net.Conn) Caller {
	cred, err := ipc.PeerCred(c)
	if err != nil {
		s.log.Debug("local api: unknown peer", "err", err)
		return Caller{}
	}
	return Caller{Cred: cred, Known: true, Admin: s.isAdmin(cred.UID)}
}

func (s *Server) isAdmin(uid int) bool {
	if uid == 0 {
		return true
	}
	if s.adminGroup == "" {
		return false
	}
	g, err := user.LookupGroup(s.adminGroup)
	if err != nil {
		return false
	}
	u, err := user.LookupId(strconv.Itoa(uid))
	if err != nil {
		return false
	}
	if u.Gid == g.Gid {
		return true
	}
	gids, err := u.GroupIds()
	if err != nil {
		return false
	}
	for _, id := range gids {
		if id == g.Gid {
			return true
		}
	}
	return false
}

// ServeHTTP dispatches a request through the route table.
func (s *Server) ServeHTTP(w http.ResponseWriter, hr *http.Request) {
	s.mu.RLock()
	rt, ok := s.routes[hr.Method+" "+hr.URL.Path]
	s.mu.RUnlock()
	if !ok {
		if s.pathExists(hr.URL.Path) {
			writeErr(w, &Error{Status: http.StatusMethodNotAllowed, Code: apitypes.CodeBadRequest, Msg: fmt.Sprintf("%s does not accept %s", hr.URL.Path, hr.Method)})
			return
		}
		writeErr(w, NotFound("no route %s %s (this patchringd serves %s)", hr.Method, hr.URL.Path, apitypes.APIVersion))
		return
	}
	c := callerFrom(hr.Context())
	if err := authorize(c, rt.perm); err != nil {
		s.log.Info("local api: refused", "route", hr.Method+" "+hr.URL.Path, "uid", c.Cred.UID, "reason", err.Msg)
		writeErr(w, err)
		return
	}
	if rt.raw != nil {
		rt.raw(w, hr)
		return
	}
	v, err := rt.h(hr.Context(), &Request{HTTP: hr, Caller: c})
	if err != nil {
		ae := asError(err)
		if ae.Status >= 500 {
			s.log.Warn("local api: request failed", "route", hr.Method+" "+hr.URL.Path, "err", err)
		}
		writeErr(w, ae)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if v == nil {
		v = struct{}{}
	}
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) pathExists(p string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for k := range s.routes {
		if strings.HasSuffix(k, " "+p) {
			return true
		}
	}
	return false
}

func authorize(c Caller, p Perm) *Error {
	switch {
	case p == PermRead:
		return nil
	case !c.Known:
		return Forbidden("the caller's credentials are unknown; only reading is allowed")
	case p == PermUser:
		return nil
	case c.Admin:
		return nil
	}
	return Forbidden("uid %d may not do this: it needs root or membership in the agent's admin group", c.Cred.UID)
}

// WriteError writes e as the JSON error answer, for streaming handlers.
func WriteError(w http.ResponseWriter, e *Error) { writeErr(w, e) }

func writeErr(w http.ResponseWriter, e *Error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(apitypes.Error{Error: e.Msg, Code: e.Code})
}
