package reboot

import "time"

// Clock is the orchestrator's source of time. It has the shape of the
// tray's clock, so one fake drives both in tests.
type Clock interface {
	Now() time.Time
	// After sends the time once d has passed.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
