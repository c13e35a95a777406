package daemon

import (
	"context"

	"github.com/patchring/patchring/daemon/vulns"
	"github.com/patchring/patchring/policy"
	"github.com/patchring/patchring/policy/trust"
)

// startVulns builds the vulnerability exposure part over the verified
// repository: it fetches the signed advisory database after every new
// verified metadata and matches the latest inventory.
func (d *Daemon) startVulns(tc *trust.Client) error {
	v, err := vulns.New(vulns.Config{
		// From the store, the origin or the site's peers: an offline
		// site's advisories arrive in a bundle on one node.
		Targets: vulns.SiteTargets{Chain: tc, FromSite: d.fromSite, Store: func() vulns.Store {
			if d.content == nil {
				return nil
			}
			return d.content
		}},
		StateDir:   d.cfg.StateDir,
		Log:        d.log.With("part", "vulns"),
		Inventory:  d.inv.Latest,
		Candidates: d.vulnCandidates,
		// New advisories can change what the policy approves (severity
		// and KEV rules): plan again.
		OnChange: d.triggerEngine,
	})
	if err != nil {
		return err
	}
	d.vulns = v
	d.add(v)
	return nil
}

// vulnCandidates is, per package, the update the engine sees and how far
// the policy let it go: a fix that is pending (due now or at the next
// window), approved (waiting for the ring's deferral or gate), or only
// available.
func (d *Daemon) vulnCandidates(ctx context.Context) map[string]vulns.Candidate {
	if d.engine == nil {
		return nil
	}
	out := map[string]vulns.Candidate{}
	for _, u := range d.engine.APIUpdates(ctx).Updates {
		st := vulns.FixAvailable
		switch policy.Action(u.Action) {
		case policy.ActionInstallNow, policy.ActionInstallAt, policy.ActionWaitWindow:
			st = vulns.FixPending
		case policy.ActionWaitDeferral, policy.ActionWaitGate, policy.ActionPaused:
			st = vulns.FixApproved
		}
		out[u.Package] = vulns.Candidate{Version: u.Version, State: st}
	}
	return out
}
