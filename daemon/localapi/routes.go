package localapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/patchring/patchring/daemon/apicall"
	"github.com/patchring/patchring/daemon/apitypes"
	"github.com/patchring/patchring/daemon/inventory"
	pinv "github.com/patchring/patchring/platform/inventory"
)

// The parts of the agent the local API calls, one small interface each.
// The parts know nothing of HTTP: they take typed requests and an
// apicall.Caller and fail with apicall.Error kinds.
type (
	// StatusPart answers GET /status.
	StatusPart interface {
		Status(ctx context.Context, c apicall.Caller) apitypes.Status
	}
	// InventoryPart is the software inventory (daemon/inventory).
	InventoryPart interface {
		APILatest(ctx context.Context) (*pinv.Snapshot, error)
		APIScan(ctx context.Context) (*pinv.Snapshot, error)
		APIHistory(ctx context.Context, limit int) ([]inventory.HistoryRecord, error)
	}
	// PolicyPart is the policy service (daemon/policysvc).
	PolicyPart interface {
		Effective() apitypes.EffectivePolicy
		RefreshNow(ctx context.Context) apitypes.EffectivePolicy
	}
	// BundlePart imports offline bundles.
	BundlePart interface {
		ImportBundle(ctx context.Context, req apitypes.BundleImportRequest) (apitypes.BundleImport, error)
	}
	// ReportsPart is the console reporter (daemon/reporter).
	ReportsPart interface {
		ExportReports(ctx context.Context) (apitypes.ReportExport, error)
	}
	// FleetPart is the node's view of its site.
	FleetPart interface {
		Fleet() apitypes.Fleet
		Peers() apitypes.Peers
	}
	// UnmanagedPart is the site's devices without an agent
	// (daemon/unmanaged).
	UnmanagedPart interface {
		APIUnmanaged(ctx context.Context) (apitypes.Unmanaged, error)
	}
	// FleetKeysPart is the site's gossip keyring.
	FleetKeysPart interface {
		FleetKeys(ctx context.Context) apitypes.FleetKeys
		ChangeFleetKey(ctx context.Context, req apitypes.KeyRequest) (apitypes.FleetKeys, error)
	}
	// VulnsPart is the node's vulnerability exposure (daemon/vulns).
	VulnsPart interface {
		APIVulns(ctx context.Context) (apitypes.Vulns, error)
	}
	// EnginePart is the update engine (daemon/engine).
	EnginePart interface {
		APIUpdates(ctx context.Context) apitypes.Updates
		APIHistory(ctx context.Context, limit int) ([]apitypes.Transaction, error)
		APIInstall(ctx context.Context, req apitypes.InstallRequest) (apitypes.Transaction, error)
		APIRollback(ctx context.Context, req apitypes.RollbackRequest) (apitypes.Transaction, error)
	}
	// RebootPart is the reboot orchestrator (daemon/reboot).
	RebootPart interface {
		StatusFor(ctx context.Context, c apicall.Caller) apitypes.RebootStatus
		DeferFor(ctx context.Context, c apicall.Caller, req apitypes.DeferRequest) (apitypes.RebootStatus, error)
		RefuseFor(ctx context.Context, c apicall.Caller, req apitypes.RefuseRequest) (apitypes.RebootStatus, error)
		RestartFor(ctx context.Context, c apicall.Caller, req apitypes.RestartRequest) (apitypes.RebootStatus, error)
		// OpenEvents opens c's event stream: next returns events until
		// the stream ends (false); closeFn releases it.
		OpenEvents(ctx context.Context, c apicall.Caller) (next func(context.Context) (apitypes.Event, bool), closeFn func(), err error)
	}
)

// Parts are the parts Mount serves; a nil part is switched off and its
// routes answer 404 like any unknown route.
type Parts struct {
	Status    StatusPart
	Inventory InventoryPart
	Policy    PolicyPart
	Bundles   BundlePart
	Reports   ReportsPart
	Fleet     FleetPart
	FleetKeys FleetKeysPart
	Engine    EnginePart
	Reboot    RebootPart
	Unmanaged UnmanagedPart
	Vulns     VulnsPart
}

