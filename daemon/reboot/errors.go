package reboot

import (
	"errors"
	"fmt"
)

// Errors of the user's requests that callers branch on. The local API
// answers them with 409 Conflict (DeniedError with 403 Forbidden).
var (
	// ErrNoRestartPending: there is no pending restart to defer, refuse or
	// carry out.
	ErrNoRestartPending = errors.New("no restart is pending")
	// ErrRestarting: the restart is already under way.
	ErrRestarting = errors.New("the restart is already under way")
	// ErrRefused: the user declined the restart, so there is nothing to
	// defer; it happens at the deadline.
	ErrRefused = errors.New("the restart was declined; it happens at the deadline and cannot be deferred")
	// ErrNotRunning: the orchestrator's Run loop is not running, so it
	// cannot restart the machine.
	ErrNotRunning = errors.New("reboot orchestration is not running")
)

// DeniedError says a request goes beyond what the policy allows (a choice
// it does not offer, no deferrals left, past the deadline, refusing where
// it is not allowed). Reason is for the user.
type DeniedError struct {
	Reason string
}

func (e *DeniedError) Error() string { return e.Reason }

func denied(format string, args ...any) error {
	return &DeniedError{Reason: fmt.Sprintf(format, args...)}
}

// IsDenied reports whether err is a *DeniedError.
func IsDenied(err error) bool {
	var d *DeniedError
	return errors.As(err, &d)
}
