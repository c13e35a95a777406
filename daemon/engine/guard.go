package engine

import (
	"errors"
	"fmt"
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
	switch {
	case p == nil && version == "":
		return fmt.Errorf("%w: no verified policy yet; installing nothing", ErrNoUsablePolicy)
	case p == nil:
		return fmt.Errorf("%w: policy %s expired or is unusable; installing nothing new until a fresh policy verifies", ErrNoUsablePolicy, version)
	case p.Expired(e.cfg.Now()):
		return fmt.Errorf("%w: policy %s expired %s; installing nothing new until a fresh policy verifies",
			ErrNoUsablePolicy, version, p.Expires.UTC().Format("2006-01-02 15:04 MST"))
	}
	return nil
}
