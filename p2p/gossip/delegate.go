package gossip

import (
	"fmt"

	"github.com/hashicorp/memberlist"
	"github.com/libp2p/go-libp2p/core/peer"
)

// The memberlist callback interfaces are implemented by small types with a
// back-pointer, as Serf does. memberlist calls several of them with its node
// lock held, so none of them calls back into memberlist, and none blocks:
// they update the table under g.mu and hand slow work to Run's loops.

type delegate struct{ g *Gossip }

var _ memberlist.Delegate = (*delegate)(nil)

// NodeMeta is the small unsigned summary: state Lamport time, policy
// version, site.
func (d *delegate) NodeMeta(limit int) []byte {
	g := d.g
	g.mu.Lock()
	self := g.members[g.name]
	m := nodeMeta{stateLTime: self.stateLT, policyVersion: self.state.PolicyVersion, site: g.cfg.Site, credential: g.credential}
	g.mu.Unlock()
	b := m.marshal()
	if len(b) > limit {
		// Cannot happen with the field limits; keep memberlist from panicking.
		return b[:1]
	}
	return b
}

func (d *delegate) NotifyMsg(buf []byte) {
	d.g.handle(buf, true, "gossip")
}

// GetBroadcasts fills the space with leases first, then states, then
// content indexes, each class from its own queue.
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	g := d.g
	var out [][]byte
	used := 0
	for _, q := range []*memberlist.TransmitLimitedQueue{g.leaseQ, g.stateQ, g.contentQ} {
		if limit-used <= overhead {
			break
		}
		msgs := q.GetBroadcasts(overhead, limit-used)
		for _, m := range msgs {
			used += overhead + len(m)
		}
		out = append(out, msgs...)
	}
	return out
}

func (d *delegate) LocalState(join bool) []byte { return d.g.localState() }

func (d *delegate) MergeRemoteState(buf []byte, join bool) { d.g.mergeRemoteState(buf, "push-pull") }

type eventDelegate struct{ g *Gossip }

var _ memberlist.EventDelegate = (*eventDelegate)(nil)

func (e *eventDelegate) NotifyJoin(n *memberlist.Node)   { e.g.onNode(n, EventJoin) }
func (e *eventDelegate) NotifyLeave(n *memberlist.Node)  { e.g.onNode(n, EventLeave) }
func (e *eventDelegate) NotifyUpdate(n *memberlist.Node) { e.g.onNode(n, EventUpdate) }

// aliveDelegate refuses members whose name is not a libp2p peer ID that
// embeds its public key, or whose meta does not decode.
type aliveDelegate struct{ g *Gossip }

var _ memberlist.AliveDelegate = (*aliveDelegate)(nil)

func (a *aliveDelegate) NotifyAlive(n *memberlist.Node) error {
	meta, err := unmarshalMeta(n.Meta)
	if err != nil {
		return fmt.Errorf("member %s: %w", n.Name, err)
	}
	g := a.g
	if n.Name != g.name {
		if _, err := g.admitCheck(n.Name, meta.credential); err != nil {
			err = fmt.Errorf("member %s not admitted: %w", n.Name, err)
			g.refuse(n.Name, n.Address(), err)
			return err
		}
	}
	g.mu.Lock()
	ok := g.valid[n.Name]
	g.mu.Unlock()
	if ok {
		return nil
	}
	id, err := peer.Decode(n.Name)
	if err != nil {
		return fmt.Errorf("member name %q is not a node ID: %w", n.Name, err)
	}
	if _, err := id.ExtractPublicKey(); err != nil {
		return fmt.Errorf("member %s: node ID does not embed a public key: %w", n.Name, err)
	}
	g.mu.Lock()
	if len(g.valid) >= maxValidNames {
		clear(g.valid)
	}
	g.valid[n.Name] = true
	g.mu.Unlock()
	return nil
}

type conflictDelegate struct{ g *Gossip }

var _ memberlist.ConflictDelegate = (*conflictDelegate)(nil)

func (c *conflictDelegate) NotifyConflict(existing, other *memberlist.Node) {
	c.g.log.Warn("two gossip members claim one node ID", "node", existing.Name,
		"existing", existing.Address(), "other", other.Address())
}

// broadcast is one queued message. Its name is the class, node and (for
// leases) group, so a newer message replaces an older one in the queue.
type broadcast struct {
	name string
	msg  []byte
}

var _ memberlist.NamedBroadcast = (*broadcast)(nil)

func (b *broadcast) Invalidates(other memberlist.Broadcast) bool {
	o, ok := other.(memberlist.NamedBroadcast)
	return ok && o.Name() == b.name
}
func (b *broadcast) Name() string    { return b.name }
func (b *broadcast) Message() []byte { return b.msg }
func (b *broadcast) Finished()       {}
