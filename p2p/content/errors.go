package content

import (
	"errors"
	"syscall"
)

// Outcomes callers branch on. Errors returned by the store wrap one of these
// with the operation and hash that failed.
var (
	// ErrNotFound: the store holds no verified blob (or piece) for the hash.
	ErrNotFound = errors.New("content not found")
	// ErrVerify: the bytes did not match the expected size or SHA-256. Nothing
	// was made visible.
	ErrVerify = errors.New("content verification failed")
	// ErrDiskFull: the file system ran out of space (ENOSPC). The staging file
	// was removed and nothing was made visible.
	ErrDiskFull = errors.New("disk full")
	// ErrStoreFull: MaxBytes cannot hold the payload even after evicting every
	// blob that may be evicted (the rest is pinned or being read).
	ErrStoreFull = errors.New("content store size limit reached")
	// ErrBusy: another writer is assembling the same hash.
	ErrBusy = errors.New("content download already in progress")
	// ErrExists: the store already holds the verified blob.
	ErrExists = errors.New("content already present")
	// ErrIncomplete: Commit was called before every piece was accepted.
	ErrIncomplete = errors.New("content incomplete")
	// ErrPinned: Delete was asked to remove a pinned blob.
	ErrPinned = errors.New("content pinned")
	// ErrClosed: the writer or store was closed.
	ErrClosed = errors.New("content writer closed")
)

// diskErr maps ENOSPC (and EDQUOT) to ErrDiskFull, keeping the original error
// in the chain.
func diskErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, syscall.ENOSPC) || isQuota(err) {
		return &diskFullError{err: err}
	}
	return err
}

type diskFullError struct{ err error }

func (e *diskFullError) Error() string { return "disk full: " + e.err.Error() }

func (e *diskFullError) Unwrap() []error { return []error{ErrDiskFull, e.err} }
