package trust

import (
	"context"
	"encoding/json"
	"errors"
	"net"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/patchring/patchring/internal/targetname"
)

// Reasons a refresh or download fails. Errors returned by this package wrap
// one of these (test with errors.Is) next to go-tuf's own typed error.
var (
	// ErrExpired: the metadata's expiry date is past (freeze attack, or an
	// admin who did not refresh the repository).
	ErrExpired = errors.New("metadata expired")
	// ErrRollback: a version older than the trusted one, or not the version
	// the signed metadata announced.
	ErrRollback = errors.New("metadata version rollback or mismatch")
	// ErrHashMismatch: bytes that do not match the length and hashes in
	// signed metadata (tampered payload, mix-and-match).
	ErrHashMismatch = errors.New("length or hash does not match signed metadata")
	// ErrTooLarge: a source sent more than the signed length or the cap.
	ErrTooLarge = errors.New("more data than the signed length or cap")
	// ErrSlow: a source sent fewer bytes than the minimum rate.
	ErrSlow = errors.New("transfer below the minimum rate")
	// ErrTimeout: a request took longer than its timeout.
	ErrTimeout = errors.New("request timed out")
	// ErrThreshold: metadata without enough valid signatures from the keys
	// its delegator trusts.
	ErrThreshold = errors.New("not enough valid signatures")
	// ErrUnknownTarget: no signed metadata lists the target.
	ErrUnknownTarget = errors.New("target not listed in signed metadata")
	// ErrBadTargetName: a target name that is not a portable relative path
	// (the rule of internal/targetname, which the admin side applies too).
	ErrBadTargetName = targetname.ErrInvalid
	// ErrRootUnconfirmed: a source that is not the origin denied having the
	// next root version and neither the origin nor a second source
	// confirmed it (a peer may be hiding a key rotation).
	ErrRootUnconfirmed = errors.New("next root version denied by one source and not confirmed")
	// ErrUnavailable: a source could not be reached or answered an error.
	ErrUnavailable = errors.New("source unavailable")
	// ErrMalformed: metadata that does not parse.
	ErrMalformed = errors.New("malformed metadata")
	// ErrNoState: no verified metadata has been stored yet.
	ErrNoState = errors.New("no verified metadata yet")
	// ErrNoSources: the client has no source to fetch from.
	ErrNoSources = errors.New("no sources configured")
)

// Error is a failed operation: what was done, through which source, the
// reason (one of the Err* sentinels) and the underlying error.
type Error struct {
	Op     string // "refresh", "download policy.json", ...
	Source string // source name, empty when none was involved
	Reason error  // one of the Err* values, or nil when unclassified
	Err    error
}

func (e *Error) Error() string {
	s := e.Op
	if e.Source != "" {
		s += " via " + e.Source
	}
	if e.Reason != nil && !errors.Is(e.Err, e.Reason) {
		s += ": " + e.Reason.Error()
	}
	return s + ": " + e.Err.Error()
}

// Unwrap exposes both the reason and the underlying error to errors.Is and
// errors.As.
func (e *Error) Unwrap() []error {
	if e.Reason == nil {
		return []error{e.Err}
	}
	return []error{e.Reason, e.Err}
}

var reasons = []error{ErrExpired, ErrRollback, ErrHashMismatch, ErrTooLarge, ErrSlow, ErrTimeout, ErrThreshold,
	ErrUnknownTarget, ErrBadTargetName, ErrRootUnconfirmed, ErrUnavailable, ErrMalformed, ErrNoState, ErrNoSources}

// classify maps an error from go-tuf or the fetch layer to a reason.
func classify(err error) error {
	for _, r := range reasons {
		if errors.Is(err, r) {
			return r
		}
	}
	var (
		expired  *metadata.ErrExpiredMetadata
		version  *metadata.ErrBadVersionNumber
		unsigned *metadata.ErrUnsignedMetadata
		hash     *metadata.ErrLengthOrHashMismatch
		length   *metadata.ErrDownloadLengthMismatch
		httpErr  *metadata.ErrDownloadHTTP
		repo     *metadata.ErrRepository
		value    *metadata.ErrValue
		typ      *metadata.ErrType
		syntax   *json.SyntaxError
		unmarsh  *json.UnmarshalTypeError
		netErr   net.Error
	)
	switch {
	case errors.As(err, &expired):
		return ErrExpired
	case errors.As(err, &version):
		return ErrRollback
	case errors.As(err, &unsigned):
		return ErrThreshold
	case errors.As(err, &hash):
		return ErrHashMismatch
	case errors.As(err, &length):
		return ErrTooLarge
	case errors.As(err, &httpErr):
		return ErrUnavailable
	case errors.Is(err, context.DeadlineExceeded):
		return ErrTimeout
	case errors.As(err, &repo), errors.As(err, &value), errors.As(err, &typ), errors.As(err, &syntax), errors.As(err, &unmarsh):
		return ErrMalformed
	case errors.As(err, &netErr):
		return ErrUnavailable
	}
	return nil
}

// wrap builds an *Error for err (nil stays nil; an *Error is kept).
func wrap(op, source string, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) && e.Op == op {
		return err
	}
	return &Error{Op: op, Source: source, Reason: classify(err), Err: err}
}
