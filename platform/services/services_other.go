//go:build !linux

package services

import (
	"context"
	"fmt"
)

// Stale is not implemented on this system.
func (m *Manager) Stale(ctx context.Context, replaced func(file string) bool) ([]Process, error) {
	return nil, ErrUnsupported
}

// Restart is not implemented on this system.
func (m *Manager) Restart(ctx context.Context, manager, service string) error {
	return fmt.Errorf("restart service %s: %w", service, ErrUnsupported)
}
