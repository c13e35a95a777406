// Package vulns is the agent's vulnerability exposure: it keeps the signed
// advisory database current (policy/advisory, fetched as TUF targets
// through policy/trust: a delta from the version it holds when the
// repository signs one, else the full database; every byte verified
// against the signed metadata, expired or tampered data refused), matches
// the installed packages of the latest inventory against it, joins the CPU
// vulnerabilities the inventory reads and the update engine's decisions
// (is a fix available, approved, pending), and answers GET /v1/vulns and
// the compact summary the node gossips.
package vulns

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/patchring/patchring/daemon/apitypes"
	"github.com/patchring/patchring/internal/atomicfile"
	pinv "github.com/patchring/patchring/platform/inventory"
	"github.com/patchring/patchring/policy/advisory"
	"github.com/patchring/patchring/policy/trust"
	"github.com/patchring/patchring/policy/tufrepo"
)

// Targets is the verified TUF repository (policy/trust's Client).
type Targets interface {
	TargetInfo(name string) (trust.TargetInfo, error)
	DownloadTarget(ctx context.Context, name, dstDir string) (string, error)
}

// Config configures the service.
type Config struct {
	Targets  Targets
	StateDir string // the agent's state dir; the database lives in advisories/
	Log      *slog.Logger
	// Inventory returns the latest inventory snapshot (nil before the
	// first scan).
	Inventory func() *pinv.Snapshot
	// Candidates returns the update the node sees for each binary package
	// and how far the policy let it go; nil without an engine.
	Candidates func(ctx context.Context) map[string]Candidate
	// OnChange is called after a new database was verified and adopted.
	OnChange func()
	Now      func() time.Time
}

// Service keeps the advisory database and matches against it.
type Service struct {
	cfg     Config
	trigger chan struct{}

	mu      sync.Mutex
	db      *advisory.DB
	jsonSHA string // SHA-256 of db's canonical JSON
	target  string // SHA-256 of the signed full database target it equals
	ix      *Index
	ixEcos  string
	state   apitypes.AdvisoryState

	// The gossiped summary, recomputed when the inventory or the
	// database changes, or after summaryTTL (the engine's decisions).
	sumMu   sync.Mutex
	sum     apitypes.VulnSummary
	sumSnap *pinv.Snapshot
	sumDB   *advisory.DB
	sumAt   time.Time
}

// summaryTTL bounds how old the gossiped summary may be.
const summaryTTL = time.Minute

// Result says what a refresh did.
type Result struct {
	Changed bool
	Version int64
	// Via is "delta" or "full" for a change, "" otherwise.
	Via   string
	Bytes int64
}

type stored struct {
	Target  string `json:"target_sha256"`
	JSONSHA string `json:"json_sha256"`
	Version int64  `json:"version"`
}

func (s *Service) dir() string { return filepath.Join(s.cfg.StateDir, "advisories") }

// New loads the database the agent verified last, if any.
func New(cfg Config) (*Service, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Service{cfg: cfg, trigger: make(chan struct{}, 1)}
	if err := os.MkdirAll(s.dir(), 0o700); err != nil {
		return nil, fmt.Errorf("advisories: %w", err)
	}
	raw, err := os.ReadFile(filepath.Join(s.dir(), "current.json.gz"))
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("advisories: %w", err)
	}
	var st stored
	if b, err := os.ReadFile(filepath.Join(s.dir(), "current.meta.json")); err == nil {
		_ = json.Unmarshal(b, &st)
	}
	db, sum, err := advisory.Decode(raw)
	if err != nil || sum != st.JSONSHA {
		// A damaged copy is dropped: the next refresh fetches the full
		// database again.
		cfg.Log.Warn("advisories: stored database unusable, fetching it again", "err", err)
		return s, nil
	}
	s.adopt(db, sum, st.Target)
	return s, nil
}

