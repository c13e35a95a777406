package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/patchring/patchring/console/auth"
	"github.com/patchring/patchring/console/store"
)

// Cookie names.
const (
	sessionCookie = "patchring_console_session"
	loginCookie   = "patchring_console_login"
)

// principal is who makes a request.
type principal struct {
	Account string
	Role    string
	CSRF    string // empty for token requests
	Token   string // token ID for token requests
}

type principalKey struct{}

func who(ctx context.Context) principal {
	p, _ := ctx.Value(principalKey{}).(principal)
	return p
}

// authenticate finds the request's principal: an API token in the
// Authorization header, or a session cookie.
func (s *Server) authenticate(r *http.Request) (principal, error) {
	ctx := r.Context()
	if h := r.Header.Get("Authorization"); h != "" {
		secret, ok := strings.CutPrefix(h, "Bearer ")
		if !ok {
			return principal{}, errors.New("authorization is not a bearer token")
		}
		tok, err := s.cfg.Store.TokenBySecretHash(ctx, auth.HashSecret(strings.TrimSpace(secret)))
		if err != nil {
			return principal{}, fmt.Errorf("unknown or revoked API token")
		}
		a, err := s.cfg.Store.Account(ctx, tok.Account)
		if err != nil {
			return principal{}, err
		}
		return principal{Account: a.Name, Role: a.Role, Token: tok.ID}, nil
	}
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return principal{}, errors.New("not logged in")
	}
	sess, err := s.cfg.Store.Session(ctx, auth.HashSecret(c.Value), s.cfg.Now())
	if err != nil {
		return principal{}, errors.New("session expired")
	}
	a, err := s.cfg.Store.Account(ctx, sess.Account)
	if err != nil {
		return principal{}, err
	}
	return principal{Account: a.Name, Role: a.Role, CSRF: sess.CSRF}, nil
}

// sameOrigin refuses a browser request that another site made: the
// Sec-Fetch-Site and Origin headers browsers send say where a form post
// came from. Requests without them (curl, the CLI) pass this check; they
// carry no ambient cookie of a victim anyway, or a CSRF token is checked.
func sameOrigin(r *http.Request) error {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
	default:
		return fmt.Errorf("cross-site request (Sec-Fetch-Site: %s)", r.Header.Get("Sec-Fetch-Site"))
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return fmt.Errorf("cross-origin request from %q", o)
		}
	}
	return nil
}

// guard wraps a handler with authentication and the role it needs. A
// state-changing request from a session must carry the session's CSRF
// token and come from the console's own origin.
func (s *Server) guard(role string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := s.authenticate(r)
		if err != nil {
			if wantsHTML(r) && r.Method == http.MethodGet && !strings.HasPrefix(r.URL.Path, "/api/") {
				http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			httpError(w, http.StatusUnauthorized, err)
			return
		}
		if role == RoleOperator && p.Role != RoleOperator {
			httpError(w, http.StatusForbidden, fmt.Errorf("%s is a %s: this needs an operator", p.Account, p.Role))
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead && p.Token == "" {
			if err := sameOrigin(r); err != nil {
				s.cfg.Logger.Warn("refused a cross-site request", "account", p.Account, "path", r.URL.Path, "err", err)
				httpError(w, http.StatusForbidden, err)
				return
			}
			if !auth.Equal(r.PostFormValue("csrf"), p.CSRF) {
				s.cfg.Logger.Warn("refused a form without its CSRF token", "account", p.Account, "path", r.URL.Path)
				httpError(w, http.StatusForbidden, errors.New("missing or wrong CSRF token: reload the page"))
				return
			}
		}
		h(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	}
}

// audit records an operator action.
func (s *Server) audit(ctx context.Context, action, detail string) error {
	p := who(ctx)
	actor := p.Account
	if p.Token != "" {
		actor += " (token " + p.Token + ")"
	}
	return s.cfg.Store.Audit(ctx, store.AuditEntry{At: s.cfg.Now(), Actor: actor, Action: action, Detail: detail})
}

func (s *Server) setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge, HttpOnly: true, Secure: s.cfg.Secure, SameSite: http.SameSiteStrictMode})
}

func (s *Server) handleLoginForm(w http.ResponseWriter, r *http.Request) {
	// The login form carries its own CSRF token (double submit): a
	// cross-site page cannot log a victim into the attacker's account.
	tok := auth.NewSecret()
	s.setCookie(w, loginCookie, tok, 600)
	s.render(w, r, "login", page{Title: "Log in", Data: map[string]string{"CSRF": tok, "Next": safeNext(r.URL.Query().Get("next"))}})
}

func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if err := sameOrigin(r); err != nil {
		httpError(w, http.StatusForbidden, err)
		return
	}
	c, err := r.Cookie(loginCookie)
	if err != nil || !auth.Equal(c.Value, r.PostFormValue("csrf")) {
		httpError(w, http.StatusForbidden, errors.New("missing or wrong CSRF token: reload the login page"))
		return
	}
	name, password := r.PostFormValue("account"), r.PostFormValue("password")
	a, err := s.cfg.Store.Account(ctx, name)
	if err == nil {
		err = auth.CheckPassword(a.PasswordHash, password)
	} else {
		// Spend the same time on an unknown account.
		auth.CheckPassword(dummyHash(), password)
	}
	if err != nil {
		s.cfg.Logger.Warn("failed login", "account", name)
		w.WriteHeader(http.StatusUnauthorized)
		tok := auth.NewSecret()
		s.setCookie(w, loginCookie, tok, 600)
		s.render(w, r, "login", page{Title: "Log in", Error: "wrong account or password", Data: map[string]string{"CSRF": tok, "Next": safeNext(r.PostFormValue("next"))}})
		return
	}
	id := auth.NewSecret()
	sess := store.Session{IDHash: auth.HashSecret(id), Account: a.Name, CSRF: auth.NewSecret(), ExpiresAt: s.cfg.Now().Add(s.cfg.SessionTTL)}
	if err := s.cfg.Store.PutSession(ctx, sess); err != nil {
		httpError(w, http.StatusServiceUnavailable, err)
		return
	}
	// Sweep expired sessions now and then: at every login.
	s.cfg.Store.DeleteSession(ctx, "", s.cfg.Now())
	s.cfg.Store.Audit(ctx, store.AuditEntry{At: s.cfg.Now(), Actor: a.Name, Action: "login", Detail: "role " + a.Role})
	s.setCookie(w, loginCookie, "", -1)
	s.setCookie(w, sessionCookie, id, int(s.cfg.SessionTTL.Seconds()))
	http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
}

func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		s.cfg.Store.DeleteSession(r.Context(), auth.HashSecret(c.Value), s.cfg.Now())
	}
	s.setCookie(w, sessionCookie, "", -1)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// safeNext keeps a post-login redirect on this console.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/"
	}
	return next
}

// dummyHash is made on first use: an argon2id hash costs 64 MiB, which
// a CLI command that never serves should not pay.
var dummyHash = sync.OnceValue(func() string {
	h, _ := auth.HashPassword("not-a-password-of-anyone")
	return h
})
