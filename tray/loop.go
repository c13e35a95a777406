package tray

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/patchring/patchring/daemon/apitypes"
)

// callTimeout bounds each call to the daemon and the notification server.
const callTimeout = 15 * time.Second

// host shows the tray icon and menu. Its methods other than the channels
// are called from the loop's goroutine only.
type host interface {
	// show applies a view: icon, tooltip and menu.
	show(v view)
	// clicks delivers the actions of the menu items the user clicks.
	clicks() <-chan action
	// visibility delivers whether a StatusNotifierItem host shows the icon,
	// each time that changes.
	visibility() <-chan bool
}

// loop is the tray's state machine: it follows the daemon, renders the menu
// and turns the user's choices into daemon calls. One goroutine runs it.
type loop struct {
	d    Daemon
	opts Options
	log  *slog.Logger
	h    host
	n    Notifier // nil: no notifications

	connected  bool
	everFailed bool
	st         apitypes.RebootStatus
	events     <-chan apitypes.Event
	stopEvents context.CancelFunc
	backoff    time.Duration
	retry      <-chan time.Time

	visible  bool // a tray host shows our menu
	actions  <-chan ActionInvoked
	remind   <-chan time.Time
	promptID uint32
	// promptKey is what the shown prompt said; a new prompt is shown when
	// it would say something else.
	promptKey   string
	countdownID uint32
	detailsID   uint32
	failureID   uint32

	loggedNoNotifier bool
	loggedNoHost     bool
}

func newLoop(d Daemon, opts Options, h host, n Notifier, visible bool) *loop {
	l := &loop{d: d, opts: opts, log: opts.Log, h: h, n: n, visible: visible}
	if n != nil {
		l.actions = n.Actions()
	}
	return l
}

// run follows the daemon until ctx ends or the user quits; both are a clean
// end.
func (l *loop) run(ctx context.Context) error {
	defer func() {
		if l.stopEvents != nil {
			l.stopEvents()
		}
	}()
	if !l.visible {
		l.noHost()
	}
	l.render()
	l.connect(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-l.events:
			if !ok {
				l.disconnected(ctx, errors.New("event stream ended"))
				continue
			}
			if ev.Reboot != nil {
				l.update(ctx, *ev.Reboot, ev)
			}
		case <-l.retry:
			l.retry = nil
			l.connect(ctx)
		case a := <-l.h.clicks():
			if a.kind == actQuit {
				l.log.Info("quit from the tray menu")
				return nil
			}
			l.do(ctx, a, false)
		case inv, ok := <-l.actions:
			if !ok {
				l.actions = nil
				continue
			}
			if a, ok := parseActionKey(inv.Key); ok {
				l.do(ctx, a, inv.ID == l.promptID)
			}
		case v := <-l.h.visibility():
			l.setVisible(ctx, v)
		case <-l.remind:
			l.remind = nil
			if !l.visible {
				l.promptKey = ""
				l.maybePrompt(ctx)
			}
		}
	}
}

// connect subscribes to the daemon's events, then reads its status.
func (l *loop) connect(ctx context.Context) {
	evCtx, cancel := context.WithCancel(ctx)
	events, err := l.d.Events(evCtx)
	if err != nil {
		cancel()
		l.disconnected(ctx, fmt.Errorf("subscribe to events: %w", err))
		return
	}
	cctx, ccancel := context.WithTimeout(ctx, callTimeout)
	st, err := l.d.RebootStatus(cctx)
	ccancel()
	if err != nil {
		cancel()
		l.disconnected(ctx, fmt.Errorf("read reboot status: %w", err))
		return
	}
	l.events, l.stopEvents = events, cancel
	l.connected, l.backoff, l.retry = true, 0, nil
	l.log.Info("connected to patchringd", "state", state(st), "required", st.Required)
	l.update(ctx, st, apitypes.Event{})
}

// disconnected shows the tray as disconnected and schedules the next
// attempt with exponential backoff.
func (l *loop) disconnected(ctx context.Context, err error) {
	if l.stopEvents != nil {
		l.stopEvents()
		l.stopEvents = nil
	}
	l.events = nil
	if l.connected || !l.everFailed {
		l.log.Warn("no connection to patchringd, retrying", "err", err)
	} else {
		l.log.Debug("patchringd still unreachable", "err", err, "retry_in", l.backoff)
	}
	l.connected, l.everFailed = false, true
	l.render()
	if l.backoff == 0 {
		l.backoff = l.opts.RetryMin
	} else {
		l.backoff = min(2*l.backoff, l.opts.RetryMax)
	}
	if ctx.Err() == nil {
		l.retry = l.opts.Clock.After(l.backoff)
	}
}

func (l *loop) now() time.Time { return l.opts.Clock.Now() }

