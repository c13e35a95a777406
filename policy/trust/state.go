package trust

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/trustedmetadata"

	"github.com/patchring/patchring/internal/atomicfile"
)

// Well-known target names (the same as the admin side's).
const (
	PolicyTarget  = "policy.json"
	CatalogPrefix = "catalog/"
	// FleetTarget is the fleet document (credential.TargetName): the fleet
	// CA's keys, its issuers and the revocation list.
	FleetTarget = "fleet.json"
	// AptPrefix names the files of an apt snapshot an offline bundle
	// carries (docs/APT.md): apt/<host>/<path of the file at its archive>,
	// with custom metadata {"apt": {"url": ..., "kind": ...}}.
	AptPrefix = "apt/"
	// FleetStatusRole is the delegated role that signs the fleet status
	// document (policy/fleetstatus), and FleetStatusTarget the document:
	// the fleet console holds the role's key, and the admin's delegation
	// allows it that one path.
	FleetStatusRole   = "fleet-status"
	FleetStatusTarget = "fleet-status.json"
)

const (
	stateFile   = "trusted.json"
	stateFormat = 1
)

// Versions are the verified metadata versions.
type Versions struct {
	Root      int64 `json:"root"`
	Timestamp int64 `json:"timestamp"`
	Snapshot  int64 `json:"snapshot"`
	Targets   int64 `json:"targets"`
}

// Expiries are the expiry dates of the verified metadata.
type Expiries struct {
	Root      time.Time `json:"root"`
	Timestamp time.Time `json:"timestamp"`
	Snapshot  time.Time `json:"snapshot"`
	Targets   time.Time `json:"targets"`
}

// TargetInfo is a target as signed in the targets metadata.
type TargetInfo struct {
	Name   string            `json:"name"`
	Length int64             `json:"length"`
	Hashes map[string]string `json:"hashes"` // algorithm -> hex digest
}

// CatalogEntry is a catalog payload target with its custom metadata.
type CatalogEntry struct {
	TargetInfo
	Package        string   `json:"package"`
	Version        string   `json:"version"`
	AppliesTo      []string `json:"applies_to,omitempty"`
	Reboot         bool     `json:"reboot"`
	Severity       string   `json:"severity,omitempty"`
	Classification string   `json:"classification,omitempty"`
	CVEs           []string `json:"cves,omitempty"`
	// Format is the payload's package format ("deb" or "rpm"; "" when
	// the entry does not say) and Arch its architecture ("" when unknown).
	Format string `json:"format,omitempty"`
	Arch   string `json:"arch,omitempty"`
	// Custom is the raw custom metadata as signed.
	Custom json.RawMessage `json:"custom,omitempty"`
	// Problem explains why the custom metadata could not be read; the
	// entry should then not be acted on.
	Problem string `json:"problem,omitempty"`
}

// AptEntry is a file of an apt snapshot the admin signed: a Release file,
// an index or a package, with the URL apt asks for it at.
type AptEntry struct {
	TargetInfo
	URL  string `json:"url"`
	Kind string `json:"kind"` // "release", "index" or "package"
	// Problem explains why the custom metadata could not be read; the
	// entry should then not be acted on.
	Problem string `json:"problem,omitempty"`
}

