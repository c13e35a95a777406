package inventory

import (
	"context"
	"fmt"
)

// kernelReboot applies the newest-kernel rule: a reboot is needed when a
// kernel newer than the running one is installed. On rpm systems it is
// also needed when the running kernel's package was removed while others
// are installed; dpkg systems (where apt keeps the running kernel) apply
// the rule only when the running kernel is a package, so a self-built
// kernel does not ask for a reboot forever. Containers are skipped: they
// run their host's kernel.
func kernelReboot(r *Reboot, k Kernels, container string) {
	if len(k.Installed) == 0 || k.Running == "" {
		return
	}
	if container != "" && container != "none" {
		r.Unavailable = append(r.Unavailable, Unavailable{Source: "kernel rule", Reason: "in a " + container + " container, which runs its host's kernel"})
		return
	}
	switch {
	case k.Newest != k.Running && k.RunningInstalled:
		r.Required = true
		r.Reasons = append(r.Reasons, fmt.Sprintf("running kernel %s is not the newest installed %s", k.Running, k.Newest))
	case !k.RunningInstalled && k.Manager == "rpm":
		r.Required = true
		r.Reasons = append(r.Reasons, fmt.Sprintf("running kernel %s is no longer installed (newest installed %s)", k.Running, k.Newest))
	}
}

// reboot builds the reboot section.
func (s *scan) reboot(ctx context.Context) *Reboot {
	r := &Reboot{}
	s.rebootFlags(ctx, r)
	kernelReboot(r, s.pkgs(ctx).Kernels, s.containerKind())
	return r
}
