package enroll

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"time"

	"github.com/patchring/patchring/daemon/apitypes"
	"github.com/patchring/patchring/internal/atomicfile"
	"github.com/patchring/patchring/policy/credential"
	penroll "github.com/patchring/patchring/policy/enroll"
)

// Renewal timing.
const (
	// RenewAt is the fraction of a credential's lifetime after which it
	// is renewed.
	RenewAt = 2.0 / 3
	// jitterFraction spreads the renewals of nodes enrolled together:
	// up to this fraction of the lifetime either way.
	jitterFraction = 0.05
	minBackoff     = time.Minute
	minInterval    = 10 * time.Second
	maxBackoff     = time.Hour
	// refusedBackoff is the wait after a final refusal (revoked,
	// expired beyond the grace): the admin may fix it on the service.
	refusedBackoff = 6 * time.Hour
	// recheck bounds every wait, so a credential installed by hand
	// (enroll --credential) is picked up.
	recheck = time.Hour
)

// issuer is the issuing service as the renewer uses it.
type issuer interface {
	Renew(ctx context.Context, current []byte, req *credential.Request) (*credential.Credential, []byte, error)
}

var _ issuer = (*penroll.Client)(nil)

// RenewerConfig configures a Renewer.
type RenewerConfig struct {
	StateDir string
	Node     Node
	Log      *slog.Logger
	// Client, when set, replaces the HTTP client of the service named in
	// the enrollment state (tests).
	Client issuer
	// Jitter returns a number in [0,1) (default math/rand).
	Jitter func() float64
}

// Renewer renews the node's credential online before it expires. It is a
// long-running part of the agent with a status section.
type Renewer struct {
	cfg    RenewerConfig
	client issuer

	mu       sync.Mutex
	state    State
	cur      *credential.Credential
	next     time.Time
	failures int
	lastErr  error
}

