//go:build !linux

package dnf

import "context"

// Backend runs the real dnf; only on Linux.
type Backend struct{}

// New reports ErrNotFound: dnf is only driven on Linux.
func New(opts Options) (*Backend, error) { return nil, ErrNotFound }

// CheckUpdate returns ErrNotFound.
func (b *Backend) CheckUpdate(ctx context.Context) ([]Update, error) { return nil, ErrNotFound }

// SecurityAdvisories returns ErrNotFound.
func (b *Backend) SecurityAdvisories(ctx context.Context) ([]AdvisoryPackage, error) {
	return nil, ErrNotFound
}

// AdvisoryInfo returns ErrNotFound.
func (b *Backend) AdvisoryInfo(ctx context.Context, ids ...string) ([]Advisory, error) {
	return nil, ErrNotFound
}

// Upgradable returns ErrNotFound.
func (b *Backend) Upgradable(ctx context.Context) ([]Update, error) { return nil, ErrNotFound }
