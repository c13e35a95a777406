//go:build !linux

package neighbor

import (
	"context"
	"net/netip"
)

// Neighbors is not implemented on this OS.
func Neighbors(ctx context.Context) ([]Observation, error) { return nil, ErrUnsupported }

// Listen is not implemented on this OS.
func Listen(ctx context.Context, ifc Iface, fn func(Observation)) error { return ErrUnsupported }

// Prober sends nothing on this OS.
type Prober struct{}

// NewProber is not implemented on this OS.
func NewProber(ifc Iface, src netip.Addr) (*Prober, error) { return nil, ErrUnsupported }

// Probe is not implemented on this OS.
func (p *Prober) Probe(dst netip.Addr) error { return ErrUnsupported }

// Close does nothing.
func (p *Prober) Close() error { return nil }
