package membership

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/patchring/patchring/p2p/exchange"
	"github.com/patchring/patchring/p2p/gossip"
)

// UnmanagedPrefix is where a node serves its sightings of the LAN's
// devices without an agent (daemon/unmanaged) to its site's members.
const UnmanagedPrefix = "unmanaged/"

// prefixRouter serves paths under prefix from files, the others from next,
// on the same file protocol and for the same admitted peers.
type prefixRouter struct {
	prefix string
	files  exchange.Files
	next   exchange.Files
}

func (r prefixRouter) OpenFile(ctx context.Context, path string) (io.ReadCloser, int64, error) {
	if strings.HasPrefix(path, r.prefix) {
		return r.files.OpenFile(ctx, path)
	}
	return r.next.OpenFile(ctx, path)
}

// SiteMember is a live member of this node's site and the addresses it
// uses: its gossip address and the addresses of its libp2p listeners.
type SiteMember struct {
	ID    string
	Addrs []netip.Addr
}

// SiteMembers are the live members of this node's site (visitors
// included: they are agents too), itself left out.
func (f *Membership) SiteMembers() []SiteMember {
	var out []SiteMember
	for _, m := range f.g.Members() {
		if m.Local || m.Liveness != gossip.LivenessAlive {
			continue
		}
		sm := SiteMember{ID: m.NodeID}
		if host, _, err := net.SplitHostPort(m.Addr); err == nil {
			if a, err := netip.ParseAddr(host); err == nil {
				sm.Addrs = append(sm.Addrs, a.Unmap())
			}
		}
		for _, s := range m.State.Addrs {
			a, err := ma.NewMultiaddr(s)
			if err != nil {
				continue
			}
			for _, code := range []int{ma.P_IP4, ma.P_IP6} {
				if v, err := a.ValueForProtocol(code); err == nil {
					if ip, err := netip.ParseAddr(v); err == nil && !ip.IsUnspecified() && !ip.IsLoopback() {
						sm.Addrs = append(sm.Addrs, ip.Unmap())
					}
				}
			}
		}
		out = append(out, sm)
	}
	return out
}

// FetchMemberFile reads the file at path (at most max bytes) that member
// serves on the exchange's file protocol.
func (f *Membership) FetchMemberFile(ctx context.Context, member, path string, max int64) ([]byte, error) {
	if f.x == nil {
		return nil, fmt.Errorf("fetch %s from %s: payload exchange is off", path, member)
	}
	m, ok := f.g.Member(member)
	if !ok {
		return nil, fmt.Errorf("fetch %s from %s: not a member", path, member)
	}
	ai, ok := memberAddrInfo(m)
	if !ok {
		return nil, fmt.Errorf("fetch %s from %s: no address", path, member)
	}
	rc, _, err := f.x.FetchFile(ctx, ai, path, max)
	if err != nil {
		return nil, fmt.Errorf("fetch %s from %s: %w", path, member, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, max+1))
	if err != nil {
		return nil, fmt.Errorf("fetch %s from %s: %w", path, member, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("fetch %s from %s: more than %d bytes", path, member, max)
	}
	return b, nil
}
