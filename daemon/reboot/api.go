package reboot

import (
	"context"
	"errors"
	"fmt"
	"os/user"
	"strconv"
	"sync"

	"github.com/patchring/patchring/daemon/apicall"
	"github.com/patchring/patchring/daemon/apitypes"
)

// The orchestrator's calls of the local API (its routes are in
// daemon/localapi/routes.go):
//
//	GET  /reboot         StatusFor (any local user)
//	POST /reboot/defer   DeferFor: defer by a choice the policy offers
//	POST /reboot/refuse  RefuseFor: decline the restart where the policy allows it
//	POST /reboot/now     RestartFor: restart now (a restart must be pending; root,
//	                     the admin group, or the user at the machine where the
//	                     policy lets users restart)
//	GET  /reboot/events  OpenEvents: server-sent events (apitypes.Event)
//
// A user's request beyond the policy's limits fails with
// apicall.KindForbidden and the reason.

// StatusFor is the reboot status as caller c sees it.
func (o *Orchestrator) StatusFor(ctx context.Context, c apicall.Caller) apitypes.RebootStatus {
	st := o.RebootStatus()
	o.forCaller(ctx, c, &st)
	return st
}

// forCaller fills in what the status says about the caller: whether it
// may restart the machine now.
func (o *Orchestrator) forCaller(ctx context.Context, c apicall.Caller, st *apitypes.RebootStatus) {
	if !st.Required {
		return
	}
	if !c.Known {
		st.RestartDenied = "the caller's credentials are unknown"
		return
	}
	if err := o.AuthorizeRestart(ctx, c.UID, c.Admin); err != nil {
		st.RestartDenied = err.Error()
	}
}

// DeferFor defers the pending restart by req.Choice on behalf of c.
func (o *Orchestrator) DeferFor(ctx context.Context, c apicall.Caller, req apitypes.DeferRequest) (apitypes.RebootStatus, error) {
	if req.Choice == "" {
		return apitypes.RebootStatus{}, apicall.BadRequest("defer: choice is empty; name one of the choices of GET %s/reboot", apitypes.APIVersion)
	}
	st, err := o.Defer(ctx, callerName(c), req.Choice)
	if err != nil {
		return apitypes.RebootStatus{}, apiError(err)
	}
	return st, nil
}

// RefuseFor declines the pending restart on behalf of c.
func (o *Orchestrator) RefuseFor(ctx context.Context, c apicall.Caller, _ apitypes.RefuseRequest) (apitypes.RebootStatus, error) {
	st, err := o.Refuse(ctx, callerName(c))
	if err != nil {
		return apitypes.RebootStatus{}, apiError(err)
	}
	return st, nil
}

// RestartFor restarts the machine now on behalf of c, if c may.
func (o *Orchestrator) RestartFor(ctx context.Context, c apicall.Caller, _ apitypes.RestartRequest) (apitypes.RebootStatus, error) {
	if err := o.AuthorizeRestart(ctx, c.UID, c.Admin); err != nil {
		return apitypes.RebootStatus{}, apiError(err)
	}
	if err := o.RestartNow(ctx, callerName(c)); err != nil {
		return apitypes.RebootStatus{}, apiError(err)
	}
	return o.RebootStatus(), nil
}

// apiError maps the orchestrator's errors to the kinds of the local API.
func apiError(err error) error {
	var d *DeniedError
	switch {
	case errors.As(err, &d):
		return apicall.Forbidden("%s", d.Reason)
	case errors.Is(err, ErrNoRestartPending), errors.Is(err, ErrRestarting), errors.Is(err, ErrRefused):
		return apicall.Conflict("%v", err)
	case errors.Is(err, ErrNotRunning):
		return apicall.Unavailable("%v", err)
	}
	return err
}

// callerName names a caller for the log, the status and the history:
// "alice (uid 1000)".
func callerName(c apicall.Caller) string {
	if !c.Known {
		return "an unknown local user"
	}
	uid := strconv.Itoa(c.UID)
	if u, err := user.LookupId(uid); err == nil && u.Username != "" {
		return fmt.Sprintf("%s (uid %s)", u.Username, uid)
	}
	return "uid " + uid
}

// OpenEvents opens an event stream for c: next returns the current status
// (as c sees it) first, then the orchestrator's events, each as c sees
// it, until ctx ends or the orchestrator stops (ok false); closeFn ends
// the stream and must be called once.
//
// A uid may hold StreamsPerUID streams, all uids but root's together
// Streams; beyond that OpenEvents fails with apicall.KindTooMany.
func (o *Orchestrator) OpenEvents(ctx context.Context, c apicall.Caller) (next func(context.Context) (apitypes.Event, bool), closeFn func(), err error) {
	uid := -1
	if c.Known {
		uid = c.UID
	}
	if why := o.streams.take(uid); why != "" {
		o.log.Debug("event stream refused", "uid", uid, "reason", why)
		return nil, nil, apicall.TooMany("%s", why)
	}
	events, cancel := o.Subscribe()
	st := o.StatusFor(ctx, c)
	first := &apitypes.Event{Type: apitypes.EventRebootStatus, Reboot: &st, Time: o.clock.Now()}
	next = func(ctx context.Context) (apitypes.Event, bool) {
		if first != nil {
			ev := *first
			first = nil
			return ev, true
		}
		select {
		case <-ctx.Done():
			return apitypes.Event{}, false
		case ev, ok := <-events:
			if !ok {
				return apitypes.Event{}, false
			}
			if ev.Reboot != nil {
				o.forCaller(ctx, c, ev.Reboot) // each subscriber has its own copy
			}
			return ev, true
		}
	}
	var once sync.Once
	closeFn = func() {
		once.Do(func() {
			cancel()
			o.streams.release(uid)
		})
	}
	return next, closeFn, nil
}

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
