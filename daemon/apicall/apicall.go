// Package apicall is what a local API call brings into a daemon part and
// what a part answers with when it fails: who is calling (Caller) and the
// kind of failure (Error), free of HTTP. The local API's route table
// (daemon/localapi/routes.go) turns a request into a typed call on a part
// and an Error's Kind into its HTTP status and stable code, so the parts
// import neither net/http nor daemon/localapi.
package apicall

import "fmt"

// Caller is who makes a call, as the kernel told the local API.
type Caller struct {
	UID   int
	Known bool // the kernel told us who it is; UID is meaningless otherwise
	Admin bool // root or a member of the agent's admin group
}

// Kind is the kind of failure of a call; the local API answers each with
// its own status and code.
type Kind int

// The kinds of Error.
const (
	// KindBadRequest: the request is malformed or names something invalid.
	KindBadRequest Kind = iota + 1
	// KindForbidden: the caller may not do this (the reason says why).
	KindForbidden
	// KindNotFound: what the request names does not exist.
	KindNotFound
	// KindConflict: the request is valid but the state does not allow it.
	KindConflict
	// KindUnavailable: the subsystem cannot answer now.
	KindUnavailable
	// KindTooMany: the caller holds too many connections or streams.
	KindTooMany
	// KindNoSpace: there is not room on disk for what the request needs.
	KindNoSpace
)

func (k Kind) String() string {
	switch k {
	case KindBadRequest:
		return "bad request"
	case KindForbidden:
		return "forbidden"
	case KindNotFound:
		return "not found"
	case KindConflict:
		return "conflict"
	case KindUnavailable:
		return "unavailable"
	case KindTooMany:
		return "too many"
	case KindNoSpace:
		return "no space"
	}
	return fmt.Sprintf("kind %d", int(k))
}

// Error is a failure of a call with its Kind; Msg is what the caller reads.
type Error struct {
	Kind Kind
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

func newErr(k Kind, format string, args []any) *Error {
	return &Error{Kind: k, Msg: fmt.Sprintf(format, args...)}
}

// BadRequest returns a KindBadRequest error.
func BadRequest(format string, args ...any) *Error { return newErr(KindBadRequest, format, args) }

// Forbidden returns a KindForbidden error with the reason.
func Forbidden(format string, args ...any) *Error { return newErr(KindForbidden, format, args) }

// NotFound returns a KindNotFound error.
func NotFound(format string, args ...any) *Error { return newErr(KindNotFound, format, args) }

// Conflict returns a KindConflict error.
func Conflict(format string, args ...any) *Error { return newErr(KindConflict, format, args) }

// Unavailable returns a KindUnavailable error.
func Unavailable(format string, args ...any) *Error { return newErr(KindUnavailable, format, args) }

// TooMany returns a KindTooMany error.
func TooMany(format string, args ...any) *Error { return newErr(KindTooMany, format, args) }

// NoSpace returns a KindNoSpace error.
func NoSpace(format string, args ...any) *Error { return newErr(KindNoSpace, format, args) }