// State is a complete set of verified metadata: what the agent acts on.
type State struct {
	Versions Versions `json:"versions"`
	Expires  Expiries `json:"expires"`
	// VerifiedAt is when this state was verified and stored; refreshes
	// that find nothing new leave it as it is.
	VerifiedAt time.Time `json:"verified_at"`
	// Source is the source the metadata came through.
	Source string `json:"source"`
	// Policy is the verified policy document (canonical JSON), nil when the
	// repository has no policy.json target.
	Policy       []byte         `json:"-"`
	PolicyTarget *TargetInfo    `json:"policy_target,omitempty"`
	Catalog      []CatalogEntry `json:"catalog"`
	// Apt is the apt snapshot the targets pin (offline sites), by name.
	Apt []AptEntry `json:"apt,omitempty"`
	// Fleet is the verified fleet document (fleet.json), nil when the
	// repository publishes none.
	Fleet       []byte      `json:"-"`
	FleetTarget *TargetInfo `json:"fleet_target,omitempty"`
	// FleetStatus is the verified fleet status document (fleet-status.json,
	// signed by the delegated fleet-status role), nil when there is none or
	// it could not be verified; FleetStatusExpires is when its signed
	// metadata expires (do not act on it after that).
	FleetStatus        []byte      `json:"-"`
	FleetStatusTarget  *TargetInfo `json:"fleet_status_target,omitempty"`
	FleetStatusVersion int64       `json:"fleet_status_version,omitempty"`
	FleetStatusExpires time.Time   `json:"fleet_status_expires,omitzero"`

	raw *bundle
}

// ExpiresAt returns the earliest expiry date of the four roles: from then
// on the state must not be acted on.
func (s *State) ExpiresAt() time.Time {
	t := s.Expires.Root
	for _, e := range []time.Time{s.Expires.Timestamp, s.Expires.Snapshot, s.Expires.Targets} {
		if e.Before(t) {
			t = e
		}
	}
	return t
}

// Expired reports whether any role has expired at now.
func (s *State) Expired(now time.Time) bool { return now.After(s.ExpiresAt()) }

