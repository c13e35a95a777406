package tufrepo

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/patchring/patchring/internal/atomicfile"
	"github.com/patchring/patchring/internal/targetname"
)

// Well-known target names.
const (
	// PolicyTarget is the target that carries the canonical JSON policy.
	PolicyTarget = "policy.json"
	// CatalogPrefix starts the name of every catalog payload target.
	CatalogPrefix = "catalog/"
)

// Role names, as in TUF.
const (
	RoleRoot      = metadata.ROOT
	RoleTargets   = metadata.TARGETS
	RoleSnapshot  = metadata.SNAPSHOT
	RoleTimestamp = metadata.TIMESTAMP
)

// topRoles lists the top-level roles in signing order of importance.
var topRoles = []string{RoleRoot, RoleTargets, RoleSnapshot, RoleTimestamp}

// Roles returns the names of the top-level roles.
func Roles() []string { return slices.Clone(topRoles) }

const (
	metadataDir = "metadata"
	targetsDir  = "targets"
	configFile  = "patchring-repo.json"
	lockFile    = ".patchring-repo.lock"
	maxKeys     = 16
)

// DefaultExpiries are the metadata lifetimes used when Options leaves a
// role out.
var DefaultExpiries = map[string]time.Duration{
	RoleRoot:      365 * 24 * time.Hour,
	RoleTargets:   90 * 24 * time.Hour,
	RoleSnapshot:  7 * 24 * time.Hour,
	RoleTimestamp: 24 * time.Hour,
}

// Errors callers branch on.
var (
	ErrKeysInRepo         = errors.New("keys directory inside the repository")
	ErrKeyPermissions     = errors.New("key file or directory accessible by other users")
	ErrPassphraseRequired = errors.New("key file is encrypted and no passphrase was given")
	ErrBadPassphrase      = errors.New("wrong passphrase for key file")
	ErrExists             = errors.New("repository already initialized")
	ErrNotRepo            = errors.New("not a patchring repository")
	ErrNotEnoughKeys      = errors.New("not enough signing keys to meet the threshold")
	ErrLocked             = errors.New("repository is locked by another command")
	ErrChanged            = errors.New("repository changed on disk since it was opened")
	ErrUnknownRole        = errors.New("unknown role")
	ErrBadTargetName      = targetname.ErrInvalid // the rule of internal/targetname, which agents apply too
	ErrNoSuchTarget       = errors.New("no such target")
	ErrNoSuchKey          = errors.New("no such key")
	ErrThresholdTooHigh   = errors.New("fewer keys than the threshold")
)