// Route is one route of the local API: what it requires of its caller and
// which method of which part it calls.
type Route struct {
	Method string
	Path   string // without the /v1 prefix
	Perm   Perm
	Calls  string // "Part.Method"
	// bind returns the handler on p, or ok false when p lacks the part.
	bind func(p Parts) (h HandlerFunc, stream func(w http.ResponseWriter, r *Request), ok bool)
}

// routeTable is every route of the local API. A change here shows in
// testdata/routes.golden, so that a permission change is a reviewed diff.
var routeTable = []Route{
	{"GET", "/status", PermRead, "Status.Status", call(func(p Parts) StatusPart { return p.Status }, func(ctx context.Context, s StatusPart, r *Request) (any, error) {
		return s.Status(ctx, r.Caller.call()), nil
	})},

	{"GET", "/inventory", PermRead, "Inventory.APILatest", call(func(p Parts) InventoryPart { return p.Inventory }, func(ctx context.Context, s InventoryPart, r *Request) (any, error) {
		return s.APILatest(ctx)
	})},
	{"POST", "/inventory/scan", PermAdmin, "Inventory.APIScan", call(func(p Parts) InventoryPart { return p.Inventory }, func(ctx context.Context, s InventoryPart, r *Request) (any, error) {
		return s.APIScan(ctx)
	})},
	{"GET", "/inventory/history", PermRead, "Inventory.APIHistory", call(func(p Parts) InventoryPart { return p.Inventory }, func(ctx context.Context, s InventoryPart, r *Request) (any, error) {
		limit, err := limitOf(r)
		if err != nil {
			return nil, err
		}
		return s.APIHistory(ctx, limit)
	})},

	{"GET", "/policy", PermRead, "Policy.Effective", call(func(p Parts) PolicyPart { return p.Policy }, func(ctx context.Context, s PolicyPart, r *Request) (any, error) {
		return s.Effective(), nil
	})},
	{"POST", "/policy/refresh", PermAdmin, "Policy.RefreshNow", call(func(p Parts) PolicyPart { return p.Policy }, func(ctx context.Context, s PolicyPart, r *Request) (any, error) {
		return s.RefreshNow(ctx), nil
	})},
	{"POST", "/bundle/import", PermAdmin, "Bundles.ImportBundle", call(func(p Parts) BundlePart { return p.Bundles }, func(ctx context.Context, s BundlePart, r *Request) (any, error) {
		var req apitypes.BundleImportRequest
		if err := r.Decode(&req); err != nil {
			return nil, err
		}
		return s.ImportBundle(ctx, req)
	})},
	{"GET", "/reports/export", PermAdmin, "Reports.ExportReports", call(func(p Parts) ReportsPart { return p.Reports }, func(ctx context.Context, s ReportsPart, r *Request) (any, error) {
		return s.ExportReports(ctx)
	})},

	{"GET", "/fleet", PermRead, "Fleet.Fleet", call(func(p Parts) FleetPart { return p.Fleet }, func(ctx context.Context, s FleetPart, r *Request) (any, error) {
		return s.Fleet(), nil
	})},
	{"GET", "/peers", PermRead, "Fleet.Peers", call(func(p Parts) FleetPart { return p.Fleet }, func(ctx context.Context, s FleetPart, r *Request) (any, error) {
		return s.Peers(), nil
	})},
	{"GET", "/fleet/unmanaged", PermRead, "Unmanaged.APIUnmanaged", call(func(p Parts) UnmanagedPart { return p.Unmanaged }, func(ctx context.Context, s UnmanagedPart, r *Request) (any, error) {
		return s.APIUnmanaged(ctx)
	})},
	{"GET", "/fleet/keys", PermRead, "FleetKeys.FleetKeys", call(func(p Parts) FleetKeysPart { return p.FleetKeys }, func(ctx context.Context, s FleetKeysPart, r *Request) (any, error) {
		return s.FleetKeys(ctx), nil
	})},
	{"POST", "/fleet/keys", PermAdmin, "FleetKeys.ChangeFleetKey", call(func(p Parts) FleetKeysPart { return p.FleetKeys }, func(ctx context.Context, s FleetKeysPart, r *Request) (any, error) {
		var req apitypes.KeyRequest
		if err := r.Decode(&req); err != nil {
			return nil, err
		}
		return s.ChangeFleetKey(ctx, req)
	})},

	{"GET", "/updates", PermRead, "Engine.APIUpdates", call(func(p Parts) EnginePart { return p.Engine }, func(ctx context.Context, s EnginePart, r *Request) (any, error) {
		return s.APIUpdates(ctx), nil
	})},
	{"GET", "/vulns", PermRead, "Vulns.APIVulns", call(func(p Parts) VulnsPart { return p.Vulns }, func(ctx context.Context, s VulnsPart, r *Request) (any, error) {
		return s.APIVulns(ctx)
	})},
	{"GET", "/history", PermRead, "Engine.APIHistory", call(func(p Parts) EnginePart { return p.Engine }, func(ctx context.Context, s EnginePart, r *Request) (any, error) {
		limit, err := limitOf(r)
		if err != nil {
			return nil, err
		}
		return s.APIHistory(ctx, limit)
	})},
	{"POST", "/install", PermAdmin, "Engine.APIInstall", call(func(p Parts) EnginePart { return p.Engine }, func(ctx context.Context, s EnginePart, r *Request) (any, error) {
		var req apitypes.InstallRequest
		if err := r.Decode(&req); err != nil {
			return nil, err
		}
		return s.APIInstall(ctx, req)
	})},
	{"POST", "/rollback", PermAdmin, "Engine.APIRollback", call(func(p Parts) EnginePart { return p.Engine }, func(ctx context.Context, s EnginePart, r *Request) (any, error) {
		var req apitypes.RollbackRequest
		if err := r.Decode(&req); err != nil {
			return nil, err
		}
		return s.APIRollback(ctx, req)
	})},

	{"GET", "/reboot", PermRead, "Reboot.StatusFor", call(func(p Parts) RebootPart { return p.Reboot }, func(ctx context.Context, s RebootPart, r *Request) (any, error) {
		return s.StatusFor(ctx, r.Caller.call()), nil
	})},
	{"POST", "/reboot/defer", PermUser, "Reboot.DeferFor", call(func(p Parts) RebootPart { return p.Reboot }, func(ctx context.Context, s RebootPart, r *Request) (any, error) {
		var req apitypes.DeferRequest
		if err := r.Decode(&req); err != nil {
			return nil, err
		}
		return s.DeferFor(ctx, r.Caller.call(), req)
	})},
	{"POST", "/reboot/refuse", PermUser, "Reboot.RefuseFor", call(func(p Parts) RebootPart { return p.Reboot }, func(ctx context.Context, s RebootPart, r *Request) (any, error) {
		var req apitypes.RefuseRequest
		if err := decodeOptional(r, &req); err != nil {
			return nil, err
		}
		return s.RefuseFor(ctx, r.Caller.call(), req)
	})},
	{"POST", "/reboot/now", PermUser, "Reboot.RestartFor", call(func(p Parts) RebootPart { return p.Reboot }, func(ctx context.Context, s RebootPart, r *Request) (any, error) {
		var req apitypes.RestartRequest
		if err := decodeOptional(r, &req); err != nil {
			return nil, err
		}
		return s.RestartFor(ctx, r.Caller.call(), req)
	})},
	{"GET", "/reboot/events", PermRead, "Reboot.OpenEvents", func(p Parts) (HandlerFunc, func(http.ResponseWriter, *Request), bool) {
		if p.Reboot == nil {
			return nil, nil, false
		}
		return nil, func(w http.ResponseWriter, r *Request) { serveEvents(w, r, p.Reboot) }, true
	}},
}

