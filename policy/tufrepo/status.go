package tufrepo

import (
	"slices"
	"time"
)

// Status describes a repository for `patchring repo status`.
type Status struct {
	Dir     string       `json:"dir"`
	KeysDir string       `json:"keys_dir,omitempty"`
	Now     time.Time    `json:"now"`
	Roles   []RoleStatus `json:"roles"`
	Targets int          `json:"targets"`
	// Staged reports target changes not yet published.
	Staged bool `json:"staged"`
	// ExpiringSoon lists the roles whose metadata expires within the window
	// given to Status (or has expired).
	ExpiringSoon []string `json:"expiring_soon"`
}

// RoleStatus is the state of one top-level role.
type RoleStatus struct {
	Role      string        `json:"role"`
	Version   int64         `json:"version"`
	Expires   time.Time     `json:"expires"`
	Lifetime  time.Duration `json:"lifetime_ns"`
	Threshold int           `json:"threshold"`
	Keys      []KeyStatus   `json:"keys"`
	// Signable reports whether keysDir holds enough of the role's keys to
	// meet its threshold.
	Signable bool `json:"signable"`
	Expired  bool `json:"expired"`
}

// KeyStatus is one key of a role.
type KeyStatus struct {
	ID string `json:"id"`
	// Present reports whether keysDir holds the key's private half.
	Present   bool `json:"present"`
	Encrypted bool `json:"encrypted"`
}

// Status reports versions, expiry dates, thresholds and keys of every role,
// and which roles expire within the given window.
func (r *Repo) Status(within time.Duration) Status {
	now := r.now().UTC()
	st := Status{Dir: r.dir, KeysDir: r.keysDir, Now: now, Targets: len(r.targets.Signed.Targets), Staged: r.dirty, ExpiringSoon: []string{}}
	expires := map[string]time.Time{
		RoleRoot:      r.root.Signed.Expires,
		RoleTargets:   r.targets.Signed.Expires,
		RoleSnapshot:  r.snapshot.Signed.Expires,
		RoleTimestamp: r.timestamp.Signed.Expires,
	}
	v := r.Versions()
	versions := map[string]int64{RoleRoot: v.Root, RoleTargets: v.Targets, RoleSnapshot: v.Snapshot, RoleTimestamp: v.Timestamp}
	for _, role := range topRoles {
		rr := r.root.Signed.Roles[role]
		rs := RoleStatus{
			Role:      role,
			Version:   versions[role],
			Expires:   expires[role].UTC(),
			Lifetime:  r.expiries[role],
			Threshold: rr.Threshold,
			Expired:   now.After(expires[role]),
		}
		present := 0
		for _, id := range rr.KeyIDs {
			k, ok := r.keys[id]
			rs.Keys = append(rs.Keys, KeyStatus{ID: id, Present: ok, Encrypted: ok && k.Encrypted})
			if ok {
				present++
			}
		}
		slices.SortFunc(rs.Keys, func(a, b KeyStatus) int {
			if a.ID < b.ID {
				return -1
			}
			return 1
		})
		rs.Signable = present >= rr.Threshold
		if !expires[role].After(now.Add(within)) {
			st.ExpiringSoon = append(st.ExpiringSoon, role)
		}
		st.Roles = append(st.Roles, rs)
	}
	return st
}

// Warning is one expiry an admin should act on.
type Warning struct {
	Role    string    `json:"role"`
	Expires time.Time `json:"expires"`
	Expired bool      `json:"expired"`
	// Action says what to do.
	Action string `json:"action"`
}

// Warnings lists every role whose expiry needs attention at st.Now: an
// online role (snapshot, timestamp) with less than half of its lifetime
// left, which the keeper should have re-signed by then; an offline role
// (root, targets) expiring within offline, or within half its lifetime
// when that is shorter; and every expired role.
func (st Status) Warnings(offline time.Duration) []Warning {
	var out []Warning
	for _, rs := range st.Roles {
		left := rs.Expires.Sub(st.Now)
		w := Warning{Role: rs.Role, Expires: rs.Expires, Expired: rs.Expired}
		if slices.Contains(OnlineRoles, rs.Role) {
			if left >= rs.Lifetime/2 && !rs.Expired {
				continue
			}
			w.Action = "re-sign with the " + rs.Role + " key: is patchring repo keeper running? (or run patchring repo refresh)"
		} else {
			if left >= min(offline, rs.Lifetime/2) && !rs.Expired {
				continue
			}
			w.Action = "run patchring repo refresh with the offline " + rs.Role + " keys"
		}
		out = append(out, w)
	}
	return out
}