func (s *Service) adopt(db *advisory.DB, sum, target string) {
	s.db, s.jsonSHA, s.target, s.ix, s.ixEcos = db, sum, target, nil, ""
	s.state.Version, s.state.Built, s.state.KEVCatalog, s.state.Entries = db.Version, db.Built, db.KEVCatalog, len(db.Entries)
}

// Name implements the run group's part.
func (s *Service) Name() string { return "vulns" }

// Trigger asks Run for a refresh (after new metadata was verified).
func (s *Service) Trigger() {
	select {
	case s.trigger <- struct{}{}:
	default:
	}
}

// retryAfter is how soon Run tries again after a failed refresh (the
// origin and the site's peers unreachable, say), besides every Trigger.
const retryAfter = time.Minute

// Run refreshes at start, on every Trigger and, after a failure, every
// retryAfter, until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	retry := time.NewTimer(retryAfter)
	defer retry.Stop()
	for {
		failed := false
		if _, err := s.Refresh(ctx); err != nil && ctx.Err() == nil {
			s.cfg.Log.Warn("advisories: refresh", "err", err, "retry_in", retryAfter)
			failed = true
		}
		var again <-chan time.Time
		if failed {
			retry.Reset(retryAfter)
			again = retry.C
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.trigger:
		case <-again:
		}
	}
}

// Refresh brings the database to the version the verified metadata signs.
// Expired metadata, bytes that do not match it, a delta whose result is not
// the signed database and a database older than the one held are refused;
// the last verified database stays in use and the state says why.
func (s *Service) Refresh(ctx context.Context) (Result, error) {
	res, err := s.refresh(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state.Checked = s.cfg.Now()
	s.state.Stale, s.state.Error = false, ""
	switch {
	case err == nil:
		return res, nil
	case errors.Is(err, trust.ErrUnknownTarget):
		s.state.Error = "the repository publishes no advisory database"
		return res, nil
	default:
		s.state.Stale, s.state.Error = s.db != nil, err.Error()
		return res, fmt.Errorf("refresh advisories: %w", err)
	}
}

func (s *Service) refresh(ctx context.Context) (Result, error) {
	if s.cfg.Targets == nil {
		return Result{}, errors.New("no verified repository configured")
	}
	info, err := s.cfg.Targets.TargetInfo(tufrepo.AdvisoryDBTarget)
	if err != nil {
		return Result{}, err
	}
	s.mu.Lock()
	have, haveSHA, haveTarget := s.db, s.jsonSHA, s.target
	s.mu.Unlock()
	if have != nil && info.Hashes["sha256"] == haveTarget {
		return Result{Version: have.Version}, nil
	}
	dl := filepath.Join(s.dir(), "download")
	defer os.RemoveAll(dl)
	var db *advisory.DB
	var sum string
	res := Result{Changed: true}
	if have != nil {
		name := tufrepo.AdvisoryDeltaTarget(have.Version)
		if dinfo, err := s.cfg.Targets.TargetInfo(name); err == nil {
			db, sum, err = s.viaDelta(ctx, name, dl, have, haveSHA)
			if err != nil {
				s.cfg.Log.Warn("advisories: delta refused, fetching the full database", "delta", name, "err", err)
				if errors.Is(err, trust.ErrExpired) {
					return Result{}, err
				}
			} else {
				res.Via, res.Bytes = "delta", dinfo.Length
			}
		}
	}
	if db == nil {
		p, err := s.cfg.Targets.DownloadTarget(ctx, tufrepo.AdvisoryDBTarget, dl)
		if err != nil {
			return Result{}, err
		}
		raw, err := os.ReadFile(p)
		if err != nil {
			return Result{}, err
		}
		if db, sum, err = advisory.Decode(raw); err != nil {
			return Result{}, err
		}
		res.Via, res.Bytes = "full", info.Length
	}
	if have != nil && db.Version < have.Version {
		return Result{}, fmt.Errorf("signed advisory database version %d is older than version %d held: refused", db.Version, have.Version)
	}
	gz, sum2, err := db.Encode()
	if err != nil || sum2 != sum {
		return Result{}, fmt.Errorf("re-encode advisory database: hash %s, want %s (%v)", sum2, sum, err)
	}
	if err := atomicfile.WriteFile(filepath.Join(s.dir(), "current.json.gz"), gz, 0o600); err != nil {
		return Result{}, err
	}
	meta, _ := json.Marshal(stored{Target: info.Hashes["sha256"], JSONSHA: sum, Version: db.Version})
	if err := atomicfile.WriteFile(filepath.Join(s.dir(), "current.meta.json"), meta, 0o600); err != nil {
		return Result{}, err
	}
	s.mu.Lock()
	s.adopt(db, sum, info.Hashes["sha256"])
	s.mu.Unlock()
	res.Version = db.Version
	s.cfg.Log.Info("advisories: adopted", "version", db.Version, "entries", len(db.Entries), "via", res.Via, "bytes", res.Bytes)
	if s.cfg.OnChange != nil {
		s.cfg.OnChange()
	}
	return res, nil
}

func (s *Service) viaDelta(ctx context.Context, name, dl string, have *advisory.DB, haveSHA string) (*advisory.DB, string, error) {
	p, err := s.cfg.Targets.DownloadTarget(ctx, name, dl)
	if err != nil {
		return nil, "", err
	}
	raw, err := os.ReadFile(p)
	if err != nil {
		return nil, "", err
	}
	d, err := advisory.DecodeDelta(raw)
	if err != nil {
		return nil, "", err
	}
	return d.Apply(have, haveSHA)
}

// State returns the database in use and the last refresh's outcome.
func (s *Service) State() apitypes.AdvisoryState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}

