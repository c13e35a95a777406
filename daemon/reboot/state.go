package reboot

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/patchring/patchring/daemon/store"
)

// Keys of store.BucketReboot.
var (
	keyState          = []byte("state")
	keyPendingRelease = []byte("pending_release")
	historyPrefix     = "history/"
)

// maxHistory is how many history records are kept; older ones are dropped.
const maxHistory = 200

// record is the persisted reboot state.
type record struct {
	Required bool      `json:"required"`
	Since    time.Time `json:"since,omitzero"`
	Reason   string    `json:"reason,omitempty"`
	Packages []string  `json:"packages,omitempty"`

	DeferralsUsed int       `json:"deferrals_used,omitempty"`
	DeferredUntil time.Time `json:"deferred_until,omitzero"`
	DeferredBy    string    `json:"deferred_by,omitempty"`

	RefusedBy string    `json:"refused_by,omitempty"`
	RefusedAt time.Time `json:"refused_at,omitzero"`

	// Rebooting is set, and synced, before the Rebooter is called.
	Rebooting   bool      `json:"rebooting,omitempty"`
	RebootingAt time.Time `json:"rebooting_at,omitzero"`
	RebootBy    string    `json:"reboot_by,omitempty"`
	// LeaseGroup is the group whose lease this node holds over its restart.
	LeaseGroup string `json:"lease_group,omitempty"`

	// LastError says why the last restart attempt failed; RetryAt is when
	// the next may start.
	LastError string    `json:"last_error,omitempty"`
	RetryAt   time.Time `json:"retry_at,omitzero"`

	// UrgentBy is the shortest deadline an urgent update set (the install
	// time plus its urgent rule's reboot_deadline), UrgentWhy the rule and
	// the update; zero when no urgent update needs the restart.
	UrgentBy  time.Time `json:"urgent_by,omitzero"`
	UrgentWhy string    `json:"urgent_why,omitempty"`
}

func (r *record) clone() record {
	c := *r
	c.Packages = slices.Clone(r.Packages)
	return c
}

// HistoryEntry records one restart that completed a required restart.
type HistoryEntry struct {
	// Seq orders the entries.
	Seq uint64 `json:"seq"`
	// RequiredSince, Reason and Packages describe the requirement.
	RequiredSince time.Time `json:"required_since,omitzero"`
	Reason        string    `json:"reason,omitempty"`
	Packages      []string  `json:"packages,omitempty"`
	// RestartAt is when patchring started the restart; zero when the
	// machine was restarted some other way.
	RestartAt time.Time `json:"restart_at,omitzero"`
	// By says what started it: ByDeadline, ByWindow, ByDeferral,
	// BySchedule, "user <who>", or "outside patchring".
	By string `json:"by"`
	// RebootedAt is when the machine booted again (zero if unknown).
	RebootedAt time.Time `json:"rebooted_at,omitzero"`
	// DeferralsUsed and RefusedBy are what the user did before.
	DeferralsUsed int    `json:"deferrals_used,omitempty"`
	RefusedBy     string `json:"refused_by,omitempty"`
}

// ByOutside is HistoryEntry.By for a restart patchring did not start.
const ByOutside = "outside patchring"

type pendingRelease struct {
	Group string `json:"group"`
}

func loadRecord(db *store.DB) (record, error) {
	var r record
	if err := db.Get(store.BucketReboot, keyState, &r); err != nil && !errors.Is(err, store.ErrNotFound) {
		return record{}, fmt.Errorf("load reboot state: %w", err)
	}
	return r, nil
}

func saveRecord(db *store.DB, r *record) error {
	if err := db.Put(store.BucketReboot, keyState, r); err != nil {
		return fmt.Errorf("save reboot state: %w", err)
	}
	return nil
}

// finish clears the state after the machine restarted, records the
// history entry and notes the lease to release, in one transaction.
func finish(db *store.DB, r *record, by string, bootedAt time.Time) (HistoryEntry, error) {
	h := HistoryEntry{
		RequiredSince: r.Since,
		Reason:        r.Reason,
		Packages:      slices.Clone(r.Packages),
		By:            by,
		RebootedAt:    bootedAt,
		DeferralsUsed: r.DeferralsUsed,
		RefusedBy:     r.RefusedBy,
	}
	if r.Rebooting {
		h.RestartAt = r.RebootingAt
	}
	err := db.Update(func(tx *bolt.Tx) error {
		seq, err := store.Sequence(tx, store.BucketReboot)
		if err != nil {
			return err
		}
		h.Seq = seq
		if err := store.PutTx(tx, store.BucketReboot, historyKey(seq), h); err != nil {
			return err
		}
		if r.LeaseGroup != "" {
			if err := store.PutTx(tx, store.BucketReboot, keyPendingRelease, pendingRelease{Group: r.LeaseGroup}); err != nil {
				return err
			}
		}
		if err := store.PutTx(tx, store.BucketReboot, keyState, record{}); err != nil {
			return err
		}
		return pruneHistory(tx)
	})
	if err != nil {
		return HistoryEntry{}, fmt.Errorf("record restart in history: %w", err)
	}
	return h, nil
}

func historyKey(seq uint64) []byte {
	return fmt.Appendf(nil, "%s%016x", historyPrefix, seq)
}

func pruneHistory(tx *bolt.Tx) error {
	c := tx.Bucket(store.BucketReboot).Cursor()
	prefix := []byte(historyPrefix)
	var keys [][]byte
	for k, _ := c.Seek(prefix); k != nil && strings.HasPrefix(string(k), historyPrefix); k, _ = c.Next() {
		keys = append(keys, slices.Clone(k))
	}
	b := tx.Bucket(store.BucketReboot)
	for len(keys) > maxHistory {
		if err := b.Delete(keys[0]); err != nil {
			return err
		}
		keys = keys[1:]
	}
	return nil
}

func loadPendingRelease(db *store.DB) (string, error) {
	var p pendingRelease
	if err := db.Get(store.BucketReboot, keyPendingRelease, &p); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return "", nil
		}
		return "", fmt.Errorf("load pending lease release: %w", err)
	}
	return p.Group, nil
}

func clearPendingRelease(db *store.DB) error {
	return db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(store.BucketReboot).Delete(keyPendingRelease)
	})
}
