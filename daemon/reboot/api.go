package reboot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os/user"
	"strconv"
	"sync"
	"time"

	"github.com/patchring/patchring/daemon/apitypes"
	"github.com/patchring/patchring/daemon/localapi"
)

// Routes registers the reboot routes of the local API:
//
//	GET  /reboot         status (any local user)
//	POST /reboot/defer   defer by a choice the policy offers (apitypes.DeferRequest)
//	POST /reboot/refuse  decline the restart where the policy allows it
//	POST /reboot/now     restart now (a restart must be pending; root, the
//	                     admin group, or the user at the machine where the
//	                     policy lets users restart)
//	GET  /reboot/events  server-sent events (apitypes.Event as JSON data)
//
// A user's request beyond the policy's limits gets 403 with the reason.
func (o *Orchestrator) Routes(api *localapi.Server) {
	api.Handle(http.MethodGet, "/reboot", localapi.PermRead, o.handleStatus)
	api.Handle(http.MethodPost, "/reboot/defer", localapi.PermUser, o.handleDefer)
	api.Handle(http.MethodPost, "/reboot/refuse", localapi.PermUser, o.handleRefuse)
	api.Handle(http.MethodPost, "/reboot/now", localapi.PermUser, o.handleNow)
	api.HandleStream(http.MethodGet, "/reboot/events", localapi.PermRead, o.handleEvents)
}

func (o *Orchestrator) handleStatus(ctx context.Context, r *localapi.Request) (any, error) {
	st := o.RebootStatus()
	o.forCaller(ctx, r.Caller, &st)
	return st, nil
}

// forCaller fills in what the status says about the caller: whether it
// may restart the machine now.
func (o *Orchestrator) forCaller(ctx context.Context, c localapi.Caller, st *apitypes.RebootStatus) {
	if !st.Required {
		return
	}
	if !c.Known {
		st.RestartDenied = "the caller's credentials are unknown"
		return
	}
	if err := o.AuthorizeRestart(ctx, c.Cred.UID, c.Admin); err != nil {
		st.RestartDenied = err.Error()
	}
}

func (o *Orchestrator) handleDefer(ctx context.Context, r *localapi.Request) (any, error) {
	var req apitypes.DeferRequest
	if err := r.Decode(&req); err != nil {
		return nil, err
	}
	if req.Choice == "" {
		return nil, localapi.BadRequest("defer: choice is empty; name one of the choices of GET %s/reboot", apitypes.APIVersion)
	}
	st, err := o.Defer(ctx, callerName(r.Caller), req.Choice)
	if err != nil {
		return nil, apiError(err)
	}
	return st, nil
}

func (o *Orchestrator) handleRefuse(ctx context.Context, r *localapi.Request) (any, error) {
	var req apitypes.RefuseRequest
	if err := decodeOptional(r, &req); err != nil {
		return nil, err
	}
	st, err := o.Refuse(ctx, callerName(r.Caller))
	if err != nil {
		return nil, apiError(err)
	}
	return st, nil
}

func (o *Orchestrator) handleNow(ctx context.Context, r *localapi.Request) (any, error) {
	var req apitypes.RestartRequest
	if err := decodeOptional(r, &req); err != nil {
		return nil, err
	}
	if err := o.AuthorizeRestart(ctx, r.Caller.Cred.UID, r.Caller.Admin); err != nil {
		return nil, apiError(err)
	}
	if err := o.RestartNow(ctx, callerName(r.Caller)); err != nil {
		return nil, apiError(err)
	}
	return o.RebootStatus(), nil
}

// decodeOptional decodes a body that may be empty.
func decodeOptional(r *localapi.Request, v any) error {
	if r.HTTP.ContentLength == 0 {
		return nil
	}
	return r.Decode(v)
}

// apiError maps the orchestrator's errors to the local API's.
func apiError(err error) error {
	var d *DeniedError
	switch {
	case errors.As(err, &d):
		return localapi.Forbidden("%s", d.Reason)
	case errors.Is(err, ErrNoRestartPending), errors.Is(err, ErrRestarting), errors.Is(err, ErrRefused):
		return localapi.Conflict("%v", err)
	case errors.Is(err, ErrNotRunning):
		return localapi.Unavailable("%v", err)
	}
	return err
}

// callerName names a caller for the log, the status and the history:
// "alice (uid 1000)".
func callerName(c localapi.Caller) string {
	if !c.Known {
		return "an unknown local user"
	}
	uid := strconv.Itoa(c.Cred.UID)
	if u, err := user.LookupId(uid); err == nil && u.Username != "" {
		return fmt.Sprintf("%s (uid %s)", u.Username, uid)
	}
	return "uid " + uid
}

// handleEvents streams the orchestrator's events as server-sent events,
// starting with the current status, until the client goes away or the
// server stops.
//
// A uid may hold StreamsPerUID streams, all uids but root's together
// Streams; beyond that the request gets 429. A client that does not read
// its stream for eventWriteTimeout is disconnected.
func (o *Orchestrator) handleEvents(w http.ResponseWriter, r *localapi.Request) {
	uid := -1
	if r.Caller.Known {
		uid = r.Caller.Cred.UID
	}
	if why := o.streams.take(uid); why != "" {
		o.log.Debug("event stream refused", "uid", uid, "reason", why)
		localapi.WriteError(w, localapi.TooMany("%s", why))
		return
	}
	defer o.streams.release(uid)
	events, cancel := o.Subscribe()
	defer cancel()
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	ctx := r.HTTP.Context()
	st := o.RebootStatus()
	o.forCaller(ctx, r.Caller, &st)
	if err := writeEvent(w, rc, apitypes.Event{Type: apitypes.EventRebootStatus, Reboot: &st, Time: o.clock.Now()}); err != nil {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			if ev.Reboot != nil {
				o.forCaller(ctx, r.Caller, ev.Reboot) // each subscriber has its own copy
			}
			if err := writeEvent(w, rc, ev); err != nil {
				o.log.Debug("event stream ended", "err", err)
				return
			}
		}
	}
}

// eventWriteTimeout bounds how long one event may take to reach a client.
const eventWriteTimeout = 10 * time.Second

// Caps of the event streams; root is exempt.
const (
	StreamsPerUID = 8
	Streams       = 64
)

// streamCount counts the open event streams per uid.
type streamCount struct {
	mu    sync.Mutex
	perID map[int]int
	total int
}

// take reserves a stream for uid or says why there is none.
func (s *streamCount) take(uid int) string {
	if uid == 0 {
		return ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.perID[uid] >= StreamsPerUID:
		return fmt.Sprintf("too many event streams of uid %d (at most %d at once)", uid, StreamsPerUID)
	case s.total >= Streams:
		return fmt.Sprintf("too many event streams of local users (at most %d at once)", Streams)
	}
	if s.perID == nil {
		s.perID = map[int]int{}
	}
	s.perID[uid]++
	s.total++
	return ""
}

func (s *streamCount) release(uid int) {
	if uid == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perID[uid]--; s.perID[uid] <= 0 {
		delete(s.perID, uid)
	}
	s.total--
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
