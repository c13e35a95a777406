package exchange

import (
	"sync"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// allowGater admits only peers on an allow-list (the fleet members heard in
// the encrypted gossip). Inbound connections are checked right after the
// security handshake, when the remote peer ID is authenticated; outbound
// dials to anyone else are refused before they start.
type allowGater struct {
	self peer.ID

	mu      sync.RWMutex
	allowed map[peer.ID]bool
}

var _ connmgr.ConnectionGater = (*allowGater)(nil)

func newAllowGater() *allowGater { return &allowGater{allowed: map[peer.ID]bool{}} }

// set replaces the allow-list and returns the peers that were removed.
func (g *allowGater) set(ids []peer.ID) (removed []peer.ID) {
	next := make(map[peer.ID]bool, len(ids))
	for _, id := range ids {
		next[id] = true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for id := range g.allowed {
		if !next[id] {
			removed = append(removed, id)
		}
	}
	g.allowed = next
	return removed
}

func (g *allowGater) isAllowed(p peer.ID) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.allowed[p]
}

func (g *allowGater) InterceptPeerDial(p peer.ID) bool { return g.isAllowed(p) }

func (g *allowGater) InterceptAddrDial(p peer.ID, _ ma.Multiaddr) bool { return g.isAllowed(p) }

// InterceptAccept admits the TCP connection so that the handshake can
// authenticate the peer; InterceptSecured then decides.
func (g *allowGater) InterceptAccept(network.ConnMultiaddrs) bool { return true }

func (g *allowGater) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return g.isAllowed(p)
}

func (g *allowGater) InterceptUpgraded(c network.Conn) (bool, control.DisconnectReason) {
	return g.isAllowed(c.RemotePeer()), 0
}
