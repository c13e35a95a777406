package enroll

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/patchring/patchring/policy/credential"
	"github.com/patchring/patchring/policy/trust"
)

// OriginFleet fetches the fleet document from the origin through TUF,
// verified from the fleet's root like an agent does, at most once per
// MaxAge (default one minute).
type OriginFleet struct {
	client *trust.Client
	dir    string
	maxAge time.Duration

	mu      sync.Mutex
	fetched time.Time
	cur     *credential.Trust
}

// NewOriginFleet verifies fleet.json from origin with the trusted root,
// keeping its TUF state under dir.
func NewOriginFleet(origin string, root []byte, dir string, log *slog.Logger) (*OriginFleet, error) {
	tc, err := trust.New(trust.Config{
		TrustedRoot: root,
		StateDir:    filepath.Join(dir, "tuf"),
		Sources:     []trust.Source{trust.NewOriginSource(origin)},
		Logger:      log,
	})
	if err != nil {
		return nil, fmt.Errorf("fleet document from %s: %w", origin, err)
	}
	return &OriginFleet{client: tc, dir: filepath.Join(dir, "fleet"), maxAge: time.Minute}, nil
}

// Fleet returns the fleet document, refreshed when older than a minute.
func (f *OriginFleet) Fleet(ctx context.Context) (*credential.Trust, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cur != nil && time.Since(f.fetched) < f.maxAge {
		return f.cur, nil
	}
	if _, err := f.client.Refresh(ctx); err != nil {
		return nil, err
	}
	path, err := f.client.DownloadTarget(ctx, credential.TargetName, f.dir)
	if err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("fleet document: %w", err)
	}
	t, err := credential.ParseDocument(raw)
	if err != nil {
		return nil, err
	}
	f.cur, f.fetched = t, time.Now()
	return t, nil
}
