// Package policysvc keeps the agent's signed policy current: it refreshes
// the fleet's TUF repository through the trust client, parses and
// validates the verified policy, keeps the last good one when a refresh
// fails, and stops new installs once that policy has expired. It also
// keeps the verified fleet document (fleet.json) and this node's
// credential, re-read on every refresh (identity.go).
package policysvc

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/patchring/patchring/daemon/apitypes"
	"github.com/patchring/patchring/policy"
	"github.com/patchring/patchring/policy/credential"
	"github.com/patchring/patchring/policy/fleetstatus"
	"github.com/patchring/patchring/policy/trust"
)

// Config configures the service.
type Config struct {
	Trust    *trust.Client
	Log      *slog.Logger
	Interval time.Duration
	Now      func() time.Time
	// Facts returns this node's facts (ring selection in `policy show`).
	Facts func() policy.NodeFacts
	// OnChange is called after a new policy was verified and parsed, and
	// when this node's credential or the fleet document changed.
	OnChange func(p *policy.Policy, version string)
	// NodeID is this node's ID, which its credential must name.
	NodeID string
	// CredentialFile is this node's credential (<state dir>/node.credential);
	// empty: none.
	CredentialFile string
}

// Service refreshes the policy.
type Service struct {
	cfg     Config
	trigger chan struct{}

	mu        sync.Mutex
	pol       *policy.Policy
	state     *trust.State
	version   string
	lastTry   time.Time
	lastErr   error
	refreshed time.Time
	// The parsed fleet status of state (FleetStatus), and the last raw
	// document that did not parse.
	statusRaw, statusBad []byte
	statusView           *fleetstatus.View

	// idMu guards the identity below; it is taken after mu, never before,
	// and alone by SiteTags (which Facts calls with mu held).
	idMu     sync.Mutex
	fleet    *credential.Trust // nil: no fleet.json published
	fleetRaw []byte
	fleetErr error
	cred     *credential.Credential
	credRaw  []byte
	credErr  error
}

// New returns the service, loaded with the last verified state on disk.
func New(cfg Config) *Service {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Interval == 0 {
		cfg.Interval = 5 * time.Minute
	}
	s := &Service{cfg: cfg, trigger: make(chan struct{}, 1)}
	s.loadCredential()
	if st, err := cfg.Trust.LastGood(); err == nil {
		if err := s.adopt(st); err != nil {
			cfg.Log.Warn("policy: last verified policy is unusable", "err", err)
		}
	}
	return s
}

// Name implements the daemon's service interface.
func (s *Service) Name() string { return "policy" }

// Trigger asks for a refresh now, e.g. when gossip says a peer holds a
// newer timestamp. The hint is never trusted: the refresh verifies.
func (s *Service) Trigger() {
	select {
	case s.trigger <- struct{}{}:
	default:
	}
}

// Current returns the policy to act on and its version, or nil when there
// is none or it has expired.
func (s *Service) Current() (*policy.Policy, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pol == nil {
		return nil, ""
	}
	if s.pol.Expired(s.cfg.Now()) || (s.state != nil && s.state.Expired(s.cfg.Now())) {
		return nil, s.version
	}
	return s.pol, s.version
}

// TimestampVersion is the verified timestamp version (gossiped as a hint).
func (s *Service) TimestampVersion() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == nil {
		return 0
	}
	return s.state.Versions.Timestamp
}

// Catalog returns the verified catalog entries.
func (s *Service) Catalog() []trust.CatalogEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == nil {
		return nil
	}
	return s.state.Catalog
}

// Run refreshes at start, on the interval (with jitter so a site does not
// refresh in lockstep) and on Trigger.
func (s *Service) Run(ctx context.Context) error {
	for {
		s.Refresh(ctx)
		jitter := time.Duration(rand.Int64N(int64(s.cfg.Interval)/10 + 1))
		t := time.NewTimer(s.cfg.Interval + jitter)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		case <-s.trigger:
			t.Stop()
		}
	}
}

// Refresh verifies the repository once. On failure the last good policy
// stays in force until it expires.
func (s *Service) Refresh(ctx context.Context) error {
	return s.refresh(ctx, s.cfg.Trust.Refresh)
}

