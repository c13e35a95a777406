package content

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"time"

	"github.com/patchring/patchring/internal/atomicfile"
)

// Pin keeps h from eviction for reason until the given time (zero: until
// Unpin). Pinning a reason again replaces its expiry. A hash may be pinned
// before its blob arrives, so that it is protected from the moment it is
// stored. Pins survive restarts.
func (s *Store) Pin(h Hash, reason string, until time.Time) error {
	if reason == "" {
		return fmt.Errorf("pin %s: empty reason", h)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.pins[h]
	next := make([]Pin, 0, len(old)+1)
	for _, p := range old {
		if p.Reason != reason {
			next = append(next, p)
		}
	}
	next = append(next, Pin{Reason: reason, Until: until})
	sort.Slice(next, func(i, j int) bool { return next[i].Reason < next[j].Reason })
	s.pins[h] = next
	if err := s.savePinsLocked(); err != nil {
		s.pins[h] = old
		return fmt.Errorf("pin %s: %w", h, err)
	}
	return nil
}

// Unpin removes the pin of h for reason. Removing a pin that does not exist
// is not an error.
func (s *Store) Unpin(h Hash, reason string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.pins[h]
	var next []Pin
	for _, p := range old {
		if p.Reason != reason {
			next = append(next, p)
		}
	}
	if len(next) == len(old) {
		return nil
	}
	if len(next) == 0 {
		delete(s.pins, h)
	} else {
		s.pins[h] = next
	}
	if err := s.savePinsLocked(); err != nil {
		s.pins[h] = old
		return fmt.Errorf("unpin %s: %w", h, err)
	}
	return nil
}

// Pins returns the pins of h still in force.
func (s *Store) Pins(h Hash) []Pin {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.activePinsLocked(h, s.now())
}

func (s *Store) activePinsLocked(h Hash, now time.Time) []Pin {
	var out []Pin
	for _, p := range s.pins[h] {
		if p.Until.IsZero() || now.Before(p.Until) {
			out = append(out, p)
		}
	}
	return out
}

func (s *Store) pinnedLocked(h Hash, now time.Time) bool {
	return len(s.activePinsLocked(h, now)) > 0
}

type pinFile struct {
	Version int            `json:"version"`
	Pins    map[Hash][]Pin `json:"pins"`
}

func (s *Store) loadPins() error {
	b, err := os.ReadFile(s.pinFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load pins: %w", err)
	}
	var pf pinFile
	if err := json.Unmarshal(b, &pf); err != nil {
		return fmt.Errorf("load pins %s: %w", s.pinFile, err)
	}
	if pf.Version != 1 {
		return fmt.Errorf("load pins %s: unknown version %d", s.pinFile, pf.Version)
	}
	for h, ps := range pf.Pins {
		s.pins[h] = ps
	}
	return nil
}

// savePinsLocked writes pins.json atomically, dropping expired pins.
func (s *Store) savePinsLocked() error {
	now := s.now()
	pf := pinFile{Version: 1, Pins: map[Hash][]Pin{}}
	for h := range s.pins {
		if ps := s.activePinsLocked(h, now); len(ps) > 0 {
			pf.Pins[h] = ps
		}
	}
	b, err := json.MarshalIndent(pf, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(s.pinFile, b)
}

// writeFileAtomic writes b to path through internal/atomicfile (temporary
// file, fsync, rename, directory fsync), reporting a full disk as ErrDiskFull.
func writeFileAtomic(path string, b []byte) error {
	return diskErr(atomicfile.WriteFile(path, b, 0o600))
}
