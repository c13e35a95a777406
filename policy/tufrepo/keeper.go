package tufrepo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/patchring/patchring/internal/atomicfile"
)

// OnlineRoles are the roles the keeper re-signs: their keys may live on
// the machine that serves the repository. Root and targets keys stay
// offline with the admin.
var OnlineRoles = []string{RoleSnapshot, RoleTimestamp}

// due returns when role's metadata should be re-signed: once less than half
// of its lifetime is left, or now when it expires later than a fresh
// signature would (its lifetime was shortened).
func (r *Repo) due(role string, now time.Time) time.Time {
	var exp time.Time
	switch role {
	case RoleRoot:
		exp = r.root.Signed.Expires
	case RoleTargets:
		exp = r.targets.Signed.Expires
	case RoleSnapshot:
		exp = r.snapshot.Signed.Expires
	case RoleTimestamp:
		exp = r.timestamp.Signed.Expires
	}
	if exp.After(r.expiry(role, now)) {
		return now
	}
	return exp.Add(-r.expiries[role] / 2)
}

// KeepFresh re-signs the timestamp, and the snapshot, once less than half
// of their lifetime is left (or at once when they expire later than their
// current lifetime allows), with new versions and expiry dates. It needs
// only the snapshot and timestamp keys (and only the snapshot key when the
// snapshot is due): targets and root are never touched, so their keys can
// stay offline. It reports whether anything was written.
func (r *Repo) KeepFresh() (Versions, bool, error) {
	unlock, err := r.lock()
	if err != nil {
		return Versions{}, false, fmt.Errorf("keep fresh: %w", err)
	}
	defer unlock()
	if err := r.checkUnchanged(); err != nil {
		return Versions{}, false, fmt.Errorf("keep fresh: %w", err)
	}
	now := r.now()
	snapDue := !now.Before(r.due(RoleSnapshot, now))
	tsDue := snapDue || !now.Before(r.due(RoleTimestamp, now))
	if !tsDue {
		return r.Versions(), false, nil
	}
	trust := []*metadata.Metadata[metadata.RootType]{r.root}

	snapshot := r.snapshot
	var snapshotData []byte
	tsMeta := r.timestamp.Signed.Meta["snapshot.json"]
	if snapDue {
		if snapshot, err = clone(r.snapshot); err != nil {
			return Versions{}, false, fmt.Errorf("keep fresh: %w", err)
		}
		snapshot.Signed.Version = r.snapshot.Signed.Version + 1
		snapshot.Signed.Expires = r.expiry(RoleSnapshot, now)
		if err := signAs(r, snapshot, RoleSnapshot, trust); err != nil {
			return Versions{}, false, fmt.Errorf("keep fresh: %w", err)
		}
		if snapshotData, err = snapshot.ToBytes(true); err != nil {
			return Versions{}, false, fmt.Errorf("keep fresh: %w", err)
		}
		tsMeta = metaFor(snapshot.Signed.Version, snapshotData)
	}
	timestamp, err := clone(r.timestamp)
	if err != nil {
		return Versions{}, false, fmt.Errorf("keep fresh: %w", err)
	}
	timestamp.Signed.Version = r.timestamp.Signed.Version + 1
	timestamp.Signed.Expires = r.expiry(RoleTimestamp, now)
	timestamp.Signed.Meta = map[string]*metadata.MetaFiles{"snapshot.json": tsMeta}
	if err := signAs(r, timestamp, RoleTimestamp, trust); err != nil {
		return Versions{}, false, fmt.Errorf("keep fresh: %w", err)
	}
	timestampData, err := timestamp.ToBytes(true)
	if err != nil {
		return Versions{}, false, fmt.Errorf("keep fresh: %w", err)
	}
	// The versioned snapshot first, the timestamp that names it last.
	if snapshotData != nil {
		for _, name := range []string{fmt.Sprintf("%d.snapshot.json", snapshot.Signed.Version), "snapshot.json"} {
			if err := atomicfile.WriteFile(r.metaPath(name), snapshotData, 0o644); err != nil {
				return Versions{}, false, fmt.Errorf("keep fresh: %w", err)
			}
		}
	}
	if err := atomicfile.WriteFile(r.metaPath("timestamp.json"), timestampData, 0o644); err != nil {
		return Versions{}, false, fmt.Errorf("keep fresh: %w", err)
	}
	r.snapshot = snapshot
	r.timestamp = timestamp
	return r.Versions(), true, nil
}

// NextDue returns when KeepFresh next has work: the earlier of the moments
// the timestamp and the snapshot pass half their lifetime.
func (r *Repo) NextDue() time.Time {
	now := r.now()
	a, b := r.due(RoleTimestamp, now), r.due(RoleSnapshot, now)
	if b.Before(a) {
		return b
	}
	return a
}

// Keeper keeps a served repository fresh: it re-signs the timestamp and the
// snapshot before they expire, with only their (online) keys, so agents
// keep trusting the repository without an admin running
// `patchring repo refresh`. Root and targets need the admin's offline keys:
// the keeper only warns, from Warn before their expiry on.
type Keeper struct {
	Dir        string
	KeysDir    string
	Passphrase string
	// Warn is how long before a root or targets expiry the keeper starts
	// warning on every pass (default 14 days).
	Warn time.Duration
	// Retry is the wait after a failed pass (default 30s, at most a
	// tenth of the timestamp lifetime).
	Retry time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Log receives what the keeper does (default: nothing).
	Log *slog.Logger
	// FleetStatusDir, when set, is where the fleet console leaves its
	// signed fleet status (WriteFleetStatusDir): each pass publishes a
	// newer one after checking it against the fleet-status delegation.
	FleetStatusDir string
	// FleetStatusPoll is how often the keeper looks at FleetStatusDir
	// (default 30s).
	FleetStatusPoll time.Duration
}