// Options configures Init.
type Options struct {
	// Thresholds is the number of signatures each role needs (default 1).
	// Init creates that many keys for the role.
	Thresholds map[string]int
	// Expiries is how long each role's metadata stays valid after it is
	// signed (defaults: DefaultExpiries).
	Expiries map[string]time.Duration
	// Passphrase, when not empty, encrypts every key file.
	Passphrase string
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Versions are the metadata versions of the four top-level roles.
type Versions struct {
	Root      int64 `json:"root"`
	Targets   int64 `json:"targets"`
	Snapshot  int64 `json:"snapshot"`
	Timestamp int64 `json:"timestamp"`
}

// Repo is an open repository. It is not safe for concurrent use; separate
// processes are kept apart by a lock file taken for each change.
type Repo struct {
	dir        string
	keysDir    string
	passphrase []byte
	now        func() time.Time
	expiries   map[string]time.Duration

	root      *metadata.Metadata[metadata.RootType]
	targets   *metadata.Metadata[metadata.TargetsType]
	snapshot  *metadata.Metadata[metadata.SnapshotType]
	timestamp *metadata.Metadata[metadata.TimestampType]

	// targetsVersion is the published targets version; r.targets may hold
	// staged, unpublished changes (dirty).
	targetsVersion int64
	dirty          bool
	keys           map[string]*Key
}

type repoConfig struct {
	Format   int              `json:"format"`
	Expiries map[string]int64 `json:"expiries_seconds"`
}

// Init creates a new repository in dir (metadata/ and targets/) with fresh
// ed25519 keys for every role written to keysDir.
func Init(dir, keysDir string, opts Options) (*Repo, error) {
	if dir == "" || keysDir == "" {
		return nil, errors.New("init repository: both the repository dir and the keys dir are required")
	}
	thresholds := map[string]int{}
	for role, t := range opts.Thresholds {
		if !slices.Contains(topRoles, role) {
			return nil, fmt.Errorf("init repository: threshold for %q: %w (use root, targets, snapshot or timestamp)", role, ErrUnknownRole)
		}
		if t < 1 || t > maxKeys {
			return nil, fmt.Errorf("init repository: threshold %s=%d: must be between 1 and %d", role, t, maxKeys)
		}
		thresholds[role] = t
	}
	expiries := map[string]time.Duration{}
	for role, d := range DefaultExpiries {
		expiries[role] = d
	}
	for role, d := range opts.Expiries {
		if !slices.Contains(topRoles, role) {
			return nil, fmt.Errorf("init repository: expiry for %q: %w (use root, targets, snapshot or timestamp)", role, ErrUnknownRole)
		}
		if d < time.Minute {
			return nil, fmt.Errorf("init repository: expiry %s=%s: must be at least one minute", role, d)
		}
		expiries[role] = d
	}
	if err := checkKeysOutsideRepo(dir, keysDir); err != nil {
		return nil, fmt.Errorf("init repository: %w", err)
	}
	for _, p := range []string{filepath.Join(dir, configFile), filepath.Join(dir, metadataDir, "1.root.json")} {
		if _, err := os.Stat(p); err == nil {
			return nil, fmt.Errorf("init repository: %w: %s exists", ErrExists, p)
		}
	}
	if err := ensureKeysDir(keysDir); err != nil {
		return nil, fmt.Errorf("init repository: %w", err)
	}
	for _, d := range []string{dir, filepath.Join(dir, metadataDir), filepath.Join(dir, targetsDir)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("init repository: %w", err)
		}
	}
	r := &Repo{
		dir:        dir,
		keysDir:    keysDir,
		passphrase: []byte(opts.Passphrase),
		now:        opts.Now,
		expiries:   expiries,
		keys:       map[string]*Key{},
	}
	if r.now == nil {
		r.now = time.Now
	}
	unlock, err := r.lock()
	if err != nil {
		return nil, fmt.Errorf("init repository: %w", err)
	}
	defer unlock()

	now := r.now()
	root := metadata.Root(r.expiry(RoleRoot, now))
	root.Signed.ConsistentSnapshot = true
	var created []*Key
	cleanup := func() {
		for _, k := range created {
			os.Remove(k.Path)
		}
	}
	for _, role := range topRoles {
		n := max(thresholds[role], 1)
		for range n {
			k, err := generateKey(role, now)
			if err != nil {
				cleanup()
				return nil, fmt.Errorf("init repository: %w", err)
			}
			if err := writeKeyFile(keysDir, k, r.passphrase); err != nil {
				cleanup()
				return nil, fmt.Errorf("init repository: %w", err)
			}
			created = append(created, k)
			r.keys[k.ID] = k
			tk, err := k.tufKey()
			if err != nil {
				cleanup()
				return nil, fmt.Errorf("init repository: %w", err)
			}
			if err := root.Signed.AddKey(tk, role); err != nil {
				cleanup()
				return nil, fmt.Errorf("init repository: %w", err)
			}
		}
		root.Signed.Roles[role].Threshold = n
	}
	cfg := repoConfig{Format: 1, Expiries: map[string]int64{}}
	for role, d := range expiries {
		cfg.Expiries[role] = int64(d / time.Second)
	}
	cfgData, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		cleanup()
		return nil, err
	}
	// A fresh repository publishes root 1, targets 1, snapshot 1 and
	// timestamp 1: commit bumps from 0.
	r.targets = metadata.Targets(now)
	r.targets.Signed.Version = 0
	r.snapshot = metadata.Snapshot(now)
	r.snapshot.Signed.Version = 0
	r.timestamp = metadata.Timestamp(now)
	r.timestamp.Signed.Version = 0
	root.Signed.Version = 0
	r.root = root
	r.dirty = true
	if err := atomicfile.WriteFile(filepath.Join(dir, configFile), append(cfgData, '\n'), 0o644); err != nil {
		cleanup()
		return nil, fmt.Errorf("init repository: %w", err)
	}
	initialRoot, err := clone(root)
	if err != nil {
		cleanup()
		return nil, err
	}
	if _, err := r.commitLocked(initialRoot, true, now); err != nil {
		cleanup()
		os.Remove(filepath.Join(dir, configFile))
		return nil, fmt.Errorf("init repository: %w", err)
	}
	return r, nil
}

