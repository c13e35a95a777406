package server

import (
	"context"
	"embed"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/patchring/patchring/console/auth"
	"github.com/patchring/patchring/console/report"
	"github.com/patchring/patchring/console/store"
	"github.com/patchring/patchring/policy/enroll"
)

//go:embed templates/*.html
var templateFS embed.FS

var templates = template.Must(template.New("").Funcs(template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
	"bytes": humanBytes,
}).ParseFS(templateFS, "templates/*.html"))

// page is what every template gets.
type page struct {
	Title   string
	View    string
	Account string
	Role    string
	CSRF    string
	Error   string
	Notice  string
	Data    any
	Table   *Table
	// Query is the request's query ("?..." or empty), kept by the view's
	// CSV and JSON links; Filters is its filter form, if it has one.
	Query   string
	Filters []Filter
}

// Table is a view as rows: what CSV exports and the dashboard lists.
type Table struct {
	Head []string
	Rows [][]Cell
}

// Cell is one value, optionally a link.
type Cell struct {
	Text string
	Href string
}

// view is one dashboard page with its JSON and CSV forms.
type view struct {
	name, title string
	// load returns the JSON data and the table.
	load func(r *http.Request) (any, *Table, error)
}

const listLimit = 1000

func (s *Server) views() []view {
	st := s.cfg.Store
	return append([]view{
		{"overview", "Fleet overview", func(r *http.Request) (any, *Table, error) {
			rows, err := st.Overview(r.Context())
			t := &Table{Head: []string{"Ring", "Site", "Nodes", "Up to date", "Compliance", "Updates pending", "Failed", "Reboot pending"}}
			for _, o := range rows {
				pct := "-"
				if o.Nodes > 0 {
					pct = fmt.Sprintf("%.1f%%", 100*float64(o.UpToDate)/float64(o.Nodes))
				}
				t.Rows = append(t.Rows, cells(o.Ring, o.Site, o.Nodes, o.UpToDate, pct, o.Pending, o.Failed, o.RebootPending))
			}
			return rows, t, err
		}},
		{"failures", "Failed installs and rollbacks", func(r *http.Request) (any, *Table, error) {
			rows, err := st.Failures(r.Context(), "", listLimit)
			return rows, failureTable(rows), err
		}},
		{"reboots", "Reboots pending, deferred, refused", func(r *http.Request) (any, *Table, error) {
			rows, err := st.Reboots(r.Context(), listLimit)
			t := &Table{Head: []string{"Host", "Site", "Ring", "Reboot", "By", "Deferrals", "Deadline"}}
			for _, n := range rows {
				t.Rows = append(t.Rows, append([]Cell{nodeLink(n.NodeID, n.Hostname)}, cells(n.Site, n.Ring, n.RebootState, n.RebootBy, n.RebootDeferrals, when(n.RebootDeadline))...))
			}
			return rows, t, err
		}},
		{"sites", "Sites", func(r *http.Request) (any, *Table, error) {
			rows, err := st.Sites(r.Context())
			t := &Table{Head: []string{"Site", "Members", "Last report", "From peers", "From origin", "Saved"}}
			for _, x := range rows {
				saved := "-"
				if tot := x.BytesFromPeers + x.BytesFromOrigin; tot > 0 {
					saved = fmt.Sprintf("%.1f%%", 100*float64(x.BytesFromPeers)/float64(tot))
				}
				t.Rows = append(t.Rows, cells(x.Site, x.Members, when(x.LastReport), humanBytes(x.BytesFromPeers), humanBytes(x.BytesFromOrigin), saved))
			}
			return rows, t, err
		}},
		{"expiries", "Expiries", func(r *http.Request) (any, *Table, error) {
			rows, err := st.Expiries(r.Context(), listLimit)
			t := &Table{Head: []string{"Host", "Site", "Signed metadata expires", "Credential expires"}}
			for _, n := range rows {
				t.Rows = append(t.Rows, append([]Cell{nodeLink(n.NodeID, n.Hostname)}, cells(n.Site, when(n.MetadataExpires), when(n.CredentialExpires))...))
			}
			return rows, t, err
		}},
	}, s.fleetViews()...)
}

func failureTable(rows []store.Failure) *Table {
	t := &Table{Head: []string{"When", "Host", "Site", "Ring", "Package", "Version", "Result", "Reason"}}
	for _, f := range rows {
		t.Rows = append(t.Rows, append(append(cells(when(f.At)), nodeLink(f.NodeID, f.Hostname)), cells(f.Site, f.Ring, f.Source+":"+f.Package, f.Version, f.Result, f.Reason)...))
	}
	return t
}

func nodeLink(id, host string) Cell {
	if host == "" {
		host = id
	}
	return Cell{Text: host, Href: "/nodes/" + id}
}

func cells(vs ...any) []Cell {
	out := make([]Cell, len(vs))
	for i, v := range vs {
		out[i] = Cell{Text: fmt.Sprint(v)}
	}
	return out
}

