// Package statuspub is the fleet console's one signing duty: it computes
// the fleet status document (policy/fleetstatus) from the console's store
// on an interval, signs it as the delegated TUF role fleet-status with the
// key the console holds, and hands the signed pair to a sink (the
// directory the repository's keeper publishes from). The key can sign that
// one document and nothing else: the admin's delegation allows the role
// the path fleet-status.json only.
package statuspub

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/patchring/patchring/policy/fleetstatus"
	"github.com/patchring/patchring/policy/tufrepo"
)

// Source computes the fleet status (console/store.Store does).
type Source interface {
	FleetStatus(ctx context.Context, now time.Time) (*fleetstatus.Document, error)
}

// Sink receives each signed fleet status: the role's metadata and the
// document.
type Sink func(ctx context.Context, meta, doc []byte) error

// DirSink writes the signed pair into dir for the keeper
// (`patchring repo keeper --fleet-status-dir DIR`).
func DirSink(dir string) Sink {
	return func(_ context.Context, meta, doc []byte) error { return tufrepo.WriteFleetStatusDir(dir, meta, doc) }
}

// Defaults for Config's zero values.
const (
	DefaultInterval = time.Minute
	DefaultLifetime = 6 * time.Hour
)

// Config configures a Publisher.
type Config struct {
	Source Source
	Key    ed25519.PrivateKey
	Sink   Sink
	// Interval between publications (default DefaultInterval).
	Interval time.Duration
	// Lifetime of each signed metadata version (default DefaultLifetime):
	// when the console stops publishing, agents stop using its numbers
	// this long after the last one, so gates of scope fleet wait again.
	Lifetime time.Duration
	Now      func() time.Time
	Log      *slog.Logger
}

// Publisher publishes the fleet status.
type Publisher struct {
	cfg  Config
	mu   sync.Mutex
	last int64
}

// New checks cfg and returns a Publisher.
func New(cfg Config) (*Publisher, error) {
	if cfg.Source == nil || cfg.Sink == nil {
		return nil, errors.New("fleet status publisher: a source and a sink are required")
	}
	if len(cfg.Key) != ed25519.PrivateKeySize {
		return nil, errors.New("fleet status publisher: no ed25519 signing key")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Lifetime <= 0 {
		cfg.Lifetime = DefaultLifetime
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Publisher{cfg: cfg}, nil
}

// PublishOnce computes, signs and hands over one fleet status. Its
// metadata version is the current Unix time in seconds (or one more than
// the last, when published twice in a second), so versions only grow
// across restarts and across console processes sharing one database. It
// returns the version.
func (p *Publisher) PublishOnce(ctx context.Context) (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.cfg.Now()
	doc, err := p.cfg.Source.FleetStatus(ctx, now)
	if err != nil {
		return 0, fmt.Errorf("publish fleet status: %w", err)
	}
	raw, err := doc.Marshal()
	if err != nil {
		return 0, fmt.Errorf("publish fleet status: %w", err)
	}
	version := max(now.Unix(), p.last+1)
	meta, err := tufrepo.SignFleetStatus(raw, p.cfg.Key, version, now.Add(p.cfg.Lifetime))
	if err != nil {
		return 0, fmt.Errorf("publish fleet status: %w", err)
	}
	if err := p.cfg.Sink(ctx, meta, raw); err != nil {
		return 0, fmt.Errorf("publish fleet status: %w", err)
	}
	p.last = version
	return version, nil
}

// Run publishes at once and then every Interval until ctx ends. A failed
// round is logged and tried again at the next.
func (p *Publisher) Run(ctx context.Context) error {
	for {
		if v, err := p.PublishOnce(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			p.cfg.Log.Warn("fleet status not published", "err", err)
		} else {
			p.cfg.Log.Debug("fleet status published", "version", v)
		}
		t := time.NewTimer(p.cfg.Interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}