// RefreshFrom verifies the repository through the given sources (an
// imported offline bundle) and adopts what verifies, like Refresh.
func (s *Service) RefreshFrom(ctx context.Context, sources []trust.Source) error {
	return s.refresh(ctx, func(ctx context.Context) (trust.Result, error) {
		return s.cfg.Trust.RefreshFrom(ctx, sources)
	})
}

func (s *Service) refresh(ctx context.Context, verify func(context.Context) (trust.Result, error)) error {
	before := s.identityKey()
	s.loadCredential()
	res, err := verify(ctx)
	s.mu.Lock()
	s.lastTry = s.cfg.Now()
	s.mu.Unlock()
	defer func() {
		after := s.identityKey()
		s.mu.Lock()
		pol, version := s.pol, s.version
		s.mu.Unlock()
		if after != before && s.cfg.OnChange != nil && pol != nil {
			s.cfg.Log.Info("identity: credential or fleet document changed", "identity", after)
			s.cfg.OnChange(pol, version)
		}
	}()
	if err == nil {
		err = s.adopt(res.State)
	}
	s.mu.Lock()
	s.lastErr = err
	if err == nil {
		s.refreshed = s.cfg.Now()
	}
	pol, version := s.pol, s.version
	s.mu.Unlock()
	if err != nil {
		if pol != nil && pol.Expired(s.cfg.Now()) {
			s.cfg.Log.Error("policy: refresh failed and the last good policy has expired: installing nothing new", "err", err)
		} else {
			s.cfg.Log.Warn("policy: refresh failed; keeping the last good policy", "err", err)
		}
		return err
	}
	if res.Changed {
		s.cfg.Log.Info("policy: verified new metadata", "version", version, "source", res.Source)
		if s.cfg.OnChange != nil && pol != nil {
			s.cfg.OnChange(pol, version)
		}
	}
	return nil
}

func (s *Service) adopt(st trust.State) error {
	if fleetErr := s.adoptFleet(st.Fleet); fleetErr != nil {
		s.cfg.Log.Error("identity: "+fleetErr.Error(), "err", fleetErr)
	}
	if st.Policy == nil {
		s.mu.Lock()
		s.state = &st
		s.mu.Unlock()
		return errors.New("the repository holds no policy.json target yet")
	}
	p, err := policy.ParseJSON(st.Policy, "policy.json")
	if err != nil {
		return fmt.Errorf("verified policy does not validate (kept the last good one): %w", err)
	}
	s.mu.Lock()
	s.pol, s.state = p, &st
	s.version = fmt.Sprintf("targets-v%d", st.Versions.Targets)
	s.mu.Unlock()
	return nil
}

// Status summarizes the policy for `patchring status`.
func (s *Service) Status() apitypes.SubsystemStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	st := apitypes.SubsystemStatus{Name: "policy", State: "ok", Details: map[string]string{}}
	switch {
	case s.pol == nil && s.lastErr != nil:
		st.State, st.Summary = "error", "no verified policy: "+s.lastErr.Error()
	case s.pol == nil:
		st.State, st.Summary = "pending", "no verified policy yet"
	case s.pol.Expired(now) || s.state.Expired(now):
		st.State = "expired"
		st.Summary = fmt.Sprintf("policy %s expired: installing nothing new until a fresh one verifies", s.version)
	default:
		ring, _ := policy.RingFor(s.pol, s.cfg.Facts())
		st.Summary = fmt.Sprintf("%s %q, ring %s, expires %s", s.version, s.pol.Name, ring, s.pol.Expires.Format(time.RFC3339))
	}
	if s.lastErr != nil && s.pol != nil {
		if st.State == "ok" {
			st.State = "degraded"
		}
		st.Details["last_error"] = s.lastErr.Error()
	}
	if !s.refreshed.IsZero() {
		st.Details["verified"] = s.refreshed.Format(time.RFC3339)
	}
	id := s.identityAt(now)
	st.Details["identity"] = identitySummary(id)
	s.idMu.Lock()
	if s.fleetErr != nil {
		st.Details["fleet_error"] = s.fleetErr.Error()
	}
	s.idMu.Unlock()
	switch {
	case id.Enforced && id.Problem != "":
		st.Summary += "; credential " + id.Problem
		if st.State == "ok" {
			st.State = "degraded"
		}
	case !id.Enforced:
		st.Details["warning"] = "the repository publishes no fleet.json: any holder of the gossip key is a member (create the fleet CA with `patchring ca init`)"
	}
	return st
}

