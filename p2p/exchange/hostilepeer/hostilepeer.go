// Package hostilepeer is a test tool: a fleet member that holds the site's
// gossip key, joins the pool like any agent (so the others admit it to the
// payload exchange) and then speaks /patchring/blob/2, /patchring/blob/1
// and /patchring/meta/1 adversarially: malformed and oversized frames,
// absurd piece sizes and ranges, lying manifests, random bytes after a
// valid prefix, floods of requests and stalls. It is what docs/TRUST.md
// says a member with the fleet key can do; tests run it against a real
// patchringd and check that the victim stays up, bounded and fair.
//
// It is not used by the daemon; it lives outside _test files only so that
// tests of other packages (cmd/patchringd) can use it.
package hostilepeer

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"

	"github.com/patchring/patchring/p2p/content"
	"github.com/patchring/patchring/p2p/exchange"
	"github.com/patchring/patchring/p2p/gossip"
)

// Config says which site to join.
type Config struct {
	// Keys is the site's gossip keyring (the first key is used to send).
	Keys [][]byte
	// Seeds are gossip addresses (host:port) of members.
	Seeds []string
	// Site, Label and Hostname are announced like an agent's.
	Site, Label, Hostname string
	// Store backs the member's own exchange node (an honest member fetches
	// into it); nil opens one in a temporary directory the caller gives in
	// StoreDir.
	Store *content.Store
	// Logger receives the member's log; nil logs nothing.
	Logger *slog.Logger
}

// Member is a node of the site: a gossip member and an exchange node with
// the same libp2p identity. Its Node can fetch honestly; Run attacks.
type Member struct {
	G    *gossip.Gossip
	Node *exchange.Node

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Join starts a member on 127.0.0.1 and joins the pool. It is admitted by
// the others once they hear it; Find reports when it sees a target.
func Join(ctx context.Context, cfg Config) (*Member, error) {
	if cfg.Store == nil {
		return nil, errors.New("join: no content store")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	x, err := exchange.New(exchange.Config{
		Store: cfg.Store, Identity: key, ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, Logger: log,
	})
	if err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	g, err := gossip.New(gossip.Config{
		Identity: key, Hostname: cfg.Hostname, Site: cfg.Site, BindAddr: "127.0.0.1",
		Seeds: cfg.Seeds, Keys: cfg.Keys, Label: cfg.Label, JoinJitter: 10 * time.Millisecond,
		ProbeInterval: 200 * time.Millisecond, GossipInterval: 50 * time.Millisecond,
	}, log)
	if err != nil {
		_ = x.Close()
		return nil, fmt.Errorf("join: %w", err)
	}
	var addrs []string
	for _, a := range x.AddrInfo().Addrs {
		addrs = append(addrs, a.String())
	}
	if err := g.SetLocal(gossip.State{Addrs: addrs}); err != nil {
		_ = g.Close()
		_ = x.Close()
		return nil, fmt.Errorf("join: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	m := &Member{G: g, Node: x, cancel: cancel}
	m.wg.Go(func() { _ = g.Run(ctx) })
	m.wg.Go(func() {
		// Admit every member heard of that has not left. (The daemon admits
		// only live ones; this member dials whom it likes, and a probe
		// that times out on a loaded machine must not make it drop the
		// victim in the middle of a test.)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			var ids []peer.ID
			for _, mb := range g.Members() {
				if mb.Local || mb.Liveness == gossip.LivenessLeft {
					continue
				}
				if id, err := peer.Decode(mb.NodeID); err == nil {
					ids = append(ids, id)
				}
			}
			x.SetAllowed(ids)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	})
	return m, nil
}

// Find returns the exchange address of the member nodeID once gossip has
// told it.
func (m *Member) Find(nodeID string) (peer.AddrInfo, bool) {
	mb, ok := m.G.Member(nodeID)
	if !ok || len(mb.State.Addrs) == 0 || mb.Liveness != gossip.LivenessAlive {
		return peer.AddrInfo{}, false
	}
	id, err := peer.Decode(nodeID)
	if err != nil {
		return peer.AddrInfo{}, false
	}
	ai := peer.AddrInfo{ID: id}
	for _, s := range mb.State.Addrs {
		if a, err := multiaddr.NewMultiaddr(s); err == nil {
			ai.Addrs = append(ai.Addrs, a)
		}
	}
	return ai, len(ai.Addrs) > 0
}

// Close leaves the pool and stops the node.
func (m *Member) Close() error {
	m.cancel()
	m.wg.Wait()
	err := m.G.Close()
	return errors.Join(err, m.Node.Close())
}
