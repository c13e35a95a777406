package site

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"
)

// Fetcher does the actual transfers for the Coordinator.
type Fetcher interface {
	// FromOrigin fetches the payload over the WAN (resuming whatever is
	// already in the download area; peers that hold pieces may still be
	// used).
	FromOrigin(ctx context.Context) error
	// FromPeers fetches the payload from the given members that hold it
	// wholly or partly. It must return an error when they stop making
	// progress (e.g. exchange.ErrStalled) so that the Coordinator can decide
	// again.
	FromPeers(ctx context.Context, holders []string) error
}

// Via says how a payload was obtained.
type Via int

// Outcomes of Obtain.
const (
	// ViaOrigin: this node was the site's WAN fetcher.
	ViaOrigin Via = iota + 1
	// ViaPeers: fetched from members of the site.
	ViaPeers
	// ViaOriginFallback: not the WAN fetcher, but nothing arrived on the
	// LAN within WaitTimeout.
	ViaOriginFallback
)

func (v Via) String() string {
	switch v {
	case ViaOrigin:
		return "origin"
	case ViaPeers:
		return "peers"
	case ViaOriginFallback:
		return "origin-fallback"
	}
	return fmt.Sprintf("Via(%d)", int(v))
}

// Config configures a Coordinator.
type Config struct {
	// Self is this node's ID.
	Self string
	// Members returns the live members of this node's site (self may be
	// missing; it is always counted).
	Members func() []Member
	// Holders returns the members known (from gossip) to hold the payload
	// key, wholly or partly.
	Holders func(key string) []string
	// Poll is how often a waiting node looks again; default 1 s.
	Poll time.Duration
	// WaitTimeout is how long the second node in rendezvous order waits
	// for the payload to appear on the LAN before it fetches from the origin
	// itself; default 2 minutes. The node at rank r waits
	// WaitTimeout + (r-1)*Stagger, so that a hung fetcher is replaced by
	// one node, not by the whole site at once.
	WaitTimeout time.Duration
	// Stagger defaults to WaitTimeout/2.
	Stagger time.Duration
	// Progress, if set, makes the wait follow the fetcher: it returns how
	// far member id has announced getting (e.g. how many of the files
	// this node holds it now announces too). Each time the fetcher's
	// figure grows, a waiting node's patience starts again, so a fetcher
	// that is slow but working its way towards the key is waited for,
	// and one that shows nothing new for WaitTimeout is not. Nil: the
	// patience counts from the start alone.
	Progress func(id string) int
	// MaxWait caps the wait that Progress extends, counted from the
	// start (plus Stagger per rank below the second, as WaitTimeout);
	// default 4*WaitTimeout. Unused without Progress.
	MaxWait time.Duration
	// Logger; nil logs nothing.
	Logger *slog.Logger
}

// Coordinator decides, per payload, whether this node fetches it over the
// WAN or from its site's peers.
type Coordinator struct {
	cfg Config
	log *slog.Logger
}