// identityKey summarizes what ring selection and admission depend on, to
// notice a change.
func (s *Service) identityKey() string {
	id := s.identityAt(s.cfg.Now())
	s.idMu.Lock()
	sum := sha256.Sum256(s.fleetRaw)
	s.idMu.Unlock()
	return fmt.Sprintf("enforced=%v site=%s tags=%v problem=%s fleet=%x", id.Enforced, id.Site, id.Tags, id.Problem, sum[:8])
}

// RefreshNow refreshes the policy (POST /policy/refresh) and returns the
// effective policy with the refresh's error, if any, in LastError.
func (s *Service) RefreshNow(ctx context.Context) apitypes.EffectivePolicy {
	err := s.Refresh(ctx)
	out := s.Effective()
	if err != nil {
		out.LastError = err.Error()
	}
	return out
}

// Effective describes the policy as it applies to this node.
func (s *Service) Effective() apitypes.EffectivePolicy {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	out := apitypes.EffectivePolicy{Version: s.version, LastTry: s.lastTry, Verified: s.refreshed, Identity: s.identityAt(now)}
	if s.lastErr != nil {
		out.LastError = s.lastErr.Error()
	}
	if s.state != nil {
		out.Source = s.state.Source
		out.MetadataExpires = s.state.ExpiresAt()
		out.TimestampVersion = s.state.Versions.Timestamp
	}
	if s.pol == nil {
		return out
	}
	p := s.pol
	f := s.cfg.Facts()
	out.Name = p.Name
	out.Expires = p.Expires
	out.Expired = p.Expired(now) || (s.state != nil && s.state.Expired(now))
	out.Ring, out.RingWhy = policy.RingFor(p, f)
	for i := 0; i < 3; i++ {
		start, end, name, ok := p.NextWindow(out.Ring, now)
		if !ok {
			break
		}
		out.NextWindows = append(out.NextWindows, apitypes.WindowTime{Name: name, Start: start, End: end})
		now = end.Add(time.Second)
	}
	for _, r := range p.Rings {
		if r.Name == out.Ring {
			out.Defer = time.Duration(r.Defer).String()
			for _, g := range r.Gates {
				out.Gates = append(out.Gates, GatePolicy(g))
			}
		}
	}
	out.Transactions = apitypes.TransactionsPolicy{
		AllowRemove: slices.Clone(p.Transactions.AllowRemove), WithoutRollback: slices.Clone(p.Transactions.WithoutRollback),
	}
	out.Restarts = apitypes.RestartPolicy{Mode: p.RestartMode(),
		Include: slices.Clone(p.RestartServices.Include), Exclude: slices.Clone(p.RestartServices.Exclude)}
	if h := p.RebootHooks.PreReboot; h != nil {
		out.Hooks.PreReboot, out.Hooks.PreTimeout = slices.Clone(h.Command), h.Timeout.String()
	}
	if h := p.RebootHooks.PostReboot; h != nil {
		out.Hooks.PostReboot, out.Hooks.PostTimeout = slices.Clone(h.Command), h.Timeout.String()
	}
	rr := p.RebootRules(f)
	out.Reboot = apitypes.RebootPolicy{
		NotifyAhead: rr.NotifyAhead.String(), MaxDeferrals: rr.MaxDeferrals, AllowRefuse: rr.AllowRefuse,
		Deadline: rr.Deadline.String(), Grace: rr.Grace.String(), UserRestart: rr.UserRestart,
	}
	for _, c := range rr.DeferChoices {
		out.Reboot.DeferChoices = append(out.Reboot.DeferChoices, c.String())
	}
	return out
}

// GatePolicy describes a gate for the local API, with the defaults the
// evaluation applies spelled out (too_few_reports: wait).
func GatePolicy(g policy.Gate) apitypes.GatePolicy {
	out := apitypes.GatePolicy{Ring: g.Ring, MinSuccess: g.MinSuccess, MinNodes: g.MinNodes, TooFewReports: g.TooFewReports}
	if g.Scope == policy.ScopeFleet {
		out.Scope = policy.ScopeFleet
	}
	if out.TooFewReports == "" {
		out.TooFewReports = policy.TooFewReportsWait
	}
	if g.OpenAfter != 0 {
		out.OpenAfter = g.OpenAfter.String()
	}
	return out
}
