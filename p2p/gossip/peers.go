package gossip

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/patchring/patchring/internal/atomicfile"
)

// Limits of Config.PeersFile.
const (
	// maxPeersKept bounds the addresses the file keeps (the same bound as
	// the discovered candidates AddSeeds remembers).
	maxPeersKept = maxDiscovered
	// maxPeersFileLen bounds what is read back: 64 addresses of at most
	// 47 bytes ("[v6]:port") and their newlines fit with room to spare.
	maxPeersFileLen = 8 << 10
	// peersWriteEvery is how often the file is brought up to date while
	// the members change.
	peersWriteEvery = 10 * time.Second
	// peersKeepDead is how long a member declared dead is still offered
	// as a seed at the next start.
	peersKeepDead = time.Hour
)

// loadPeers offers the addresses in Config.PeersFile as seeds. A missing
// file is the first start; a damaged one is logged and ignored (the file
// holds hints, memberlist's keyring decides who joins).
func (g *Gossip) loadPeers() {
	if g.cfg.PeersFile == "" {
		return
	}
	addrs, err := readPeersFile(g.cfg.PeersFile)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			g.log.Warn("gossip: last known members not read", "err", err)
		}
		return
	}
	if len(addrs) > 0 {
		g.log.Info("gossip: rejoining the last known members", "count", len(addrs), "file", g.cfg.PeersFile)
		g.AddSeeds(addrs...)
	}
}

func readPeersFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read gossip peers file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxPeersFileLen+1))
	if err != nil {
		return nil, fmt.Errorf("read gossip peers file %s: %w", path, err)
	}
	if len(data) > maxPeersFileLen {
		return nil, fmt.Errorf("read gossip peers file %s: more than %d bytes", path, maxPeersFileLen)
	}
	var out []string
	for line := range strings.Lines(string(data)) {
		if a := strings.TrimSpace(line); a != "" && !strings.HasPrefix(a, "#") && len(out) < maxPeersKept {
			out = append(out, a)
		}
	}
	return out, nil
}

// livePeerAddrs returns the gossip addresses of the other members worth
// rejoining (not only the live ones, despite the name): the live ones first, then those declared dead within
// peersKeepDead, newest death first (a member rebooting, or one declared
// dead by a loaded pool and about to refute it, is back soon; one that
// left cleanly is not kept). At most maxPeersKept, sorted.
func (g *Gossip) livePeerAddrs() []string {
	g.mu.Lock()
	now := time.Now()
	var alive []string
	type death struct {
		addr string
		at   time.Time
	}
	var dead []death
	for name, m := range g.members {
		if name == g.name || !m.known || m.addr == "" {
			continue
		}
		switch {
		case m.liveness == LivenessAlive:
			alive = append(alive, m.addr)
		case m.liveness == LivenessDead && now.Sub(m.changed) < peersKeepDead:
			dead = append(dead, death{m.addr, m.changed})
		}
	}
	g.mu.Unlock()
	slices.SortFunc(dead, func(a, b death) int { return b.at.Compare(a.at) })
	out := alive
	for _, d := range dead {
		if !slices.Contains(out, d.addr) {
			out = append(out, d.addr)
		}
	}
	out = out[:min(len(out), maxPeersKept)]
	slices.Sort(out)
	return out
}

// savePeers writes the live members' addresses to Config.PeersFile when
// they differ from what the file holds (last). An empty set is not
// written: a node alone keeps the members it knew.
func (g *Gossip) savePeers(last *[]byte) {
	addrs := g.livePeerAddrs()
	if len(addrs) == 0 {
		return
	}
	var b bytes.Buffer
	b.WriteString("# gossip members this node last saw alive or declared dead within the hour; offered as seeds at start\n")
	for _, a := range addrs {
		b.WriteString(a + "\n")
	}
	if bytes.Equal(b.Bytes(), *last) {
		return
	}
	if err := atomicfile.WriteFile(g.cfg.PeersFile, b.Bytes(), 0o600); err != nil {
		g.log.Warn("gossip: last known members not saved", "err", err)
		return
	}
	*last = b.Bytes()
}

// peersLoop keeps Config.PeersFile up to date while Run runs, and once
// more as it ends (before the leave, while the members are still alive).
func (g *Gossip) peersLoop(ctx context.Context) {
	if g.cfg.PeersFile == "" {
		return
	}
	last, _ := os.ReadFile(g.cfg.PeersFile)
	t := time.NewTicker(peersWriteEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			last = nil // written at the stop whatever it holds now
			g.savePeers(&last)
			return
		case <-t.C:
			g.savePeers(&last)
		}
	}
}