// call binds a JSON route to the part that part picks out of Parts.
func call[P any](part func(Parts) P, h func(ctx context.Context, s P, r *Request) (any, error)) func(Parts) (HandlerFunc, func(http.ResponseWriter, *Request), bool) {
	return func(p Parts) (HandlerFunc, func(http.ResponseWriter, *Request), bool) {
		s := part(p)
		if any(s) == nil {
			return nil, nil, false
		}
		return func(ctx context.Context, r *Request) (any, error) { return h(ctx, s, r) }, nil, true
	}
}

// Routes returns the route table: every route the local API can serve.
func Routes() []Route {
	out := make([]Route, len(routeTable))
	copy(out, routeTable)
	return out
}

// Mount serves the routes of every part p has. Call it before Serve.
func (s *Server) Mount(p Parts) {
	for _, rt := range routeTable {
		h, stream, ok := rt.bind(p)
		switch {
		case !ok:
		case stream != nil:
			s.handleStream(rt.Method, rt.Path, rt.Perm, stream)
		default:
			s.handle(rt.Method, rt.Path, rt.Perm, h)
		}
	}
}

// call is the caller as the parts see it.
func (c Caller) call() apicall.Caller {
	return apicall.Caller{UID: c.Cred.UID, Known: c.Known, Admin: c.Admin}
}