// installed turns the inventory's packages into the matcher's input and
// names the node's ecosystems.
func installed(snap *pinv.Snapshot) ([]Installed, []string) {
	if snap == nil || snap.Packages == nil || snap.OS == nil {
		return nil, nil
	}
	ecos := EcosystemsFor(snap.OS.ID, snap.OS.VersionID)
	out := make([]Installed, 0, len(snap.Packages.Items))
	for _, p := range snap.Packages.Items {
		if p.Manager != "dpkg" && p.Manager != "rpm" {
			continue
		}
		switch p.Status {
		case "installed", "triggers-awaited", "triggers-pending", "half-configured", "unpacked":
		default:
			continue // config-files: no code left to be exposed
		}
		out = append(out, Installed{Name: p.Name, Version: p.Version, Source: p.Source, SourceVersion: p.SourceVersion})
	}
	return out, ecos
}

func (s *Service) index(ecos []string) *Index {
	key := fmt.Sprint(ecos)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return nil
	}
	if s.ix == nil || s.ixEcos != key {
		s.ix, s.ixEcos = NewIndex(s.db, ecos), key
	}
	return s.ix
}

// Findings matches the latest inventory against the database.
func (s *Service) Findings(ctx context.Context) ([]Finding, []string) {
	snap := s.inventory()
	pkgs, ecos := installed(snap)
	ix := s.index(ecos)
	if ix == nil || len(pkgs) == 0 {
		return nil, ecos
	}
	var cands map[string]Candidate
	if s.cfg.Candidates != nil {
		cands = s.cfg.Candidates(ctx)
	}
	return ix.Match(pkgs, cands), ecos
}

func (s *Service) inventory() *pinv.Snapshot {
	if s.cfg.Inventory == nil {
		return nil
	}
	return s.cfg.Inventory()
}