// New returns a Coordinator.
func New(cfg Config) (*Coordinator, error) {
	if cfg.Self == "" || cfg.Members == nil || cfg.Holders == nil {
		return nil, errors.New("new site coordinator: Self, Members and Holders are required")
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.WaitTimeout <= 0 {
		cfg.WaitTimeout = 2 * time.Minute
	}
	if cfg.Stagger <= 0 {
		cfg.Stagger = cfg.WaitTimeout / 2
	}
	if cfg.MaxWait < cfg.WaitTimeout {
		cfg.MaxWait = 4 * cfg.WaitTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Coordinator{cfg: cfg, log: log}, nil
}

// Fetcher returns the WAN fetcher for key among the current live members.
func (c *Coordinator) Fetcher(key string) string {
	m, _ := Choose(key, c.members())
	return m.ID
}

// rank returns this node's position for key (0: the WAN fetcher) and the
// fetcher's ID.
func (c *Coordinator) rank(key string) (int, string) {
	r := Rank(key, c.members())
	return slices.IndexFunc(r, func(m Member) bool { return m.ID == c.cfg.Self }), r[0].ID
}

// IsFetcher reports whether this node is the WAN fetcher for key.
func (c *Coordinator) IsFetcher(key string) bool { return c.Fetcher(key) == c.cfg.Self }

func (c *Coordinator) members() []Member {
	ms := c.cfg.Members()
	if !slices.ContainsFunc(ms, func(m Member) bool { return m.ID == c.cfg.Self }) {
		ms = append(slices.Clip(ms), Member{ID: c.cfg.Self})
	}
	return ms
}

// Obtain gets payload key into this node's store:
//   - if members already hold it, from them (LAN first, even for the WAN
//     fetcher);
//   - else, if this node ranks first for key among the live members, from
//     the origin;
//   - else it waits, polling, for a member to hold it; after WaitTimeout
//     (plus Stagger per rank below the second) it fetches from the origin
//     itself. With Config.Progress, WaitTimeout counts from the fetcher's
//     latest progress instead of the start, up to MaxWait.
//
// When the fetcher leaves the member list, the next member in rendezvous
// order sees itself first and takes over, and the others' patience starts
// again: they give the new fetcher WaitTimeout too (members hold pieces of
// the dead fetcher's download; the new one continues from them, and a
// member falling back to the origin then would fetch them again). Obtain returns when the payload
// is obtained or ctx ends; failures of single attempts are retried.
func (c *Coordinator) Obtain(ctx context.Context, key string, f Fetcher) (Via, error) {
	start := time.Now()
	log := c.log.With("payload", key)
	// progressAt is the fetcher's latest progress (the start until it
	// makes some): the patience counts from it, the cap from start.
	progressAt := start
	var lastErr error
	var lastFetcher string
	lastProgress := -1 // the fetcher's figure; -1: not read yet
	// noteFetcher restarts the patience when the WAN fetcher changed, and
	// when it made progress.
	noteFetcher := func(fetcher string) {
		if lastFetcher != "" && fetcher != lastFetcher {
			log.Info("site: the WAN fetcher changed", "was", lastFetcher, "now", fetcher)
			start, progressAt, lastProgress = time.Now(), time.Now(), -1
		}
		lastFetcher = fetcher
		if c.cfg.Progress == nil || fetcher == c.cfg.Self {
			return
		}
		if p := c.cfg.Progress(fetcher); p != lastProgress {
			if lastProgress >= 0 && p > lastProgress {
				progressAt = time.Now()
			}
			lastProgress = p
		}
	}
	for {
		if err := ctx.Err(); err != nil {
			if lastErr != nil {
				return 0, fmt.Errorf("obtain %s: %w (last attempt: %v)", key, err, lastErr)
			}
			return 0, fmt.Errorf("obtain %s: %w", key, err)
		}
		holders := slices.DeleteFunc(slices.Clone(c.cfg.Holders(key)), func(id string) bool { return id == c.cfg.Self })
		if len(holders) > 0 {
			// Whom the site waits for while this node fetches from peers
			// (it may be one of them, with a partial download).
			_, fetcher := c.rank(key)
			noteFetcher(fetcher)
			err := f.FromPeers(ctx, holders)
			if err == nil {
				return ViaPeers, nil
			}
			lastErr = err
			log.Info("site: fetch from peers failed", "holders", len(holders), "err", err)
		}
		if ctx.Err() == nil {
			rank, fetcher := c.rank(key)
			noteFetcher(fetcher)
			waited, idle := time.Since(start), time.Since(progressAt)
			stagger := time.Duration(max(rank-1, 0)) * c.cfg.Stagger
			gaveUp := idle >= c.cfg.WaitTimeout+stagger
			if c.cfg.Progress != nil && waited >= c.cfg.MaxWait+stagger {
				gaveUp = true
			}
			if rank == 0 || gaveUp {
				via := ViaOrigin
				if rank != 0 {
					via = ViaOriginFallback
					log.Info("site: nothing on the LAN in time, fetching from origin", "waited", waited, "fetcher_idle", idle, "fetcher", fetcher)
				}
				err := f.FromOrigin(ctx)
				if err == nil {
					return via, nil
				}
				lastErr = err
				log.Warn("site: fetch from origin failed", "err", err)
			}
		}
		t := time.NewTimer(c.cfg.Poll)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
}