// Open opens the repository in dir. keysDir may be empty for read-only use
// (Status, ListTargets); passphrase decrypts encrypted key files when they
// are first needed for signing.
func Open(dir, keysDir, passphrase string) (*Repo, error) {
	data, err := os.ReadFile(filepath.Join(dir, configFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("open repository %s: %w (no %s; run patchring repo init)", dir, ErrNotRepo, configFile)
	}
	if err != nil {
		return nil, fmt.Errorf("open repository %s: %w", dir, err)
	}
	var cfg repoConfig
	if err := json.Unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("open repository %s: %s: %w", dir, configFile, err)
	}
	if cfg.Format != 1 {
		return nil, fmt.Errorf("open repository %s: %s: unsupported format %d", dir, configFile, cfg.Format)
	}
	if keysDir != "" {
		if err := checkKeysOutsideRepo(dir, keysDir); err != nil {
			return nil, fmt.Errorf("open repository %s: %w", dir, err)
		}
	}
	r := &Repo{
		dir:        dir,
		keysDir:    keysDir,
		passphrase: []byte(passphrase),
		now:        time.Now,
		expiries:   map[string]time.Duration{},
	}
	for _, role := range topRoles {
		r.expiries[role] = DefaultExpiries[role]
		if s, ok := cfg.Expiries[role]; ok && s > 0 {
			r.expiries[role] = time.Duration(s) * time.Second
		}
	}
	if err := r.load(); err != nil {
		return nil, fmt.Errorf("open repository %s: %w", dir, err)
	}
	keys, err := scanKeys(keysDir)
	if err != nil {
		return nil, fmt.Errorf("open repository %s: %w", dir, err)
	}
	r.keys = keys
	return r, nil
}

// Unlock loads (decrypting with the passphrase given to Open) every key in
// the keys directory that a role of the current root uses, so a missing or
// wrong passphrase fails before anything is written. Errors wrap
// ErrPassphraseRequired or ErrBadPassphrase.
func (r *Repo) Unlock() error {
	for _, role := range topRoles {
		if _, err := r.signers(role, r.root); err != nil {
			return fmt.Errorf("unlock %s keys: %w", role, err)
		}
	}
	return nil
}

// SetClock replaces the clock used for expiry dates and status.
func (r *Repo) SetClock(now func() time.Time) { r.now = now }

// Dir returns the repository directory.
func (r *Repo) Dir() string { return r.dir }

// Versions returns the published metadata versions.
func (r *Repo) Versions() Versions {
	return Versions{
		Root:      r.root.Signed.Version,
		Targets:   r.targetsVersion,
		Snapshot:  r.snapshot.Signed.Version,
		Timestamp: r.timestamp.Signed.Version,
	}
}

// RootJSON returns the latest signed root metadata: the root of trust to
// install with agents.
func (r *Repo) RootJSON() ([]byte, error) {
	return os.ReadFile(r.metaPath(fmt.Sprintf("%d.root.json", r.root.Signed.Version)))
}

var versionedRoot = regexp.MustCompile(`^([1-9][0-9]{0,17})\.root\.json$`)

