package trust

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/config"
	"github.com/theupdateframework/go-tuf/v2/metadata/trustedmetadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/updater"
)

// Defaults for Config's zero values.
const (
	DefaultTimeout        = 30 * time.Second
	DefaultPayloadTimeout = 2 * time.Hour
	DefaultMinRate        = 1024 // bytes per second
	DefaultRateWindow     = 10 * time.Second
	DefaultMaxPolicyBytes = 8 << 20
)

// Config configures a Client.
type Config struct {
	// TrustedRoot is the root metadata installed with the agent: the root
	// of trust. Required.
	TrustedRoot []byte
	// StateDir holds the last verified state (created 0700). Required.
	StateDir string
	// Sources are tried in order; see Source. They can be replaced later
	// with SetSources.
	Sources []Source

	// Timeout bounds each metadata request (default 30s).
	Timeout time.Duration
	// PayloadTimeout bounds each target download (default 2h).
	PayloadTimeout time.Duration
	// MinRate is the minimum transfer rate in bytes per second, measured
	// over each RateWindow (defaults 1024 B/s over 10s); a source below it
	// is cut off with ErrSlow. Negative disables the check.
	MinRate    int64
	RateWindow time.Duration

	// Caps on metadata sizes (zero: go-tuf's defaults of 512000, 16384,
	// 2000000 and 5000000 bytes). Snapshot and targets are further capped
	// by the length signed in timestamp and snapshot.
	MaxRootBytes      int64
	MaxTimestampBytes int64
	MaxSnapshotBytes  int64
	MaxTargetsBytes   int64
	// MaxPolicyBytes caps the policy document (default 8 MiB).
	MaxPolicyBytes int64

	// Now is the clock used for expiry checks (default time.Now). Tests
	// move it to simulate a freeze attack.
	Now func() time.Time
	// Logger receives warnings about misbehaving sources (default: none).
	Logger *slog.Logger
}

// Client verifies the fleet's TUF repository for one agent. It is safe for
// concurrent use; refreshes are serialized.
type Client struct {
	cfg      Config
	log      *slog.Logger
	rootVer  int64
	refresh  sync.Mutex // one refresh at a time: go-tuf's Updater is single-use and not concurrency-safe
	mu       sync.RWMutex
	sources  []Source
	state    *State
	stateErr error
}

// Result is the outcome of a successful Refresh.
type Result struct {
	State
	// Changed reports whether any metadata version differs from the
	// previous verified state (always true for the first one).
	Changed bool `json:"changed"`
}