// APIVulns answers GET /v1/vulns: the node's exposure.
func (s *Service) APIVulns(ctx context.Context) (apitypes.Vulns, error) {
	fs, ecos := s.Findings(ctx)
	out := apitypes.Vulns{Advisories: s.State(), Ecosystems: ecos, Findings: make([]apitypes.VulnFinding, 0, len(fs))}
	for _, f := range fs {
		out.Findings = append(out.Findings, apitypes.VulnFinding{Package: f.Package, Version: f.Version, Source: f.Source,
			SourceVersion: f.SourceVersion, ID: f.ID, Advisories: f.Advisories, Severity: string(f.Severity), Score: f.Score,
			KEV: f.KEV, FixedIn: f.FixedIn, Fix: string(f.Fix), Update: f.Update, Summary: f.Summary})
	}
	if snap := s.inventory(); snap != nil && snap.Security != nil {
		for _, v := range snap.Security.Vulnerabilities {
			out.CPU = append(out.CPU, apitypes.CPUVuln{Name: v.Name, Status: string(v.Status), Detail: v.Detail})
		}
	}
	out.Summary = summarize(fs, out.CPU, out.Advisories.Version)
	return out, nil
}

// Summary is the compact exposure the node gossips.
func (s *Service) Summary(ctx context.Context) apitypes.VulnSummary {
	v, _ := s.APIVulns(ctx)
	return v.Summary
}

// CachedSummary is Summary, recomputed only when the inventory or the
// database changed or summaryTTL passed: gossip asks for it often, and a
// match of thousands of packages costs tens of milliseconds.
func (s *Service) CachedSummary(ctx context.Context) apitypes.VulnSummary {
	snap := s.inventory()
	s.mu.Lock()
	db := s.db
	s.mu.Unlock()
	s.sumMu.Lock()
	defer s.sumMu.Unlock()
	now := s.cfg.Now()
	if snap == s.sumSnap && db == s.sumDB && now.Sub(s.sumAt) < summaryTTL && !s.sumAt.IsZero() {
		return s.sum
	}
	s.sum, s.sumSnap, s.sumDB, s.sumAt = s.Summary(ctx), snap, db, now
	return s.sum
}

func summarize(fs []Finding, cpu []apitypes.CPUVuln, version int64) apitypes.VulnSummary {
	sum := apitypes.VulnSummary{Version: version}
	for _, f := range fs {
		switch f.Severity {
		case advisory.SeverityCritical:
			sum.Critical++
		case advisory.SeverityHigh:
			sum.High++
		case advisory.SeverityMedium:
			sum.Medium++
		case advisory.SeverityLow, advisory.SeverityNone:
			sum.Low++
		default:
			sum.Unknown++
		}
		if f.KEV {
			sum.KEV++
		}
		if f.Fix == FixNone || f.Fix == FixNotAvailable {
			sum.NoFix++
		}
	}
	for _, c := range cpu {
		if c.Status == string(pinv.VulnVulnerable) {
			sum.CPU++
		}
	}
	return sum
}

// Fixes returns the worst severity ("" when none is known) of the
// vulnerabilities installing version of the binary package pkg fixes on
// this node, and whether one of them is in CISA's KEV catalog: the facts
// the policy's urgent rules and min_severity read (engine.Config.Vulns).
func (s *Service) Fixes(pkg, version string) (string, bool) {
	pkgs, ecos := installed(s.inventory())
	ix := s.index(ecos)
	if ix == nil {
		return "", false
	}
	for _, p := range pkgs {
		if p.Name != pkg {
			continue
		}
		worst, kev := advisory.SeverityUnknown, false
		found := false
		for _, f := range ix.Match([]Installed{p}, map[string]Candidate{pkg: {Version: version, State: FixAvailable}}) {
			if f.Update != version {
				continue // not fixed by this version
			}
			found = true
			kev = kev || f.KEV
			if f.Severity.Rank() > worst.Rank() {
				worst = f.Severity
			}
		}
		if !found || worst == advisory.SeverityUnknown || worst == advisory.SeverityNone {
			return "", kev
		}
		return string(worst), kev
	}
	return "", false
}
