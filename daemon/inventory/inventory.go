// Package inventory is the agent's inventory loop: it scans the endpoint at
// start, on an interval and soon after the package database changes, keeps
// the latest snapshot and the history of changes in the state store, and
// serves both on the local API.
package inventory

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	bolt "go.etcd.io/bbolt"

	"github.com/patchring/patchring/daemon/apicall"
	"github.com/patchring/patchring/daemon/apitypes"
	"github.com/patchring/patchring/daemon/store"
	pinv "github.com/patchring/patchring/platform/inventory"
)

var keyLatest = []byte("latest")

// Config configures the loop.
type Config struct {
	DB       *store.DB
	Log      *slog.Logger
	Options  pinv.Options // what and where to scan
	Interval time.Duration
	// Debounce is how long to wait after the package database changed
	// before scanning (dpkg writes it several times per run).
	Debounce time.Duration
	// OnScan, if set, is called after every scan with the snapshot and
	// the changes since the previous one.
	OnScan func(snap *pinv.Snapshot, changes []pinv.Change)
}

// Service runs the inventory loop.
type Service struct {
	cfg     Config
	trigger chan chan error

	mu      sync.Mutex
	latest  *pinv.Snapshot
	lastErr error
}

// New returns the service; it loads the last snapshot from the store.
func New(cfg Config) (*Service, error) {
	if cfg.Debounce == 0 {
		cfg.Debounce = 2 * time.Second
	}
	s := &Service{cfg: cfg, trigger: make(chan chan error)}
	var snap pinv.Snapshot
	switch err := cfg.DB.Get(store.BucketInventory, keyLatest, &snap); {
	case err == nil:
		s.latest = &snap
	case !errors.Is(err, store.ErrNotFound):
		return nil, fmt.Errorf("load inventory: %w", err)
	}
	return s, nil
}

// Name implements the daemon's service interface.
func (s *Service) Name() string { return "inventory" }

// Latest returns the last snapshot, or nil before the first scan.
func (s *Service) Latest() *pinv.Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.latest
}

// Scan takes an inventory now and records it. The loop calls it; the API
// calls it through the loop so scans never overlap.
func (s *Service) Scan(ctx context.Context) error {
	done := make(chan error, 1)
	select {
	case s.trigger <- done:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run scans at start, then on the interval, on package database changes
// and on request, until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	watch := s.watchPackages(ctx, &wg)
	var tick <-chan time.Time
	if s.cfg.Interval > 0 {
		t := time.NewTicker(s.cfg.Interval)
		defer t.Stop()
		tick = t.C
	}
	var debounce *time.Timer
	var debounced <-chan time.Time
	s.scanAndRecord(ctx)
	for {
		select {
		case <-ctx.Done():
			if debounce != nil {
				debounce.Stop()
			}
			return nil
		case <-tick:
			s.scanAndRecord(ctx)
		case <-watch:
			if debounce == nil {
				debounce = time.NewTimer(s.cfg.Debounce)
			} else {
				debounce.Reset(s.cfg.Debounce)
			}
			debounced = debounce.C
		case <-debounced:
			debounced = nil
			s.cfg.Log.Debug("inventory: package database changed; scanning")
			s.scanAndRecord(ctx)
		case done := <-s.trigger:
			done <- s.scanAndRecord(ctx)
		}
	}
}

// watchPackages returns a channel that receives when a package database
// changes (Options.WatchPaths: dpkg's status file and journal, the rpm
// database). Without a watcher it returns nil and the loop relies on the
// interval.
func (s *Service) watchPackages(ctx context.Context, wg *sync.WaitGroup) <-chan struct{} {
	paths := s.cfg.Options.WatchPaths()
	if len(paths) == 0 {
		return nil
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		s.cfg.Log.Warn("inventory: cannot watch the package database; relying on the interval", "err", err)
		return nil
	}
	// Watch directories: dpkg replaces its status file by renaming a new
	// one over it, which a watch on the file itself would lose.
	watched := map[string]bool{}
	for _, p := range paths {
		dir := p
		if fi, err := os.Stat(p); err != nil || !fi.IsDir() {
			dir = filepath.Dir(p)
		}
		if watched[dir] {
			continue
		}
		if err := w.Add(dir); err == nil {
			watched[dir] = true
		}
	}
	if len(watched) == 0 {
		w.Close()
		s.cfg.Log.Warn("inventory: no package database to watch; relying on the interval", "paths", paths)
		return nil
	}
	relevant := func(name string) bool {
		for _, p := range paths {
			if name == p || filepath.Dir(name) == p {
				return true
			}
		}
		return false
	}
	out := make(chan struct{}, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer w.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if relevant(ev.Name) && ev.Has(fsnotify.Create|fsnotify.Write|fsnotify.Rename|fsnotify.Remove) {
					select {
					case out <- struct{}{}:
					default:
					}
				}
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				s.cfg.Log.Debug("inventory: watch error", "err", err)
			}
		}
	}()
	return out
}