// New checks cfg and returns a Client. It does not touch the network.
func New(cfg Config) (*Client, error) {
	if len(cfg.TrustedRoot) == 0 {
		return nil, errors.New("trust client: no trusted root metadata given")
	}
	tm, err := trustedmetadata.New(cfg.TrustedRoot)
	if err != nil {
		return nil, fmt.Errorf("trust client: trusted root: %w", err)
	}
	if cfg.StateDir == "" {
		return nil, errors.New("trust client: no state directory given")
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("trust client: %w", err)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.PayloadTimeout <= 0 {
		cfg.PayloadTimeout = DefaultPayloadTimeout
	}
	if cfg.MinRate == 0 {
		cfg.MinRate = DefaultMinRate
	}
	if cfg.RateWindow <= 0 {
		cfg.RateWindow = DefaultRateWindow
	}
	if cfg.MaxPolicyBytes <= 0 {
		cfg.MaxPolicyBytes = DefaultMaxPolicyBytes
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Client{cfg: cfg, log: cfg.Logger, rootVer: tm.Root.Signed.Version, sources: slices.Clone(cfg.Sources)}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.removeStale()
	return c, nil
}

// removeStale deletes scratch directories and temporary files that a
// killed process left in the state directory more than an hour ago. The
// state file itself is replaced only by rename, so it is either the old or
// the new one.
func (c *Client) removeStale() {
	entries, err := os.ReadDir(c.cfg.StateDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		n := e.Name()
		info, err := e.Info()
		if err != nil || time.Since(info.ModTime()) < time.Hour {
			continue
		}
		if strings.HasPrefix(n, "refresh-") || strings.HasPrefix(n, "lookup-") || strings.HasPrefix(n, ".tmp-") {
			if err := os.RemoveAll(filepath.Join(c.cfg.StateDir, n)); err != nil {
				c.log.Warn("cannot remove stale scratch file", "path", n, "err", err)
			}
		}
	}
}

// StateDir returns the directory holding the verified state.
func (c *Client) StateDir() string { return c.cfg.StateDir }

// SetSources replaces the source chain (e.g. when peers come and go).
func (c *Client) SetSources(sources []Source) {
	c.mu.Lock()
	c.sources = slices.Clone(sources)
	c.mu.Unlock()
}

// Sources returns the current source chain.
func (c *Client) Sources() []Source {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return slices.Clone(c.sources)
}

// LastGood returns the last verified state from the state directory
// without touching the network, whether or not it has expired (see
// State.Expired and CheckExpiry). ErrNoState when there is none.
func (c *Client) LastGood() (State, error) {
	st, err := c.lastGood()
	if err != nil {
		return State{}, err
	}
	return st.copy(), nil
}

func (c *Client) lastGood() (*State, error) {
	c.mu.RLock()
	st, err := c.state, c.stateErr
	c.mu.RUnlock()
	if st != nil || err != nil {
		return st, err
	}
	b, err := readBundle(c.cfg.StateDir)
	if err == nil {
		st, _, err = b.verify()
		if err != nil {
			err = wrap("load verified state", "", err)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == nil {
		c.state, c.stateErr = st, err
		if errors.Is(err, ErrNoState) {
			c.stateErr = nil // look again next time
		}
	}
	return st, err
}

func (s *State) copy() State {
	out := *s
	out.Policy = bytes.Clone(s.Policy)
	out.Fleet = bytes.Clone(s.Fleet)
	out.Catalog = slices.Clone(s.Catalog)
	out.Apt = slices.Clone(s.Apt)
	return out
}

// CheckExpiry returns nil when the last verified state is in force at the
// client's clock, an error wrapping ErrExpired naming the expired role
// otherwise, or ErrNoState.
func (c *Client) CheckExpiry() error {
	st, err := c.lastGood()
	if err != nil {
		return err
	}
	return st.expiredError(c.cfg.Now())
}

// Refresh runs the TUF client workflow through the source chain: with the
// first source, then, if that fails, the next, each time with a fresh
// go-tuf Updater starting from the last verified state. On success the new
// state (metadata and the verified policy document) replaces the previous
// one atomically. On failure the previous state stays in force and the
// error wraps the reason of each source's failure.
func (c *Client) Refresh(ctx context.Context) (Result, error) {
	return c.refreshWith(ctx, c.Sources())
}

func (c *Client) refreshWith(ctx context.Context, sources []Source) (Result, error) {
	c.refresh.Lock()
	defer c.refresh.Unlock()
	if len(sources) == 0 {
		return Result{}, &Error{Op: "refresh", Reason: ErrNoSources, Err: errors.New("add the origin or a peer")}
	}
	prev, err := c.lastGood()
	if err != nil && !errors.Is(err, ErrNoState) {
		// A state that no longer verifies is not a trust anchor; start
		// again from the installed root.
		c.log.Warn("ignoring stored state that does not verify", "err", err)
		prev = nil
	}
	var errs []error
	for i := range sources {
		if ctx.Err() != nil {
			errs = append(errs, ctx.Err())
			break
		}
		res, err := c.refreshVia(ctx, prev, sources, i)
		if err == nil {
			return res, nil
		}
		c.log.Warn("refresh failed", "source", sources[i].Name(), "err", err)
		errs = append(errs, err)
	}
	if len(errs) == 1 {
		return Result{}, errs[0]
	}
	return Result{}, fmt.Errorf("refresh failed through %d sources: %w", len(errs), errors.Join(errs...))
}

// updaterConfig builds a go-tuf configuration working in dir.
func (c *Client) updaterConfig(root []byte, dir string, f *tufFetcher) (*config.UpdaterConfig, error) {
	ucfg, err := config.New(remoteMetadataURL, root)
	if err != nil {
		return nil, err
	}
	ucfg.LocalMetadataDir = dir
	ucfg.LocalTargetsDir = filepath.Join(dir, "targets")
	ucfg.PrefixTargetsWithHash = true
	ucfg.MaxDelegations = 8
	if f != nil {
		ucfg.Fetcher = f
	}
	for _, lim := range []struct {
		dst *int64
		v   int64
	}{{&ucfg.RootMaxLength, c.cfg.MaxRootBytes}, {&ucfg.TimestampMaxLength, c.cfg.MaxTimestampBytes},
		{&ucfg.SnapshotMaxLength, c.cfg.MaxSnapshotBytes}, {&ucfg.TargetsMaxLength, c.cfg.MaxTargetsBytes}} {
		if lim.v > 0 {
			*lim.dst = lim.v
		}
	}
	return ucfg, nil
}

// seed writes the metadata of prev into a scratch directory for go-tuf and
// returns the root to start from (the newer of the installed root and the
// stored one).
func (c *Client) seed(dir string, prev *State) ([]byte, error) {
	root := c.cfg.TrustedRoot
	if prev == nil {
		return root, nil
	}
	if prev.Versions.Root >= c.rootVer {
		root = prev.raw.Root
	}
	for name, data := range map[string][]byte{"timestamp.json": prev.raw.Timestamp, "snapshot.json": prev.raw.Snapshot, "targets.json": prev.raw.Targets,
		FleetStatusRole + ".json": prev.raw.StatusMeta} {
		if data == nil {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return nil, err
		}
	}
	return root, nil
}

// refreshVia runs one refresh through sources[i].
func (c *Client) refreshVia(ctx context.Context, prev *State, sources []Source, i int) (Result, error) {
	src := sources[i]
	op := "refresh"
	work, err := os.MkdirTemp(c.cfg.StateDir, "refresh-")
	if err != nil {
		return Result{}, wrap(op, "", err)
	}
	defer os.RemoveAll(work)
	root, err := c.seed(work, prev)
	if err != nil {
		return Result{}, wrap(op, "", err)
	}
	now := c.cfg.Now()
	tf := &tufFetcher{ctx: ctx, c: c, sources: sources, i: i}
	ucfg, err := c.updaterConfig(root, work, tf)
	if err != nil {
		return Result{}, wrap(op, src.Name(), err)
	}
	up, err := updater.New(ucfg)
	if err != nil {
		return Result{}, wrap(op, src.Name(), err)
	}
	up.UnsafeSetRefTime(now)
	if err := up.Refresh(); err != nil {
		return Result{}, wrap(op, src.Name(), err)
	}
	b := &bundle{Format: stateFormat, VerifiedAt: now, Source: src.Name()}
	for _, f := range []struct {
		name string
		dst  *[]byte
	}{{"root.json", &b.Root}, {"timestamp.json", &b.Timestamp}, {"snapshot.json", &b.Snapshot}, {"targets.json", &b.Targets}} {
		if *f.dst, err = os.ReadFile(filepath.Join(work, f.name)); err != nil {
			return Result{}, wrap(op, src.Name(), err)
		}
	}
	if pt, ok := up.GetTopLevelTargets()[PolicyTarget]; ok {
		if prev != nil && prev.PolicyTarget != nil && pt.VerifyLengthHashes(prev.Policy) == nil {
			b.Policy = prev.Policy
		} else {
			trusted := up.GetTrustedMetadataSet()
			policy, err := c.fetchSmall(ctx, sources, i, PolicyTarget, pt, trusted.Root.Signed.ConsistentSnapshot)
			if err != nil {
				return Result{}, err
			}
			b.Policy = policy
		}
	}
	if ft, ok := up.GetTopLevelTargets()[FleetTarget]; ok {
		if prev != nil && prev.FleetTarget != nil && ft.VerifyLengthHashes(prev.Fleet) == nil {
			b.Fleet = prev.Fleet
		} else {
			trusted := up.GetTrustedMetadataSet()
			fleet, err := c.fetchSmall(ctx, sources, i, FleetTarget, ft, trusted.Root.Signed.ConsistentSnapshot)
			if err != nil {
				return Result{}, err
			}
			b.Fleet = fleet
		}
	}
	b.StatusMeta, b.Status = c.fetchFleetStatus(ctx, up, work, prev, sources, i)
	if prev != nil && prev.raw.sameContent(b) {
		// Nothing new: the stored state stays as it is (no write, no
		// fsync on every periodic refresh).
		return Result{State: prev.copy()}, nil
	}
	st, _, err := b.verify()
	if err != nil {
		return Result{}, wrap(op, src.Name(), err)
	}
	// The intermediate roots first: a crash before the state is written
	// leaves verified roots that a later refresh fetches again anyway.
	c.keepRoots(tf.fetchedRoots(), st.Versions.Root)
	if err := writeBundle(c.cfg.StateDir, b); err != nil {
		return Result{}, wrap(op, "", err)
	}
	c.mu.Lock()
	c.state, c.stateErr = st, nil
	c.mu.Unlock()
	return Result{State: st.copy(), Changed: prev == nil || prev.Versions != st.Versions}, nil
}

// fetchFleetStatus loads the fleet-status role's metadata (through go-tuf,
// which checks it against the delegation and the snapshot) and its
// document, when the targets metadata delegates the role. The fleet status
// is optional: when it is missing, stale or does not verify, the refresh
// goes on without it (gates with scope: fleet then count no reports, which
// only delays rings), and the reason is logged.
func (c *Client) fetchFleetStatus(ctx context.Context, up *updater.Updater, work string, prev *State, sources []Source, i int) (meta, doc []byte) {
	trusted := up.GetTrustedMetadataSet()
	d := trusted.Targets[metadata.TARGETS].Signed.Delegations
	if d == nil || !slices.ContainsFunc(d.Roles, func(r metadata.DelegatedRole) bool { return r.Name == FleetStatusRole }) {
		return nil, nil
	}
	if _, ok := trusted.Snapshot.Signed.Meta[FleetStatusRole+".json"]; !ok {
		return nil, nil // delegated, nothing published yet
	}
	tf, err := up.GetTargetInfo(FleetStatusTarget)
	if err != nil {
		c.log.Warn("fleet status not verified; gates with scope: fleet count no reports", "err", err)
		return nil, nil
	}
	meta, err = os.ReadFile(filepath.Join(work, FleetStatusRole+".json"))
	if err != nil {
		c.log.Warn("fleet status metadata not stored", "err", err)
		return nil, nil
	}
	if prev != nil && prev.FleetStatusTarget != nil && tf.VerifyLengthHashes(prev.raw.Status) == nil {
		return meta, prev.raw.Status
	}
	doc, err = c.fetchSmall(ctx, sources, i, FleetStatusTarget, tf, trusted.Root.Signed.ConsistentSnapshot)
	if err != nil {
		c.log.Warn("fleet status document not fetched; gates with scope: fleet count no reports", "err", err)
		return nil, nil
	}
	return meta, doc
}

// fetchSmall downloads a small target the agent acts on (the policy, the
// fleet document) into memory (capped like the policy), verified against
// its signed length and hashes, trying the refresh's source first and then
// the others.
func (c *Client) fetchSmall(ctx context.Context, sources []Source, first int, name string, tf *metadata.TargetFiles, consistent bool) ([]byte, error) {
	op := "download " + name
	if tf.Length > c.cfg.MaxPolicyBytes {
		return nil, &Error{Op: op, Reason: ErrTooLarge, Err: fmt.Errorf("signed length %d exceeds the cap of %d bytes", tf.Length, c.cfg.MaxPolicyBytes)}
	}
	var errs []error
	for _, j := range tryOrder(len(sources), first) {
		var buf bytes.Buffer
		err := c.fetchVerified(ctx, sources[j], remoteTargetPath(name, tf, consistent), tf, &buf, c.cfg.Timeout)
		if err == nil {
			return buf.Bytes(), nil
		}
		errs = append(errs, wrap(op, sources[j].Name(), err))
		if ctx.Err() != nil {
			break
		}
	}
	if len(errs) == 1 {
		return nil, errs[0]
	}
	return nil, fmt.Errorf("%s failed through %d sources: %w", op, len(errs), errors.Join(errs...))
}

// tryOrder returns 0..n-1 starting at first.
func tryOrder(n, first int) []int {
	out := make([]int, 0, n)
	for k := range n {
		out = append(out, (first+k)%n)
	}
	return out
}