func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func (s *Server) routes() {
	m := s.mux
	m.HandleFunc("POST /api/v1/ingest", s.handleIngest)
	m.HandleFunc("GET /login", s.handleLoginForm)
	m.HandleFunc("POST /login", s.handleLogin)
	m.HandleFunc("POST /logout", s.guard(RoleViewer, s.handleLogout))
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	for _, v := range s.views() {
		m.HandleFunc("GET /api/v1/"+v.name, s.guard(RoleViewer, s.serveView(v, "json")))
		m.HandleFunc("GET /"+v.name+".csv", s.guard(RoleViewer, s.serveView(v, "csv")))
		m.HandleFunc("GET /"+v.name, s.guard(RoleViewer, s.serveView(v, "html")))
	}
	m.HandleFunc("GET /rollouts/{source}/{package}/{version}", s.guard(RoleViewer, s.serveRollout("html")))
	m.HandleFunc("GET /rollouts/{source}/{package}/{version}/rollout.csv", s.guard(RoleViewer, s.serveRollout("csv")))
	m.HandleFunc("GET /api/v1/rollouts/{source}/{package}/{version}", s.guard(RoleViewer, s.serveRollout("json")))
	m.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/overview", http.StatusSeeOther) })
	m.HandleFunc("GET /nodes/{id}", s.guard(RoleViewer, s.serveNode("html")))
	m.HandleFunc("GET /nodes/{id}/packages.csv", s.guard(RoleViewer, s.serveNode("csv")))
	m.HandleFunc("GET /api/v1/nodes/{id}", s.guard(RoleViewer, s.serveNode("json")))
	m.HandleFunc("POST /nodes/{id}/forget", s.guard(RoleOperator, s.handleForget))
	m.HandleFunc("POST /api/v1/nodes/{id}/forget", s.guard(RoleOperator, s.handleForget))
	m.HandleFunc("GET /tokens", s.guard(RoleOperator, s.handleTokens))
	m.HandleFunc("POST /tokens", s.guard(RoleOperator, s.handleTokenCreate))
	m.HandleFunc("POST /tokens/{id}/revoke", s.guard(RoleOperator, s.handleTokenRevoke))
	m.HandleFunc("GET /audit", s.guard(RoleOperator, s.serveAudit("html")))
	m.HandleFunc("GET /audit.csv", s.guard(RoleOperator, s.serveAudit("csv")))
	m.HandleFunc("GET /api/v1/audit", s.guard(RoleOperator, s.serveAudit("json")))
	if s.cfg.Issuing != nil {
		m.Handle("POST "+enroll.PathEnroll, s.cfg.Issuing)
		m.Handle("POST "+enroll.PathRenew, s.cfg.Issuing)
	}
}

func (s *Server) serveView(v view, format string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		data, t, err := v.load(r)
		if errors.Is(err, store.ErrBadRequest) {
			httpError(w, http.StatusBadRequest, err)
			return
		}
		if err != nil {
			s.cfg.Logger.Error("view", "view", v.name, "err", err)
			httpError(w, http.StatusServiceUnavailable, err)
			return
		}
		s.emit(w, r, format, v.name, v.title, data, t)
	}
}

func (s *Server) emit(w http.ResponseWriter, r *http.Request, format, name, title string, data any, t *Table) {
	switch format {
	case "json":
		writeJSON(w, data)
	case "csv":
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", strings.ReplaceAll(name, "/", "-")+".csv"))
		cw := csv.NewWriter(w)
		cw.Write(t.Head)
		for _, row := range t.Rows {
			rec := make([]string, len(row))
			for i, c := range row {
				rec[i] = csvSafe(c.Text)
			}
			cw.Write(rec)
		}
		cw.Flush()
	default:
		p := page{Title: title, View: name, Data: data, Table: t}
		if r.URL.RawQuery != "" {
			p.Query = "?" + r.URL.RawQuery
		}
		if f := viewFilters[name]; f != nil {
			p.Filters = f(r)
		}
		s.render(w, r, "view", p)
	}
}

// csvSafe keeps a spreadsheet from running a cell that a node reported
// (a hostname, a failure reason) as a formula.
func csvSafe(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		if _, err := strconv.ParseFloat(v, 64); err != nil {
			return "'" + v
		}
	}
	return v
}

// NodePage is the JSON of a node's page.
type NodePage struct {
	Node     store.Node      `json:"node"`
	Packages []store.Package `json:"packages"`
	Failures []store.Failure `json:"failures"`
}

