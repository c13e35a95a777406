package reboot

import (
	"context"
	"time"
)

// Lease limits how many nodes of a group restart at once. The holder is
// the node the Lease belongs to. The gossip layer provides the fleet-wide
// implementation.
type Lease interface {
	// TryAcquire takes a slot of group if fewer than limit nodes hold one;
	// it returns true also when this node already holds it. The slot
	// expires after ttl unless released.
	TryAcquire(ctx context.Context, group string, limit int, ttl time.Duration) (bool, error)
	// Release gives the slot back; releasing a slot not held is not an
	// error.
	Release(ctx context.Context, group string) error
}

// LocalLease is the single-node Lease: with no other node to coordinate
// with, it always grants.
type LocalLease struct{}

var _ Lease = LocalLease{}

// TryAcquire implements Lease.
func (LocalLease) TryAcquire(ctx context.Context, group string, limit int, ttl time.Duration) (bool, error) {
	return limit > 0, nil
}

// Release implements Lease.
func (LocalLease) Release(ctx context.Context, group string) error { return nil }