func (s *Service) scanAndRecord(ctx context.Context) error {
	snap, err := pinv.Collect(ctx, s.cfg.Options)
	if err != nil {
		s.mu.Lock()
		s.lastErr = err
		s.mu.Unlock()
		s.cfg.Log.Warn("inventory scan failed", "err", err)
		return fmt.Errorf("inventory scan: %w", err)
	}
	prev := s.Latest()
	var changes []pinv.Change
	if prev != nil {
		changes = pinv.Diff(prev, snap)
	}
	err = s.cfg.DB.Update(func(tx *bolt.Tx) error {
		if err := store.PutTx(tx, store.BucketInventory, keyLatest, snap); err != nil {
			return err
		}
		if len(changes) == 0 {
			return nil
		}
		seq, err := store.Sequence(tx, store.BucketHistory)
		if err != nil {
			return err
		}
		rec := HistoryRecord{Seq: seq, At: snap.TakenAt, Changes: changes}
		return store.PutTx(tx, store.BucketHistory, seqKey(seq), rec)
	})
	if err != nil {
		s.cfg.Log.Error("inventory: record scan", "err", err)
		return fmt.Errorf("record inventory: %w", err)
	}
	s.mu.Lock()
	s.latest, s.lastErr = snap, nil
	s.mu.Unlock()
	s.cfg.Log.Debug("inventory scanned", "ms", snap.ScanMS, "changes", len(changes))
	if s.cfg.OnScan != nil {
		s.cfg.OnScan(snap, changes)
	}
	return nil
}

func seqKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}

// HistoryRecord is one scan's changes.
type HistoryRecord struct {
	Seq     uint64        `json:"seq"`
	At      time.Time     `json:"at"`
	Changes []pinv.Change `json:"changes"`
}

// History returns the newest limit records, newest first (all when limit
// is 0).
func (s *Service) History(limit int) ([]HistoryRecord, error) {
	var out []HistoryRecord
	err := s.cfg.DB.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(store.BucketHistory).Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			var r HistoryRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("history record %x: %w", k, err)
			}
			out = append(out, r)
			if limit > 0 && len(out) >= limit {
				break
			}
		}
		return nil
	})
	return out, err
}

// Status summarizes the inventory for `patchring status`.
func (s *Service) Status() apitypes.SubsystemStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := apitypes.SubsystemStatus{Name: "inventory", State: "ok"}
	switch {
	case s.latest == nil && s.lastErr != nil:
		st.State, st.Summary = "error", s.lastErr.Error()
	case s.latest == nil:
		st.State, st.Summary = "pending", "first scan not finished"
	default:
		l := s.latest
		pk := 0
		if l.Packages != nil {
			pk = l.Packages.Counts.Present
		}
		st.Summary = fmt.Sprintf("%d packages, scanned %s (%.0f ms)", pk, l.TakenAt.Format(time.RFC3339), l.ScanMS)
		if l.Reboot != nil && l.Reboot.Required {
			st.Summary += ", reboot required"
		}
		if s.lastErr != nil {
			st.State = "degraded"
			st.Details = map[string]string{"last_error": s.lastErr.Error()}
		}
	}
	return st
}

// The inventory's calls of the local API (its routes are in
// daemon/localapi/routes.go): GET /inventory, POST /inventory/scan,
// GET /inventory/history.

// APILatest is the latest snapshot; KindUnavailable before the first scan.
func (s *Service) APILatest(ctx context.Context) (*pinv.Snapshot, error) {
	snap := s.Latest()
	if snap == nil {
		return nil, apicall.Unavailable("no inventory yet: the first scan has not finished")
	}
	return snap, nil
}

// APIScan scans now and returns the new snapshot.
func (s *Service) APIScan(ctx context.Context) (*pinv.Snapshot, error) {
	if err := s.Scan(ctx); err != nil {
		return nil, err
	}
	return s.Latest(), nil
}

// APIHistory lists the last limit inventory changes (0: all).
func (s *Service) APIHistory(ctx context.Context, limit int) ([]HistoryRecord, error) {
	return s.History(limit)
}