func (s *Server) serveNode(format string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		id := r.PathValue("id")
		if _, err := report.PublicKeyFromNodeID(id); err != nil {
			httpError(w, http.StatusNotFound, fmt.Errorf("node %.64q: %w", id, store.ErrNotFound))
			return
		}
		var p NodePage
		var err error
		if p.Node, err = s.cfg.Store.Node(ctx, id); err == nil {
			if p.Packages, err = s.cfg.Store.Packages(ctx, id); err == nil {
				p.Failures, err = s.cfg.Store.Failures(ctx, id, 100)
			}
		}
		if err != nil {
			status := http.StatusServiceUnavailable
			if errors.Is(err, store.ErrNotFound) {
				status = http.StatusNotFound
			}
			httpError(w, status, err)
			return
		}
		t := &Table{Head: []string{"Package", "Arch", "Version"}}
		for _, pk := range p.Packages {
			t.Rows = append(t.Rows, cells(pk.Name, pk.Arch, pk.Version))
		}
		if format == "html" {
			s.render(w, r, "node", page{Title: "Node " + p.Node.Hostname, View: "node", Data: p, Table: failureTable(p.Failures)})
			return
		}
		s.emit(w, r, format, "packages-"+p.Node.Hostname, "", p, t)
	}
}

func (s *Server) handleForget(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	n, err := s.cfg.Store.Node(r.Context(), id)
	if err == nil {
		err = s.cfg.Store.ForgetNode(r.Context(), id)
	}
	if err != nil {
		status := http.StatusServiceUnavailable
		if errors.Is(err, store.ErrNotFound) {
			status = http.StatusNotFound
		}
		httpError(w, status, err)
		return
	}
	if err := s.audit(r.Context(), "forget node", fmt.Sprintf("%s (%s, site %s)", id, n.Hostname, n.Site)); err != nil {
		httpError(w, http.StatusServiceUnavailable, err)
		return
	}
	if wantsHTML(r) {
		http.Redirect(w, r, "/overview", http.StatusSeeOther)
		return
	}
	writeJSON(w, map[string]string{"forgotten": id})
}

func (s *Server) handleTokens(w http.ResponseWriter, r *http.Request) {
	s.tokensPage(w, r, "")
}

func (s *Server) tokensPage(w http.ResponseWriter, r *http.Request, notice string) {
	toks, err := s.cfg.Store.Tokens(r.Context())
	if err != nil {
		httpError(w, http.StatusServiceUnavailable, err)
		return
	}
	s.render(w, r, "tokens", page{Title: "API tokens", View: "tokens", Data: toks, Notice: notice})
}

// NewToken creates an API token for account and returns the secret to
// hand to its user (shown once; only its hash is kept).
func NewToken(ctx context.Context, st *store.Store, account, label string, now time.Time) (id, secret string, err error) {
	id = auth.NewSecret()[:12]
	secret = "prc_" + auth.NewSecret()
	if err := st.PutToken(ctx, store.Token{ID: id, SecretHash: auth.HashSecret(secret), Account: account, Label: label, CreatedAt: now}); err != nil {
		return "", "", err
	}
	return id, secret, nil
}

func (s *Server) handleTokenCreate(w http.ResponseWriter, r *http.Request) {
	label := strings.TrimSpace(r.PostFormValue("label"))
	if label == "" || len(label) > 100 {
		httpError(w, http.StatusBadRequest, errors.New("a token needs a label of at most 100 characters"))
		return
	}
	p := who(r.Context())
	id, secret, err := NewToken(r.Context(), s.cfg.Store, p.Account, label, s.cfg.Now())
	if err == nil {
		err = s.audit(r.Context(), "create API token", fmt.Sprintf("%s %q for %s", id, label, p.Account))
	}
	if err != nil {
		httpError(w, http.StatusServiceUnavailable, err)
		return
	}
	s.tokensPage(w, r, "New token "+id+" (shown once): "+secret)
}

func (s *Server) handleTokenRevoke(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	err := s.cfg.Store.DeleteToken(r.Context(), id)
	if err == nil {
		err = s.audit(r.Context(), "revoke API token", id)
	}
	if err != nil {
		status := http.StatusServiceUnavailable
		if errors.Is(err, store.ErrNotFound) {
			status = http.StatusNotFound
		}
		httpError(w, status, err)
		return
	}
	http.Redirect(w, r, "/tokens", http.StatusSeeOther)
}

func (s *Server) serveAudit(format string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		log, err := s.cfg.Store.AuditLog(r.Context(), listLimit)
		if err != nil {
			httpError(w, http.StatusServiceUnavailable, err)
			return
		}
		t := &Table{Head: []string{"When", "Who", "Action", "Detail"}}
		for _, e := range log {
			t.Rows = append(t.Rows, cells(when(e.At), e.Actor, e.Action, e.Detail))
		}
		s.emit(w, r, format, "audit", "Audit log", log, t)
	}
}

func (s *Server) render(w http.ResponseWriter, r *http.Request, name string, p page) {
	if v := who(r.Context()); v.Account != "" {
		p.Account, p.Role, p.CSRF = v.Account, v.Role, v.CSRF
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := templates.ExecuteTemplate(w, name+".html", p); err != nil {
		s.cfg.Logger.Error("render", "page", name, "err", err)
	}
}

func wantsHTML(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/html") || r.Header.Get("Content-Type") == "application/x-www-form-urlencoded"
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// APIError is the JSON body of every error answer.
type APIError struct {
	Error string `json:"error"`
}

func httpError(w http.ResponseWriter, status int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(APIError{Error: err.Error()})
}