func (l *loop) render() {
	l.h.show(buildView(l.st, l.connected, l.now(), l.opts.Location))
}

// update takes a new status from the daemon (with the event that carried
// it, if any), redraws and shows the notifications it calls for.
func (l *loop) update(ctx context.Context, st apitypes.RebootStatus, ev apitypes.Event) {
	l.st = st
	l.render()
	switch ev.Type {
	case apitypes.EventRebootCountdown:
		at := ev.Time
		if at.IsZero() {
			at = l.now()
		}
		l.countdownID = l.notify(ctx, l.countdownID, countdownNotification(st, at))
		return
	case apitypes.EventRebooting:
		l.countdownID = l.notify(ctx, l.countdownID, Notification{
			Summary: "Restarting now", Body: "Save your work.", Urgency: UrgencyCritical,
		})
		return
	case apitypes.EventRebootReminder:
		l.promptKey = ""
	}
	l.maybePrompt(ctx)
}

// maybePrompt shows the restart prompt if a restart is pending and the
// prompt would say something the shown one does not. With a tray host the
// prompt appears when a restart becomes required or its deadline nears;
// without one it is the menu, so it follows every change.
func (l *loop) maybePrompt(ctx context.Context) {
	st := l.st
	if !l.connected || !restartPending(st) || st.Refused {
		l.promptKey = ""
		return
	}
	n := promptNotification(st, !l.visible, l.now(), l.opts.Location)
	key := fmt.Sprintf("%s|%s", state(st), st.Since)
	if !l.visible {
		key = fmt.Sprintf("fallback|%s|%s|%v", n.Summary, n.Body, n.Actions)
	}
	if key == l.promptKey {
		return
	}
	l.promptKey = key
	l.promptID = l.notify(ctx, l.promptID, n)
	if !l.visible {
		l.remind = l.opts.Clock.After(l.opts.RemindEvery)
	}
}

// do carries out a user's choice. fromPrompt says it came from the prompt
// notification, which the server has closed by now.
func (l *loop) do(ctx context.Context, a action, fromPrompt bool) {
	if fromPrompt {
		l.promptKey = ""
	}
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	var (
		st  apitypes.RebootStatus
		err error
	)
	switch a.kind {
	case actDetails:
		l.detailsID = l.notify(ctx, l.detailsID, detailsNotification(l.st, l.now(), l.opts.Location))
		l.maybePrompt(ctx)
		return
	case actRestart:
		l.log.Info("user asked to restart now")
		if err = l.d.RestartNow(cctx); err == nil {
			return
		}
	case actDefer:
		l.log.Info("user deferred the restart", "choice", a.choice)
		if st, err = l.d.Defer(cctx, a.choice); err == nil {
			l.update(ctx, st, apitypes.Event{})
			return
		}
	case actRefuse:
		l.log.Info("user declined the restart")
		if st, err = l.d.Refuse(cctx); err == nil {
			l.update(ctx, st, apitypes.Event{})
			return
		}
	default:
		return
	}
	l.log.Warn("user's choice failed", "action", a.describe(), "err", err)
	l.failureID = l.notify(ctx, l.failureID, failureNotification(a.describe(), err))
	l.maybePrompt(ctx)
}

// setVisible switches between the menu and the notification fallback.
func (l *loop) setVisible(ctx context.Context, v bool) {
	if v == l.visible {
		return
	}
	l.visible = v
	l.promptKey = ""
	if v {
		l.log.Info("a StatusNotifierItem host shows the tray menu again")
		l.remind = nil
	} else {
		l.noHost()
	}
	l.maybePrompt(ctx)
}

func (l *loop) noHost() {
	if l.loggedNoHost {
		return
	}
	l.loggedNoHost = true
	l.log.Warn("no StatusNotifierItem host (system tray) on this desktop; restart prompts and choices come as notifications with actions")
	if l.n == nil {
		l.log.Error("no notifier either: the user will not see restart prompts")
	}
}

// notify shows n replacing the notification replaces and returns the new
// id (replaces when it failed).
func (l *loop) notify(ctx context.Context, replaces uint32, n Notification) uint32 {
	if l.n == nil {
		return replaces
	}
	n.ReplacesID = replaces
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	id, err := l.n.Notify(cctx, n)
	switch {
	case errors.Is(err, ErrNoNotificationServer):
		if !l.loggedNoNotifier {
			l.loggedNoNotifier = true
			l.log.Warn("no notification server on the session bus; notifications are off until one appears", "err", err)
			if !l.visible {
				l.log.Error("neither a tray host nor a notification server: the user cannot see restart prompts")
			}
		}
		return replaces
	case err != nil:
		l.log.Warn("show notification", "summary", n.Summary, "err", err)
		return replaces
	}
	l.loggedNoNotifier = false
	return id
}