// load reads the served metadata chain: the highest N.root.json, then
// timestamp.json, the snapshot it names and the targets that names, and
// checks every signature.
func (r *Repo) load() error {
	entries, err := os.ReadDir(filepath.Join(r.dir, metadataDir))
	if err != nil {
		return err
	}
	var rootVersion int64
	for _, e := range entries {
		if m := versionedRoot.FindStringSubmatch(e.Name()); m != nil {
			v, _ := strconv.ParseInt(m[1], 10, 64)
			rootVersion = max(rootVersion, v)
		}
	}
	if rootVersion == 0 {
		return fmt.Errorf("%w: no N.root.json in %s", ErrNotRepo, filepath.Join(r.dir, metadataDir))
	}
	root, err := (&metadata.Metadata[metadata.RootType]{}).FromFile(r.metaPath(fmt.Sprintf("%d.root.json", rootVersion)))
	if err != nil {
		return fmt.Errorf("read root: %w", err)
	}
	if err := root.VerifyDelegate(RoleRoot, root); err != nil {
		return fmt.Errorf("root version %d does not verify: %w", rootVersion, err)
	}
	ts, err := (&metadata.Metadata[metadata.TimestampType]{}).FromFile(r.metaPath("timestamp.json"))
	if err != nil {
		return fmt.Errorf("read timestamp: %w", err)
	}
	if err := root.VerifyDelegate(RoleTimestamp, ts); err != nil {
		return fmt.Errorf("timestamp does not verify: %w", err)
	}
	snapMeta, ok := ts.Signed.Meta["snapshot.json"]
	if !ok {
		return errors.New("timestamp lists no snapshot.json")
	}
	snap, err := (&metadata.Metadata[metadata.SnapshotType]{}).FromFile(r.metaPath(fmt.Sprintf("%d.snapshot.json", snapMeta.Version)))
	if err != nil {
		return fmt.Errorf("read snapshot: %w", err)
	}
	if err := root.VerifyDelegate(RoleSnapshot, snap); err != nil {
		return fmt.Errorf("snapshot does not verify: %w", err)
	}
	tMeta, ok := snap.Signed.Meta["targets.json"]
	if !ok {
		return errors.New("snapshot lists no targets.json")
	}
	targets, err := (&metadata.Metadata[metadata.TargetsType]{}).FromFile(r.metaPath(fmt.Sprintf("%d.targets.json", tMeta.Version)))
	if err != nil {
		return fmt.Errorf("read targets: %w", err)
	}
	if err := root.VerifyDelegate(RoleTargets, targets); err != nil {
		return fmt.Errorf("targets does not verify: %w", err)
	}
	if targets.Signed.Targets == nil {
		targets.Signed.Targets = map[string]*metadata.TargetFiles{}
	}
	for name, tf := range targets.Signed.Targets {
		tf.Path = name
	}
	r.root, r.timestamp, r.snapshot, r.targets = root, ts, snap, targets
	r.targetsVersion = targets.Signed.Version
	r.dirty = false
	return nil
}

func (r *Repo) metaPath(name string) string { return filepath.Join(r.dir, metadataDir, name) }

func (r *Repo) expiry(role string, now time.Time) time.Time {
	return now.UTC().Add(r.expiries[role]).Truncate(time.Second)
}

// lock takes the repository's lock file; the returned func releases it.
func (r *Repo) lock() (func(), error) {
	path := filepath.Join(r.dir, lockFile)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("%w: %s exists (remove it if no patchring repo command is running)", ErrLocked, path)
	}
	if err != nil {
		return nil, fmt.Errorf("lock repository: %w", err)
	}
	fmt.Fprintf(f, "%d\n", os.Getpid())
	f.Close()
	return func() { os.Remove(path) }, nil
}

// checkUnchanged fails when another process published since r was loaded.
func (r *Repo) checkUnchanged() error {
	if r.root.Signed.Version == 0 {
		return nil // being initialized
	}
	ts, err := (&metadata.Metadata[metadata.TimestampType]{}).FromFile(r.metaPath("timestamp.json"))
	if err != nil {
		return fmt.Errorf("read timestamp: %w", err)
	}
	if ts.Signed.Version != r.timestamp.Signed.Version {
		return fmt.Errorf("%w: timestamp version is %d on disk, %d when opened; open it again", ErrChanged, ts.Signed.Version, r.timestamp.Signed.Version)
	}
	if _, err := os.Stat(r.metaPath(fmt.Sprintf("%d.root.json", r.root.Signed.Version+1))); err == nil {
		return fmt.Errorf("%w: root version %d appeared on disk; open it again", ErrChanged, r.root.Signed.Version+1)
	}
	return nil
}

