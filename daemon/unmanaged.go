package daemon

import (
	"context"
	"net/netip"

	"github.com/patchring/patchring/daemon/unmanaged"
	"github.com/patchring/patchring/platform/neighbor"
	"github.com/patchring/patchring/policy"
)

// startUnmanaged builds the discovery of the LAN's devices without an
// agent. It is built before the fleet, which serves its sightings to the
// site; it reads the fleet's members through d.fleet once that exists.
func (d *Daemon) startUnmanaged() {
	d.unmanaged = unmanaged.New(unmanaged.Config{
		Log:    d.log,
		NodeID: d.ID(),
		Site:   d.cfg.Site,
		Policy: func() policy.Unmanaged {
			if p, _ := d.currentPolicy(); p != nil {
				return p.Unmanaged
			}
			return policy.Unmanaged{}
		},
		Self: d.unmanagedSelf,
		Members: func() []unmanaged.Member {
			if d.fleet == nil {
				return nil
			}
			var out []unmanaged.Member
			for _, m := range d.fleet.SiteMembers() {
				out = append(out, unmanaged.Member{ID: m.ID, Addrs: m.Addrs})
			}
			return out
		},
		Fetch: func(ctx context.Context, member string) ([]byte, error) {
			return d.fleet.FetchMemberFile(ctx, member, unmanaged.FilePath, unmanaged.MaxFileBytes)
		},
		Metrics: d.metrics,
	})
	d.add(d.unmanaged)
}

// unmanagedSelf is this node's own MACs and addresses from its latest
// inventory (the interfaces section).
func (d *Daemon) unmanagedSelf() ([]neighbor.MAC, []netip.Addr) {
	snap := d.inv.Latest()
	if snap == nil || snap.Network == nil {
		return nil, nil
	}
	var macs []neighbor.MAC
	var addrs []netip.Addr
	for _, i := range snap.Network.Interfaces {
		if m, err := neighbor.ParseMAC(i.MAC); err == nil && m.Unicast() {
			macs = append(macs, m)
		}
		for _, a := range i.Addresses {
			if pf, err := netip.ParsePrefix(a); err == nil {
				addrs = append(addrs, pf.Addr().Unmap())
			} else if ip, err := netip.ParseAddr(a); err == nil {
				addrs = append(addrs, ip.Unmap())
			}
		}
	}
	return macs, addrs
}