// NewRenewer reads the enrollment state of cfg.StateDir.
func NewRenewer(cfg RenewerConfig) (*Renewer, error) {
	st, err := ReadState(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Jitter == nil {
		cfg.Jitter = rand.Float64
	}
	r := &Renewer{cfg: cfg, state: st, client: cfg.Client}
	if r.client == nil {
		r.client = &penroll.Client{Service: st.Service, Pin: st.Pin}
	}
	return r, nil
}

// Name names the part for the run group.
func (r *Renewer) Name() string { return "enrollment" }

// due is when c should be renewed: RenewAt of its lifetime, jittered.
func (r *Renewer) due(c *credential.Credential) time.Time {
	life := c.NotAfter.Sub(c.NotBefore)
	j := time.Duration((r.cfg.Jitter()*2 - 1) * jitterFraction * float64(life))
	return c.NotBefore.Add(time.Duration(RenewAt*float64(life)) + j)
}

func backoff(failures int, final bool) time.Duration {
	if final {
		return refusedBackoff
	}
	d := minBackoff << min(failures-1, 10)
	return min(d, maxBackoff)
}

// Run renews until ctx is done.
func (r *Renewer) Run(ctx context.Context) error {
	var lastAttempt time.Time
	for {
		c, raw, err := ReadCredential(r.cfg.StateDir)
		now := time.Now()
		var next time.Time
		if err != nil {
			r.cfg.Log.Error("no credential to renew", "err", err)
			r.set(nil, now.Add(recheck), err)
			next = now.Add(recheck)
		} else {
			// Never more often than minInterval, whatever the
			// credential's lifetime.
			next = later(r.due(c), lastAttempt.Add(minInterval))
			if r.failures > 0 {
				var ref *penroll.RefusedError
				final := errors.As(r.lastErr, &ref) && ref.Reason.Final()
				next = later(next, lastAttempt.Add(backoff(r.failures, final)))
			}
			r.set(c, next, nil)
		}
		if wait := next.Sub(now); wait > 0 {
			t := time.NewTimer(min(wait, recheck))
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
			if wait > recheck {
				continue
			}
		}
		if c == nil {
			continue
		}
		lastAttempt = time.Now()
		r.renew(ctx, c, raw, lastAttempt)
		if ctx.Err() != nil {
			return nil
		}
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func (r *Renewer) renew(ctx context.Context, c *credential.Credential, raw []byte, now time.Time) {
	err := r.tryRenew(ctx, c, raw, now)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.state.LastAttempt = now.UTC()
	if err == nil {
		r.failures, r.lastErr = 0, nil
		r.state.LastRenewal, r.state.LastError, r.state.LastReason = now.UTC(), "", ""
	} else {
		if ctx.Err() != nil {
			return
		}
		r.failures++
		r.lastErr = err
		r.state.LastError = err.Error()
		var ref *penroll.RefusedError
		if errors.As(err, &ref) {
			r.state.LastReason = string(ref.Reason)
			r.cfg.Log.Error("credential renewal refused", "reason", ref.Reason, "err", err, "expires", c.NotAfter)
		} else {
			r.state.LastReason = ""
			r.cfg.Log.Warn("credential renewal failed; will retry", "err", err, "attempt", r.failures, "expires", c.NotAfter)
		}
	}
	if werr := writeState(r.cfg.StateDir, r.state); werr != nil {
		r.cfg.Log.Error("record renewal", "err", werr)
	}
}

func (r *Renewer) tryRenew(ctx context.Context, c *credential.Credential, raw []byte, now time.Time) error {
	req, err := credential.NewRequest(r.cfg.Node.ID, r.cfg.Node.Hostname, penroll.RenewNonce(c.Serial), now, r.cfg.Node.Sign)
	if err != nil {
		return fmt.Errorf("renew: %w", err)
	}
	next, nraw, err := r.client.Renew(ctx, raw, req)
	if err != nil {
		return err
	}
	if next.NodeID != r.cfg.Node.ID || !next.NotAfter.After(c.NotAfter) {
		return fmt.Errorf("renew: the service answered %s, not a later credential for this node", next)
	}
	if err := atomicfile.WriteFile(filepath.Join(r.cfg.StateDir, credential.FileName), nraw, 0o600); err != nil {
		return fmt.Errorf("renew: %w", err)
	}
	r.cfg.Log.Info("credential renewed", "serial", next.Serial, "previous", c.Serial, "valid_until", next.NotAfter, "site", next.Site, "tags", next.Tags)
	return nil
}

func (r *Renewer) set(c *credential.Credential, next time.Time, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cur, r.next = c, next
	if err != nil {
		r.lastErr = err
	}
}

// Status is the renewal's section of the agent's status.
func (r *Renewer) Status() apitypes.SubsystemStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := apitypes.SubsystemStatus{Name: "enrollment", State: "ok", Details: map[string]string{"service": r.state.Service}}
	if r.cur == nil {
		st.State = "error"
		st.Summary = "no credential"
		if r.lastErr != nil {
			st.Summary = r.lastErr.Error()
		}
		return st
	}
	c := r.cur
	st.Details["serial"] = fmt.Sprint(c.Serial)
	st.Details["site"] = c.Site
	st.Details["valid_until"] = c.NotAfter.UTC().Format(time.RFC3339)
	st.Details["next_renewal"] = r.next.UTC().Format(time.RFC3339)
	if !r.state.LastRenewal.IsZero() {
		st.Details["last_renewal"] = r.state.LastRenewal.Format(time.RFC3339)
	}
	st.Summary = fmt.Sprintf("credential serial %d for site %s valid until %s; renews at %s",
		c.Serial, c.Site, c.NotAfter.UTC().Format(time.RFC3339), r.next.UTC().Format(time.RFC3339))
	if r.failures > 0 && r.lastErr != nil {
		st.State = "degraded"
		if r.state.LastReason != "" {
			st.State = "error"
			st.Details["refused"] = r.state.LastReason
			st.Summary = fmt.Sprintf("renewal refused (%s): %v; credential valid until %s", r.state.LastReason, r.lastErr, c.NotAfter.UTC().Format(time.RFC3339))
		} else {
			st.Summary = fmt.Sprintf("renewal failing (%d attempts): %v; credential valid until %s", r.failures, r.lastErr, c.NotAfter.UTC().Format(time.RFC3339))
		}
	}
	return st
}