// signers returns signers for every key in keysDir that role lists in any
// of roots, decrypting key files as needed.
func (r *Repo) signers(role string, roots ...*metadata.Metadata[metadata.RootType]) ([]signature.Signer, error) {
	var ids []string
	for _, root := range roots {
		if rr, ok := root.Signed.Roles[role]; ok {
			for _, id := range rr.KeyIDs {
				if !slices.Contains(ids, id) {
					ids = append(ids, id)
				}
			}
		}
	}
	var out []signature.Signer
	for _, id := range ids {
		k, ok := r.keys[id]
		if !ok {
			continue
		}
		if k.Private == nil {
			full, err := ReadKeyFile(k.Path, r.passphrase, true)
			if err != nil {
				return nil, err
			}
			k.Private = full.Private
		}
		s, err := k.signer()
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// signAs replaces md's signatures with signatures by every available key of
// role and checks them against every root in verifiers.
func signAs[T metadata.Roles](r *Repo, md *metadata.Metadata[T], role string, roots []*metadata.Metadata[metadata.RootType]) error {
	signers, err := r.signers(role, roots...)
	if err != nil {
		return fmt.Errorf("sign %s: %w", role, err)
	}
	md.ClearSignatures()
	for _, s := range signers {
		if _, err := md.Sign(s); err != nil {
			return fmt.Errorf("sign %s: %w", role, err)
		}
	}
	for _, root := range roots {
		if err := root.VerifyDelegate(role, md); err != nil {
			need := root.Signed.Roles[role].Threshold
			return fmt.Errorf("sign %s: %w: root version %d needs %d signature(s), %d key(s) of the role found in %s: %v",
				role, ErrNotEnoughKeys, root.Signed.Version, need, len(signers), r.keysDir, err)
		}
	}
	return nil
}

// commitLocked signs and writes a new state. newRoot, when not nil, becomes
// the next root version (signed by the current and new root keys); targets
// is re-signed with a new version when bumpTargets or r.dirty is set;
// snapshot and timestamp always get new versions. The caller holds the lock.
// Nothing in r changes unless every file was written.
func (r *Repo) commitLocked(newRoot *metadata.Metadata[metadata.RootType], bumpTargets bool, now time.Time) (Versions, error) {
	if err := r.checkUnchanged(); err != nil {
		return Versions{}, err
	}
	trust := r.root
	var rootData []byte
	if newRoot != nil {
		newRoot.Signed.Version = r.root.Signed.Version + 1
		newRoot.Signed.Expires = r.expiry(RoleRoot, now)
		roots := []*metadata.Metadata[metadata.RootType]{newRoot}
		if r.root.Signed.Version > 0 {
			roots = append(roots, r.root)
		}
		if err := signAs(r, newRoot, RoleRoot, roots); err != nil {
			return Versions{}, err
		}
		var err error
		if rootData, err = newRoot.ToBytes(true); err != nil {
			return Versions{}, err
		}
		trust = newRoot
		bumpTargets = true
	}
	trustRoots := []*metadata.Metadata[metadata.RootType]{trust}

	var targets *metadata.Metadata[metadata.TargetsType]
	var targetsData []byte
	targetsVersion := r.targetsVersion
	if bumpTargets || r.dirty {
		var err error
		if targets, err = clone(r.targets); err != nil {
			return Versions{}, err
		}
		targetsVersion = r.targetsVersion + 1
		targets.Signed.Version = targetsVersion
		targets.Signed.Expires = r.expiry(RoleTargets, now)
		if err := signAs(r, targets, RoleTargets, trustRoots); err != nil {
			return Versions{}, err
		}
		if targetsData, err = targets.ToBytes(true); err != nil {
			return Versions{}, err
		}
	}
	var tMeta *metadata.MetaFiles
	if targets != nil {
		tMeta = metaFor(targetsVersion, targetsData)
	} else {
		tMeta = r.snapshot.Signed.Meta["targets.json"]
	}

	snapshot, err := clone(r.snapshot)
	if err != nil {
		return Versions{}, err
	}
	snapshot.Signed.Version = r.snapshot.Signed.Version + 1
	snapshot.Signed.Expires = r.expiry(RoleSnapshot, now)
	meta := map[string]*metadata.MetaFiles{"targets.json": tMeta}
	// Delegated roles the new targets still delegate keep their entry
	// (the fleet-status role's metadata is signed by the console).
	signedTargets := r.targets
	if targets != nil {
		signedTargets = targets
	}
	if d := signedTargets.Signed.Delegations; d != nil {
		for _, role := range d.Roles {
			if m, ok := r.snapshot.Signed.Meta[role.Name+".json"]; ok {
				meta[role.Name+".json"] = m
			}
		}
	}
	snapshot.Signed.Meta = meta
	if err := signAs(r, snapshot, RoleSnapshot, trustRoots); err != nil {
		return Versions{}, err
	}
	snapshotData, err := snapshot.ToBytes(true)
	if err != nil {
		return Versions{}, err
	}

	timestamp, err := clone(r.timestamp)
	if err != nil {
		return Versions{}, err
	}
	timestamp.Signed.Version = r.timestamp.Signed.Version + 1
	timestamp.Signed.Expires = r.expiry(RoleTimestamp, now)
	timestamp.Signed.Meta = map[string]*metadata.MetaFiles{"snapshot.json": metaFor(snapshot.Signed.Version, snapshotData)}
	if err := signAs(r, timestamp, RoleTimestamp, trustRoots); err != nil {
		return Versions{}, err
	}
	timestampData, err := timestamp.ToBytes(true)
	if err != nil {
		return Versions{}, err
	}

	// Everything is signed: write, timestamp last. Versioned files first
	// so a client never sees a name that points to a missing file.
	type file struct {
		name string
		data []byte
	}
	var files []file
	if rootData != nil {
		files = append(files,
			file{fmt.Sprintf("%d.root.json", newRoot.Signed.Version), rootData},
			file{"root.json", rootData})
	}
	if targetsData != nil {
		files = append(files,
			file{fmt.Sprintf("%d.targets.json", targetsVersion), targetsData},
			file{"targets.json", targetsData})
	}
	files = append(files,
		file{fmt.Sprintf("%d.snapshot.json", snapshot.Signed.Version), snapshotData},
		file{"snapshot.json", snapshotData},
		file{"timestamp.json", timestampData})
	for _, f := range files {
		if err := atomicfile.WriteFile(r.metaPath(f.name), f.data, 0o644); err != nil {
			return Versions{}, fmt.Errorf("publish: %w", err)
		}
	}
	if newRoot != nil {
		r.root = newRoot
	}
	if targets != nil {
		for name, tf := range targets.Signed.Targets {
			tf.Path = name
		}
		r.targets = targets
		r.targetsVersion = targetsVersion
		r.dirty = false
	}
	r.snapshot = snapshot
	r.timestamp = timestamp
	return r.Versions(), nil
}

func metaFor(version int64, data []byte) *metadata.MetaFiles {
	tf, _ := metadata.TargetFile().FromBytes("", data, "sha256")
	return &metadata.MetaFiles{Version: version, Length: tf.Length, Hashes: tf.Hashes}
}

func clone[T metadata.Roles](m *metadata.Metadata[T]) (*metadata.Metadata[T], error) {
	data, err := m.ToBytes(false)
	if err != nil {
		return nil, err
	}
	return (&metadata.Metadata[T]{}).FromBytes(data)
}

// Publish signs the staged targets with a new version and publishes new
// snapshot and timestamp versions.
func (r *Repo) Publish() (Versions, error) {
	unlock, err := r.lock()
	if err != nil {
		return Versions{}, fmt.Errorf("publish: %w", err)
	}
	defer unlock()
	removed := r.unreferencedPayloads()
	v, err := r.commitLocked(nil, true, r.now())
	if err != nil {
		return Versions{}, fmt.Errorf("publish: %w", err)
	}
	r.removePayloads(removed)
	return v, nil
}

// Refresh re-signs timestamp and snapshot with new versions and expiry
// dates. It also re-signs targets when it has staged changes or has less
// than half its lifetime left, and root (with the same keys) when root has
// less than half its lifetime left.
func (r *Repo) Refresh() (Versions, error) {
	unlock, err := r.lock()
	if err != nil {
		return Versions{}, fmt.Errorf("refresh: %w", err)
	}
	defer unlock()
	now := r.now()
	var newRoot *metadata.Metadata[metadata.RootType]
	if r.root.Signed.Expires.Sub(now) < r.expiries[RoleRoot]/2 {
		if newRoot, err = clone(r.root); err != nil {
			return Versions{}, err
		}
	}
	bumpTargets := r.targets.Signed.Expires.Sub(now) < r.expiries[RoleTargets]/2
	v, err := r.commitLocked(newRoot, bumpTargets, now)
	if err != nil {
		return Versions{}, fmt.Errorf("refresh: %w", err)
	}
	return v, nil
}

// parseRole checks a role name.
func parseRole(role string) error {
	if !slices.Contains(topRoles, role) {
		return fmt.Errorf("%w %q: use %s", ErrUnknownRole, role, strings.Join(topRoles, ", "))
	}
	return nil
}
