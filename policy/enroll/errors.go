package enroll

import "net/http"

// Reason says why the service refused, on the wire and in RefusedError.
type Reason string

// The service's reasons.
const (
	ReasonTokenExpired      Reason = "token-expired"
	ReasonTokenUsedUp       Reason = "token-used-up"
	ReasonTokenUnknown      Reason = "token-unknown"
	ReasonTokenForeign      Reason = "token-foreign"
	ReasonTokenSecret       Reason = "token-secret"
	ReasonRevoked           Reason = "revoked"
	ReasonCredentialExpired Reason = "credential-expired"
	ReasonCredentialInvalid Reason = "credential-invalid"
	ReasonBadRequest        Reason = "bad-request"
	ReasonRateLimited       Reason = "rate-limited"
	ReasonCannotIssue       Reason = "cannot-issue"
	ReasonUnavailable       Reason = "unavailable"
)

// status is the HTTP status the service answers a reason with.
func (r Reason) status() int {
	switch r {
	case ReasonBadRequest:
		return http.StatusBadRequest
	case ReasonRateLimited:
		return http.StatusTooManyRequests
	case ReasonUnavailable:
		return http.StatusServiceUnavailable
	case ReasonCannotIssue:
		return http.StatusInternalServerError
	}
	return http.StatusForbidden
}

// Final reports whether retrying the same request cannot succeed (as
// opposed to a rate limit or an unavailable fleet document).
func (r Reason) Final() bool {
	switch r {
	case ReasonRateLimited, ReasonUnavailable, ReasonCannotIssue:
		return false
	}
	return true
}

// RefusedError is a refusal by the service, with its reason. The Err*
// values below match any RefusedError of their reason with errors.Is.
type RefusedError struct {
	Reason  Reason
	Message string
}

func (e *RefusedError) Error() string {
	if e.Message == "" {
		return "issuing service refused: " + string(e.Reason)
	}
	return "issuing service refused (" + string(e.Reason) + "): " + e.Message
}

// Is matches the sentinel of e's reason.
func (e *RefusedError) Is(target error) bool {
	t, ok := target.(*RefusedError)
	return ok && t.Message == "" && t.Reason == e.Reason
}

func refuse(r Reason, msg string) *RefusedError { return &RefusedError{Reason: r, Message: msg} }

// Sentinels, one per reason, for errors.Is.
var (
	ErrTokenExpired      = &RefusedError{Reason: ReasonTokenExpired}
	ErrTokenUsedUp       = &RefusedError{Reason: ReasonTokenUsedUp}
	ErrTokenUnknown      = &RefusedError{Reason: ReasonTokenUnknown}
	ErrTokenForeign      = &RefusedError{Reason: ReasonTokenForeign}
	ErrTokenSecret       = &RefusedError{Reason: ReasonTokenSecret}
	ErrRevoked           = &RefusedError{Reason: ReasonRevoked}
	ErrCredentialExpired = &RefusedError{Reason: ReasonCredentialExpired}
	ErrCredentialInvalid = &RefusedError{Reason: ReasonCredentialInvalid}
	ErrBadRequest        = &RefusedError{Reason: ReasonBadRequest}
	ErrRateLimited       = &RefusedError{Reason: ReasonRateLimited}
	ErrCannotIssue       = &RefusedError{Reason: ReasonCannotIssue}
	ErrUnavailable       = &RefusedError{Reason: ReasonUnavailable}
)
