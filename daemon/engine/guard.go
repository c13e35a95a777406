package engine

import (
	"errors"
	"fmt"
	"time"

	"github.com/patchring/patchring/policy"
)

// ErrNoUsablePolicy is returned (wrapped) for every install asked for while
// the agent holds no usable policy: none verified yet, or the last one
// expired (its origin stopped refreshing it, or an attacker froze it). The
// trust promise is that such an agent installs nothing new, whichever path
// asks: the planner, `patchring install --now`, or a caller of Install.
var ErrNoUsablePolicy = errors.New("no usable policy")

// policyAllowsInstalls returns nil when the current policy may authorize an
// install now, else an error that says why not.
func (e *Engine) policyAllowsInstalls() error {
	p, version := e.cfg.Policy()
	return installRefusal(p, version, e.cfg.Now())
}

// installRefusal returns nil when policy p (version) may authorize an
// install at now, else an error wrapping ErrNoUsablePolicy that says why.
// It is never nil for a nil p.
func installRefusal(p *policy.Policy, version string, now time.Time) error {
	switch {
	case p == nil && version == "":
		return fmt.Errorf("%w: no verified policy yet; installing nothing", ErrNoUsablePolicy)
	case p == nil:
		return fmt.Errorf("%w: policy %s expired or is unusable; installing nothing new until a fresh policy verifies", ErrNoUsablePolicy, version)
	case p.Expired(now):
		return fmt.Errorf("%w: policy %s expired %s; installing nothing new until a fresh policy verifies",
			ErrNoUsablePolicy, version, p.Expires.UTC().Format("2006-01-02 15:04 MST"))
	}
	return nil
}