// expiredError names the first expired role.
func (s *State) expiredError(now time.Time) error {
	for _, r := range []struct {
		role string
		t    time.Time
	}{{"root", s.Expires.Root}, {"timestamp", s.Expires.Timestamp}, {"snapshot", s.Expires.Snapshot}, {"targets", s.Expires.Targets}} {
		if now.After(r.t) {
			return fmt.Errorf("%w: last verified %s expired at %s (now %s)", ErrExpired, r.role, r.t.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
		}
	}
	return nil
}

// bundle is the persisted form of a State: the exact verified bytes.
type bundle struct {
	Format     int       `json:"format"`
	VerifiedAt time.Time `json:"verified_at"`
	Source     string    `json:"source"`
	Root       []byte    `json:"root"`
	Timestamp  []byte    `json:"timestamp"`
	Snapshot   []byte    `json:"snapshot"`
	Targets    []byte    `json:"targets"`
	Policy     []byte    `json:"policy,omitempty"`
	Fleet      []byte    `json:"fleet,omitempty"`
	// StatusMeta is the fleet-status role's metadata and Status the
	// document it signs (both absent when there is none).
	StatusMeta []byte `json:"status_meta,omitempty"`
	Status     []byte `json:"status,omitempty"`
}

// sameContent reports whether o holds the same verified bytes as b.
func (b *bundle) sameContent(o *bundle) bool {
	return bytes.Equal(b.Root, o.Root) && bytes.Equal(b.Timestamp, o.Timestamp) && bytes.Equal(b.Snapshot, o.Snapshot) &&
		bytes.Equal(b.Targets, o.Targets) && bytes.Equal(b.Policy, o.Policy) &&
		bytes.Equal(b.Fleet, o.Fleet) && bytes.Equal(b.StatusMeta, o.StatusMeta) && bytes.Equal(b.Status, o.Status)
}

// verify checks a bundle as go-tuf's client workflow would at the time it
// was verified (signatures, thresholds, versions, hashes; expiry against
// VerifiedAt) and builds its State.
func (b *bundle) verify() (*State, *trustedmetadata.TrustedMetadata, error) {
	if b.Format != stateFormat {
		return nil, nil, fmt.Errorf("%w: state format %d, want %d", ErrMalformed, b.Format, stateFormat)
	}
	tm, err := trustedmetadata.New(b.Root)
	if err != nil {
		return nil, nil, fmt.Errorf("root: %w", err)
	}
	tm.RefTime = b.VerifiedAt
	if _, err := tm.UpdateTimestamp(b.Timestamp); err != nil {
		return nil, nil, fmt.Errorf("timestamp: %w", err)
	}
	if _, err := tm.UpdateSnapshot(b.Snapshot, false); err != nil {
		return nil, nil, fmt.Errorf("snapshot: %w", err)
	}
	if _, err := tm.UpdateTargets(b.Targets); err != nil {
		return nil, nil, fmt.Errorf("targets: %w", err)
	}
	targets := tm.Targets[metadata.TARGETS].Signed.Targets
	st := &State{
		Versions: Versions{
			Root:      tm.Root.Signed.Version,
			Timestamp: tm.Timestamp.Signed.Version,
			Snapshot:  tm.Snapshot.Signed.Version,
			Targets:   tm.Targets[metadata.TARGETS].Signed.Version,
		},
		Expires: Expiries{
			Root:      tm.Root.Signed.Expires,
			Timestamp: tm.Timestamp.Signed.Expires,
			Snapshot:  tm.Snapshot.Signed.Expires,
			Targets:   tm.Targets[metadata.TARGETS].Signed.Expires,
		},
		VerifiedAt: b.VerifiedAt,
		Source:     b.Source,
		Catalog:    []CatalogEntry{},
		raw:        b,
	}
	if tf, ok := targets[PolicyTarget]; ok {
		if err := tf.VerifyLengthHashes(b.Policy); err != nil {
			return nil, nil, fmt.Errorf("policy: %w", err)
		}
		ti := targetInfo(PolicyTarget, tf)
		st.PolicyTarget = &ti
		st.Policy = b.Policy
	} else if b.Policy != nil {
		return nil, nil, fmt.Errorf("%w: state holds a policy the targets metadata does not list", ErrMalformed)
	}
	if tf, ok := targets[FleetTarget]; ok && b.Fleet != nil {
		// A state stored before agents fetched fleet.json has none: the
		// next refresh fetches it.
		if err := tf.VerifyLengthHashes(b.Fleet); err != nil {
			return nil, nil, fmt.Errorf("fleet: %w", err)
		}
		ti := targetInfo(FleetTarget, tf)
		st.FleetTarget = &ti
		st.Fleet = b.Fleet
	} else if b.Fleet != nil {
		return nil, nil, fmt.Errorf("%w: state holds a fleet document the targets metadata does not list", ErrMalformed)
	}
	if b.StatusMeta != nil {
		md, err := tm.UpdateDelegatedTargets(b.StatusMeta, FleetStatusRole, metadata.TARGETS)
		if err != nil {
			return nil, nil, fmt.Errorf("fleet status: %w", err)
		}
		tf, ok := md.Signed.Targets[FleetStatusTarget]
		if !ok {
			return nil, nil, fmt.Errorf("%w: fleet status metadata lists no %s", ErrMalformed, FleetStatusTarget)
		}
		if err := tf.VerifyLengthHashes(b.Status); err != nil {
			return nil, nil, fmt.Errorf("fleet status: %w", err)
		}
		ti := targetInfo(FleetStatusTarget, tf)
		st.FleetStatusTarget = &ti
		st.FleetStatus = b.Status
		st.FleetStatusVersion = md.Signed.Version
		st.FleetStatusExpires = md.Signed.Expires
	} else if b.Status != nil {
		return nil, nil, fmt.Errorf("%w: state holds a fleet status without its metadata", ErrMalformed)
	}
	names := make([]string, 0, len(targets))
	var aptNames []string
	for name := range targets {
		if strings.HasPrefix(name, CatalogPrefix) {
			names = append(names, name)
		}
		if strings.HasPrefix(name, AptPrefix) {
			aptNames = append(aptNames, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		st.Catalog = append(st.Catalog, catalogEntry(name, targets[name]))
	}
	sort.Strings(aptNames)
	for _, name := range aptNames {
		st.Apt = append(st.Apt, aptEntry(name, targets[name]))
	}
	return st, tm, nil
}

func targetInfo(name string, tf *metadata.TargetFiles) TargetInfo {
	ti := TargetInfo{Name: name, Length: tf.Length, Hashes: map[string]string{}}
	for alg, h := range tf.Hashes {
		ti.Hashes[alg] = hex.EncodeToString(h)
	}
	return ti
}

// catalogEntry parses a catalog target's custom metadata. Problems are
// reported in the entry, not as an error: one bad entry must not block the
// policy.
func catalogEntry(name string, tf *metadata.TargetFiles) CatalogEntry {
	e := CatalogEntry{TargetInfo: targetInfo(name, tf)}
	if tf.Custom == nil {
		e.Problem = "no custom metadata"
		return e
	}
	e.Custom = slices.Clone(*tf.Custom)
	if err := parseCatalogCustom(e.Custom, &e); err != nil {
		e.Problem = err.Error()
	}
	return e
}

// aptEntry reads an apt target's custom metadata; problems are reported
// in the entry.
func aptEntry(name string, tf *metadata.TargetFiles) AptEntry {
	e := AptEntry{TargetInfo: targetInfo(name, tf)}
	if tf.Custom == nil {
		e.Problem = "no custom metadata"
		return e
	}
	var c struct {
		Apt struct {
			URL  string `json:"url"`
			Kind string `json:"kind"`
		} `json:"apt"`
	}
	switch err := json.Unmarshal(*tf.Custom, &c); {
	case err != nil:
		e.Problem = "custom metadata: " + err.Error()
	case !strings.HasPrefix(c.Apt.URL, "http://") && !strings.HasPrefix(c.Apt.URL, "https://"):
		e.Problem = fmt.Sprintf("custom metadata: apt url %q is not an http(s) URL", c.Apt.URL)
	case c.Apt.Kind != "release" && c.Apt.Kind != "index" && c.Apt.Kind != "package":
		e.Problem = fmt.Sprintf("custom metadata: apt kind %q is not release, index or package", c.Apt.Kind)
	default:
		e.URL, e.Kind = c.Apt.URL, c.Apt.Kind
	}
	if e.Hashes["sha256"] == "" && e.Problem == "" {
		e.Problem = "no sha256"
	}
	return e
}

// parseCatalogCustom reads the custom metadata of a catalog target into e.
func parseCatalogCustom(custom []byte, e *CatalogEntry) error {
	var c struct {
		Package        *string  `json:"package"`
		Version        *string  `json:"version"`
		AppliesTo      []string `json:"applies_to"`
		Reboot         bool     `json:"reboot"`
		Severity       string   `json:"severity"`
		Classification string   `json:"classification"`
		CVEs           []string `json:"cves"`
		Format         string   `json:"format"`
		Arch           string   `json:"arch"`
	}
	if err := json.Unmarshal(custom, &c); err != nil {
		return fmt.Errorf("custom metadata: %w", err)
	}
	if c.Package == nil || *c.Package == "" {
		return errors.New("custom metadata: package is missing")
	}
	if c.Version == nil || *c.Version == "" {
		return errors.New("custom metadata: version is missing")
	}
	e.Package, e.Version = *c.Package, *c.Version
	switch c.Format {
	case "", "deb", "rpm":
	default:
		return fmt.Errorf("custom metadata: format %q is not deb or rpm", c.Format)
	}
	e.AppliesTo, e.Reboot, e.Severity, e.Classification, e.CVEs = c.AppliesTo, c.Reboot, c.Severity, c.Classification, c.CVEs
	e.Format, e.Arch = c.Format, c.Arch
	return nil
}

// readBundle loads the persisted state; ErrNoState when there is none.
func readBundle(dir string) (*bundle, error) {
	data, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNoState
	}
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	var b bundle
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("read state %s: %w: %v", filepath.Join(dir, stateFile), ErrMalformed, err)
	}
	return &b, nil
}

// writeBundle persists b atomically (temp file, fsync, rename, dir fsync).
func writeBundle(dir string, b *bundle) error {
	data, err := json.Marshal(b)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, stateFile), data, 0o600)
}