// Once opens the repository afresh (an admin may have published since the
// last pass), re-signs what is due and returns when the next pass is due.
func (k *Keeper) Once() (next time.Time, err error) {
	r, err := Open(k.Dir, k.KeysDir, k.Passphrase)
	if err != nil {
		return time.Time{}, fmt.Errorf("keeper: %w", err)
	}
	if k.Now != nil {
		r.SetClock(k.Now)
	}
	log := k.logger()
	v, wrote, err := r.KeepFresh()
	if err != nil {
		return time.Time{}, fmt.Errorf("keeper: %w", err)
	}
	if wrote {
		log.Info("re-signed repository metadata", "snapshot", v.Snapshot, "timestamp", v.Timestamp,
			"timestamp_expires", r.timestamp.Signed.Expires, "snapshot_expires", r.snapshot.Signed.Expires)
	}
	next = r.NextDue()
	if k.FleetStatusDir != "" {
		k.publishFleetStatus(r, log)
		poll := k.FleetStatusPoll
		if poll <= 0 {
			poll = 30 * time.Second
		}
		if at := r.now().Add(poll); at.Before(next) {
			next = at
		}
	}
	warn := k.Warn
	if warn <= 0 {
		warn = 14 * 24 * time.Hour
	}
	now := r.now()
	for role, exp := range map[string]time.Time{RoleRoot: r.root.Signed.Expires, RoleTargets: r.targets.Signed.Expires} {
		if exp.Sub(now) < warn {
			log.Warn("metadata signed with offline keys expires soon: run patchring repo refresh with the "+role+" keys",
				"role", role, "expires", exp)
		}
	}
	return next, nil
}

// publishFleetStatus publishes the console's fleet status from
// FleetStatusDir when it is newer than the published one. A refused or
// unreadable one is logged: it must not stop the keeper's own work.
func (k *Keeper) publishFleetStatus(r *Repo, log *slog.Logger) {
	meta, doc, err := ReadFleetStatusDir(k.FleetStatusDir)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err != nil {
		log.Warn("fleet status not read", "dir", k.FleetStatusDir, "err", err)
		return
	}
	md, err := (&metadata.Metadata[metadata.TargetsType]{}).FromBytes(meta)
	if err != nil {
		log.Warn("fleet status refused", "err", err)
		return
	}
	if md.Signed.Version <= r.FleetStatusVersion() {
		return
	}
	v, err := r.PublishFleetStatus(meta, doc)
	if err != nil {
		log.Warn("fleet status refused", "err", err)
		return
	}
	log.Info("published the fleet status", "version", md.Signed.Version, "snapshot", v.Snapshot, "timestamp", v.Timestamp)
}

// Run re-signs as needed until ctx ends. A failed pass (e.g. a locked
// repository while an admin publishes) is logged and retried.
func (k *Keeper) Run(ctx context.Context) error {
	log := k.logger()
	now := k.Now
	if now == nil {
		now = time.Now
	}
	for {
		next, err := k.Once()
		wait := time.Until(next)
		if k.Now != nil {
			wait = next.Sub(now())
		}
		if err != nil {
			if errors.Is(err, ErrNotRepo) {
				return err
			}
			wait = k.retry()
			log.Warn("keeper pass failed; retrying", "err", err, "in", wait)
		}
		wait = max(wait, 100*time.Millisecond) // expiry dates have whole seconds
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

func (k *Keeper) retry() time.Duration {
	d := k.Retry
	if d <= 0 {
		d = 30 * time.Second
		if r, err := Open(k.Dir, "", ""); err == nil {
			d = min(d, r.expiries[RoleTimestamp]/10)
		}
	}
	return d
}

func (k *Keeper) logger() *slog.Logger {
	if k.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return k.Log
}

// SetExpiries changes the lifetimes of the given roles for this fleet's
// repository (recorded in its config, used from the next signature on: the
// keeper's next pass, a refresh or a publish). A lifetime must be at least
// one second.
func (r *Repo) SetExpiries(expiries map[string]time.Duration) error {
	for role, d := range expiries {
		if err := parseRole(role); err != nil {
			return fmt.Errorf("set expiries: %w", err)
		}
		if d < time.Second {
			return fmt.Errorf("set expiries: %s lifetime %s: must be at least 1s", role, d)
		}
	}
	unlock, err := r.lock()
	if err != nil {
		return fmt.Errorf("set expiries: %w", err)
	}
	defer unlock()
	cfg := repoConfig{Format: 1, Expiries: map[string]int64{}}
	for _, role := range topRoles {
		d := r.expiries[role]
		if n, ok := expiries[role]; ok {
			d = n
		}
		cfg.Expiries[role] = int64(d / time.Second)
	}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return fmt.Errorf("set expiries: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(r.dir, configFile), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("set expiries: %w", err)
	}
	for role, d := range expiries {
		r.expiries[role] = d.Truncate(time.Second)
	}
	return nil
}
