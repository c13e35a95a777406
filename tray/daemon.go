package tray

import (
	"context"
	"log/slog"
	"time"

	"github.com/patchring/patchring/daemon/apitypes"
)

// Daemon is what the tray needs from patchringd. The local API client
// implements it.
type Daemon interface {
	// RebootStatus returns the current reboot status.
	RebootStatus(ctx context.Context) (apitypes.RebootStatus, error)
	// Defer defers the pending restart by the choice whose Duration is
	// choice and returns the status after it.
	Defer(ctx context.Context, choice string) (apitypes.RebootStatus, error)
	// Refuse declines the pending restart and returns the status after it.
	Refuse(ctx context.Context) (apitypes.RebootStatus, error)
	// RestartNow asks the daemon to restart the machine now.
	RestartNow(ctx context.Context) error
	// Events streams the daemon's events until ctx ends or the connection
	// drops; the channel is closed then.
	Events(ctx context.Context) (<-chan apitypes.Event, error)
}

// Clock is the tray's source of time. The zero Options use the real clock.
type Clock interface {
	Now() time.Time
	// After sends the time once d has passed.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Options configure Run. The zero value is usable.
type Options struct {
	// Log receives the tray's log; nil discards it.
	Log *slog.Logger
	// Notifier shows desktop notifications. nil uses
	// org.freedesktop.Notifications on the D-Bus session bus.
	Notifier Notifier
	// Clock is the source of time; nil is the real clock.
	Clock Clock
	// Location is the time zone times are shown in; nil is time.Local.
	Location *time.Location
	// RetryMin and RetryMax bound the backoff between attempts to reach a
	// daemon that does not answer; zero means 1s and 30s.
	RetryMin, RetryMax time.Duration
	// RemindEvery is how often the prompt notification is shown again while
	// a restart is pending and no tray host shows the menu; zero means 1h.
	RemindEvery time.Duration
}

func (o Options) withDefaults() Options {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = realClock{}
	}
	if o.Location == nil {
		o.Location = time.Local
	}
	if o.RetryMin <= 0 {
		o.RetryMin = time.Second
	}
	if o.RetryMax <= 0 {
		o.RetryMax = 30 * time.Second
	}
	if o.RetryMax < o.RetryMin {
		o.RetryMax = o.RetryMin
	}
	if o.RemindEvery <= 0 {
		o.RemindEvery = time.Hour
	}
	return o
}
