package inventory

import (
	"context"
	"fmt"
)

// kernelReboot applies the newest-kernel rule: a reboot is needed when a
// kernel newer than the running one is installed, or when the running
// kernel's package was removed while others are installed. Containers are
// skipped: they run their host's kernel.
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
	case !k.RunningInstalled:
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