// limitOf reads the optional ?limit= count of a listing.
func limitOf(r *Request) (int, error) {
	v := r.HTTP.URL.Query().Get("limit")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, BadRequest("limit %q is not a count", v)
	}
	return n, nil
}

// decodeOptional decodes a body that may be empty.
func decodeOptional(r *Request, v any) error {
	if r.HTTP.ContentLength == 0 {
		return nil
	}
	return r.Decode(v)
}

// asError turns a part's error into the API's: an apicall.Error by its
// kind, anything else as an internal error.
func asError(err error) *Error {
	var ae *Error
	if errors.As(err, &ae) {
		return ae
	}
	var ce *apicall.Error
	if !errors.As(err, &ce) {
		return &Error{Status: http.StatusInternalServerError, Code: apitypes.CodeInternal, Msg: err.Error()}
	}
	switch ce.Kind {
	case apicall.KindBadRequest:
		return BadRequest("%s", ce.Msg)
	case apicall.KindForbidden:
		return Forbidden("%s", ce.Msg)
	case apicall.KindNotFound:
		return NotFound("%s", ce.Msg)
	case apicall.KindConflict:
		return Conflict("%s", ce.Msg)
	case apicall.KindUnavailable:
		return Unavailable("%s", ce.Msg)
	case apicall.KindTooMany:
		return TooMany("%s", ce.Msg)
	case apicall.KindNoSpace:
		return &Error{Status: http.StatusInsufficientStorage, Code: apitypes.CodeUnavailable, Msg: ce.Msg}
	}
	return &Error{Status: http.StatusInternalServerError, Code: apitypes.CodeInternal, Msg: ce.Msg}
}

// eventWriteTimeout bounds how long one event may take to reach a client.
const eventWriteTimeout = 10 * time.Second

// serveEvents streams the reboot orchestrator's events as server-sent
// events, starting with the current status, until the client goes away or
// the orchestrator stops. A caller beyond its stream caps gets 429; a
// client that does not read its stream for eventWriteTimeout is
// disconnected.
func serveEvents(w http.ResponseWriter, r *Request, rb RebootPart) {
	ctx := r.HTTP.Context()
	next, closeFn, err := rb.OpenEvents(ctx, r.Caller.call())
	if err != nil {
		writeErr(w, asError(err))
		return
	}
	defer closeFn()
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	for {
		ev, ok := next(ctx)
		if !ok {
			return
		}
		if err := writeEvent(w, rc, ev); err != nil {
			return
		}
	}
}

func writeEvent(w http.ResponseWriter, rc *http.ResponseController, ev apitypes.Event) error {
	data, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	if err := rc.SetWriteDeadline(time.Now().Add(eventWriteTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", ev.Type, data); err != nil {
		return err
	}
	return rc.Flush()
}
