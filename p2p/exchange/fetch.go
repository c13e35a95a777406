package exchange

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/patchring/patchring/p2p/content"
)

// OriginFunc opens the payload at the origin from byte offset off to its end,
// e.g. an HTTP GET with "Range: bytes=off-". The origin is a source like any
// other: its bytes are verified against the signed hash before they count.
type OriginFunc func(ctx context.Context, off int64) (io.ReadCloser, error)

// FetchOptions tune one Fetch. The zero value fetches from the given peers
// only, in pieces of DefaultPieceSize.
type FetchOptions struct {
	// PieceSize overrides DefaultPieceSize. Every node of a swarm must use
	// the same piece size to share partial downloads.
	PieceSize int64
	// Origin, if set, is used when no peer holds the payload, when peers make
	// no progress for OriginDelay, or from the start with OriginFirst; in
	// every case only for pieces no usable peer session holds.
	Origin      OriginFunc
	OriginFirst bool
	// OriginDelay defaults to 10 s.
	OriginDelay time.Duration
	// MorePeers, if set, is polled for more candidate peers during the
	// download (e.g. members that gossip they now hold the payload).
	MorePeers func() []peer.AddrInfo
	// MaxPeers caps concurrent peer sessions; default 8.
	MaxPeers int
	// StallTimeout ends the download with ErrStalled when no piece was
	// accepted for that long; default 30 s. The partial download is kept.
	StallTimeout time.Duration
}

// Timing are the per-request limits of the downloader.
type Timing struct {
	// RequestTimeout bounds a have or manifest round trip; default 10 s.
	RequestTimeout time.Duration
	// PieceGrace plus the piece length at MinRate bound one piece transfer:
	// a peer that trickles wastes at most that much time. Defaults 2 s and
	// 256 KiB/s (6 s for a 1 MiB piece).
	PieceGrace time.Duration
	MinRate    int64
	// PollInterval bounds how long an idle session waits for news: a peer
	// holds its have-wait request at most that long (it answers at once
	// when it gets a piece the session needs), and a session whose peer
	// holds everything looks at the download again at least that often.
	// Default 250 ms.
	PollInterval time.Duration
	// RotateAfter ends a session whose peer had nothing we need for that
	// long while other candidates wait; default 2 s.
	RotateAfter time.Duration
}

func (t Timing) withDefaults() Timing {
	if t.RequestTimeout <= 0 {
		t.RequestTimeout = 10 * time.Second
	}
	if t.PieceGrace <= 0 {
		t.PieceGrace = 2 * time.Second
	}
	if t.MinRate <= 0 {
		t.MinRate = 256 << 10
	}
	if t.PollInterval <= 0 {
		t.PollInterval = 250 * time.Millisecond
	}
	if t.RotateAfter <= 0 {
		t.RotateAfter = 2 * time.Second
	}
	return t
}

func (t Timing) pieceTimeout(n int64) time.Duration {
	return t.PieceGrace + time.Duration(float64(n)/float64(t.MinRate)*float64(time.Second))
}

// Errors a Fetch may end with (wrapped).
var (
	// ErrStalled: no source delivered a piece for StallTimeout. The partial
	// download is kept and a later Fetch resumes it.
	ErrStalled = errors.New("download stalled")
	// ErrNoSource: no peer and no origin to fetch from.
	ErrNoSource = errors.New("no source for payload")
)

// DefaultPieceSize returns the piece size for a payload: 256 KiB, doubled
// (up to 1 MiB) while a payload would have more than 8192 pieces, halved for
// small payloads so that they still have about 256 pieces, but not below
// 64 KiB. Small pieces become shareable soon after they started to arrive
// (a 256 KiB piece takes 65 ms at 4 MB/s), which is what keeps every node's
// upload busy while a payload spreads; a bad peer wastes at most one of
// them. (24 nodes on 10 Mbit/s links spread 16 MiB in 1.22-1.24 x the
// seed's upload time with 256 pieces, 1.37 x with 128: docs/P2P.md.) Nodes
// of one site that differ in this choice (during an upgrade) still share: a
// whole copy is hashed in the other geometry on request.
//
// Beyond 128 GiB it doubles further, so that no payload has more than
// MaxPieces pieces: peers refuse a geometry with more (CheckGeometry).
func DefaultPieceSize(size int64) int64 {
	ps := int64(256 << 10)
	for ps < 1<<20 && size/ps > 8192 {
		ps *= 2
	}
	for ps > MinPieceSize && size/ps < 256 {
		ps /= 2
	}
	for ps < MaxPieceSize && (size+ps-1)/ps > MaxPieces {
		ps *= 2
	}
	return ps
}

// Pseudo peer IDs for sources that are not peers. Real peer IDs are
// multihashes and never start with a zero byte.
const (
	sourceOrigin peer.ID = "\x00origin"
	sourceLocal  peer.ID = "\x00local" // accepted before a restart
)

// maxVerifyRounds bounds how often a download that fails its final hash is
// repaired before it is given up.
const maxVerifyRounds = 3

// maxDialing caps the sessions of one download that are connecting at once.
// Candidates are dialled in the caller's order (holders first), so when a
// whole site starts at the same moment, the holders' handshakes are not
// queued behind those of peers that hold nothing yet.
const maxDialing = 2

// dialFunc opens a session stream to a peer.
type dialFunc func(ctx context.Context, ai peer.AddrInfo) (io.ReadWriteCloser, error)

// fetcher holds what downloads share.
type fetcher struct {
	self      peer.ID
	store     *content.Store
	dial      dialFunc
	sb        *scoreboard
	wan       *Limiter
	manifests *manifestCache
	seeding   *seedTracker // the server's, told which payloads came from peers
	timing    Timing
	log       *slog.Logger
}

type pieceState uint8

const (
	pieceMissing pieceState = iota
	pieceInflight
	pieceAccepted
)

type verdict int

const (
	verdictAccept   verdict = iota
	verdictLiar             // the piece contradicts its sender's own manifest
	verdictDisputed         // more peers vouch for another hash
)

// judge decides on a piece of sum received from p, given every peer's
// manifest (nil: none known; zero entries: no claim).
func judge(i int, sum content.Hash, p peer.ID, claims map[peer.ID][]content.Hash) verdict {
	if own := claims[p]; own != nil && !own[i].IsZero() && own[i] != sum {
		return verdictLiar
	}
	votes := map[content.Hash]int{}
	for _, c := range claims {
		if c != nil && !c[i].IsZero() {
			votes[c[i]]++
		}
	}
	for v, n := range votes {
		if v != sum && n > votes[sum] {
			return verdictDisputed
		}
	}
	return verdictAccept
}

type download struct {
	f    *fetcher
	w    *content.Writer
	h    content.Hash
	size int64
	n    int
	opts FetchOptions
	log  *slog.Logger

	mu           sync.Mutex
	state        []pieceState
	source       []peer.ID
	sums         []content.Hash
	exclude      []map[peer.ID]bool
	served       []map[peer.ID]content.Hash
	haves        map[peer.ID][]bool // per active session; nil: none
	full         map[peer.ID]bool
	waiting      int // candidates without a session
	claims       map[peer.ID][]content.Hash
	asked        map[peer.ID]bool // manifest requested (and possibly refused)
	active       map[peer.ID]bool
	dialing      int                   // sessions connecting
	ended        map[peer.ID]time.Time // when a session to the peer last ended
	dropped      map[peer.ID]bool      // ended for cause: not retried in this download
	accepted     int
	lastProgress time.Time
	started      time.Time // when Fetch began (originGrace)
	originOn     bool
	originErr    error
	forceOrigin  bool
	fatal        error
	rounds       int
	wake         chan struct{}
	rng          *rand.Rand
}

func (f *fetcher) fetch(ctx context.Context, h content.Hash, size int64, peers []peer.AddrInfo, opts FetchOptions) (err error) {
	if f.store.Has(h) {
		return nil
	}
	if size < 0 || size > MaxPayloadSize {
		return fmt.Errorf("fetch %s: size %d out of range", h, size)
	}
	if opts.PieceSize == 0 {
		opts.PieceSize = DefaultPieceSize(size)
	}
	if err := CheckGeometry(size, opts.PieceSize); err != nil {
		return fmt.Errorf("fetch %s: %w", h, err)
	}
	if opts.OriginDelay <= 0 {
		opts.OriginDelay = 10 * time.Second
	}
	if opts.MaxPeers <= 0 {
		opts.MaxPeers = 8
	}
	if opts.StallTimeout <= 0 {
		opts.StallTimeout = 30 * time.Second
	}
	w, err := f.store.Writer(h, size, opts.PieceSize)
	if errors.Is(err, content.ErrExists) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("fetch %s: %w", h, err)
	}
	d := &download{
		f: f, w: w, h: h, size: size, n: w.NumPieces(), opts: opts,
		log:          f.log.With("hash", h.String()),
		state:        make([]pieceState, w.NumPieces()),
		source:       make([]peer.ID, w.NumPieces()),
		sums:         w.PieceSums(),
		exclude:      make([]map[peer.ID]bool, w.NumPieces()),
		served:       make([]map[peer.ID]content.Hash, w.NumPieces()),
		haves:        map[peer.ID][]bool{},
		full:         map[peer.ID]bool{},
		claims:       map[peer.ID][]content.Hash{},
		asked:        map[peer.ID]bool{},
		active:       map[peer.ID]bool{},
		ended:        map[peer.ID]time.Time{},
		dropped:      map[peer.ID]bool{},
		lastProgress: time.Now(),
		started:      time.Now(),
		wake:         make(chan struct{}),
		rng:          rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
	}
	for i := range d.n {
		if w.Accepted(i) {
			d.state[i] = pieceAccepted
			d.source[i] = sourceLocal
			d.accepted++
		}
	}
	if d.accepted > 0 {
		d.log.Info("exchange: resuming download", "pieces", d.accepted, "of", d.n)
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { d.hashAhead(ctx) })
	err = d.run(ctx, &wg, peers)
	cancel()
	wg.Wait()
	switch {
	case err == nil:
		d.blameAfterSuccess()
		f.manifests.put(h, opts.PieceSize, d.sums)
		if d.fromPeers() {
			f.seeding.markSpread(h, size, opts.PieceSize)
		}
		return nil
	case errors.Is(err, content.ErrVerify):
		_ = w.Abort()
	default:
		if cerr := w.Close(); cerr != nil {
			d.log.Warn("exchange: cannot keep partial download", "err", cerr)
		}
	}
	return fmt.Errorf("fetch %s: %w", h, err)
}

// notifyLocked wakes everyone waiting for a change of the download state.
func (d *download) notifyLocked() {
	close(d.wake)
	d.wake = make(chan struct{})
}

func (d *download) wakeCh() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.wake
}

func (d *download) run(ctx context.Context, wg *sync.WaitGroup, peers []peer.AddrInfo) error {
	tick := time.NewTicker(d.f.timing.PollInterval)
	defer tick.Stop()
	lastCheckpoint := time.Now()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		d.mu.Lock()
		complete, fatal := d.accepted == d.n, d.fatal
		d.mu.Unlock()
		if fatal != nil {
			return fatal
		}
		if complete {
			err := d.w.Commit(ctx)
			if err == nil {
				return nil
			}
			if !errors.Is(err, content.ErrVerify) {
				return err
			}
			if !d.repair(err) || d.hopeless() {
				return err
			}
			continue
		}
		peers = d.startSessions(ctx, wg, peers)
		if err := d.maybeStartOrigin(ctx, wg); err != nil {
			if ctx.Err() != nil {
				return ctx.Err() // the sessions ended because we were cancelled
			}
			return err
		}
		d.mu.Lock()
		if idle := time.Since(d.lastProgress); idle > time.Second && d.log.Enabled(ctx, slog.LevelDebug) {
			d.logStateLocked(idle)
		}
		stalled := time.Since(d.lastProgress) > d.opts.StallTimeout
		oerr := d.originErr
		d.mu.Unlock()
		if stalled {
			if oerr != nil {
				return fmt.Errorf("%w: no piece for %v (origin: %v)", ErrStalled, d.opts.StallTimeout, oerr)
			}
			return fmt.Errorf("%w: no piece for %v", ErrStalled, d.opts.StallTimeout)
		}
		if time.Since(lastCheckpoint) > 2*time.Second {
			if err := d.w.Checkpoint(); err != nil {
				return err
			}
			lastCheckpoint = time.Now()
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		case <-d.wakeCh():
		}
	}
}

// hashAhead feeds the accepted prefix of the payload into its whole-file
// hash as pieces arrive, so that the final verification has little left to
// do when the last piece is in (a site finishing at once would otherwise
// hash every copy at the same moment).
func (d *download) hashAhead(ctx context.Context) {
	for {
		wake := d.wakeCh()
		if err := d.w.HashAhead(ctx); err != nil {
			if ctx.Err() == nil && !errors.Is(err, content.ErrClosed) {
				d.log.Debug("exchange: hashing ahead failed; the final check reads the file", "err", err)
			}
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-wake:
		}
	}
}

// startSessions opens sessions to candidate peers up to MaxPeers. It returns
// the candidate list, extended with MorePeers.
func (d *download) startSessions(ctx context.Context, wg *sync.WaitGroup, peers []peer.AddrInfo) []peer.AddrInfo {
	if d.opts.MorePeers != nil {
		for _, ai := range d.opts.MorePeers() {
			if !slices.ContainsFunc(peers, func(x peer.AddrInfo) bool { return x.ID == ai.ID }) {
				peers = append(peers, ai)
			}
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var cands []int
	for i, ai := range peers {
		if ai.ID == d.f.self || d.active[ai.ID] || d.dropped[ai.ID] || d.f.sb.avoided(ai.ID) {
			continue
		}
		cands = append(cands, i)
	}
	// Peers never tried first: the caller's first (its best source, e.g.
	// the node that brought the payload in), then the others in random
	// order; then those whose session ended longest ago. Random: every
	// node of a site gets the same list of holders from gossip, and taking
	// it in order would send the whole site to the first few while the
	// others' uploads sit idle.
	d.rng.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
	slices.SortStableFunc(cands, func(a, b int) int {
		if c := d.ended[peers[a].ID].Compare(d.ended[peers[b].ID]); c != 0 {
			return c
		}
		return cmp.Compare(min(a, 1), min(b, 1))
	})
	for _, i := range cands {
		if len(d.active) >= d.opts.MaxPeers || d.dialing >= maxDialing {
			break
		}
		ai := peers[i]
		d.active[ai.ID] = true
		d.dialing++
		wg.Go(func() { d.runSession(ctx, ai) })
	}
	d.waiting = 0
	for _, i := range cands {
		if !d.active[peers[i].ID] {
			d.waiting++
		}
	}
	return peers
}

func (d *download) maybeStartOrigin(ctx context.Context, wg *sync.WaitGroup) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.originOn {
		return nil
	}
	if d.opts.Origin == nil {
		if len(d.active) == 0 && d.waiting == 0 &&
			(d.opts.MorePeers == nil || time.Since(d.lastProgress) > d.f.timing.RequestTimeout) {
			return fmt.Errorf("%w: every peer failed or is avoided", ErrNoSource)
		}
		return nil
	}
	// Nobody has it: no session, or every peer answered that it holds
	// nothing (a partial holder, even with no piece yet, counts as having).
	nobody := true
	for p := range d.active {
		if h, answered := d.haves[p]; !answered || h != nil {
			nobody = false
			break
		}
	}
	if d.opts.OriginFirst || d.forceOrigin || nobody || time.Since(d.lastProgress) > d.opts.OriginDelay {
		d.originOn = true
		d.log.Debug("exchange: using origin", "first", d.opts.OriginFirst, "nopeer", nobody)
		wg.Go(func() { d.runOrigin(ctx) })
	}
	return nil
}

func (d *download) pieceRange(i int) (int64, int64) { return d.w.PieceRange(i) }

// pickLocked chooses the rarest missing piece p can serve, at random among
// equals, and marks it in flight; -1 if none.
func (d *download) pickLocked(p peer.ID) int {
	have := d.haves[p]
	if have == nil {
		return -1
	}
	best, bestAvail, ties := -1, int(^uint(0)>>1), 0
	for i := range d.n {
		if d.state[i] != pieceMissing || !have[i] || d.exclude[i][p] {
			continue
		}
		if c := d.claims[p]; c != nil && !c[i].IsZero() && judge(i, c[i], p, d.claims) == verdictDisputed {
			continue // it would vouch for a hash others contradict
		}
		a := 0
		for q, h := range d.haves {
			if h != nil && h[i] && !d.exclude[i][q] {
				a++
			}
		}
		switch {
		case a < bestAvail:
			best, bestAvail, ties = i, a, 1
		case a == bestAvail:
			ties++
			if d.rng.IntN(ties) == 0 {
				best = i
			}
		}
	}
	if best >= 0 {
		d.state[best] = pieceInflight
	}
	return best
}

// originEligibleLocked: the origin takes a piece only if no usable peer
// session holds it (LAN first). OriginFirst starts the origin at once but
// does not change this: a WAN fetcher that takes over from a dead one gets
// the pieces the site already holds (announced partial downloads) from the
// LAN and only the rest across the WAN.
func (d *download) originEligibleLocked(i int) bool {
	if d.state[i] != pieceMissing || d.exclude[i][sourceOrigin] {
		return false
	}
	for q, h := range d.haves {
		if h != nil && h[i] && !d.exclude[i][q] {
			return false
		}
	}
	return true
}

// originGrace is how long, from the start of a download, the origin waits
// for the peer sessions being opened to say which pieces they hold.
const originGrace = 2 * time.Second

// awaitingHavesLocked reports whether the origin should wait: the download
// is younger than originGrace and a session to a holder has not answered
// yet. Without it a fetcher taking over a dead one's download (OriginFirst,
// the site holding the first half) read the first pieces across the WAN
// before the LAN sessions' answers came, and then dropped the rest of that
// response mid-flight when it reached a piece the site holds.
func (d *download) awaitingHavesLocked() bool {
	if time.Since(d.started) >= originGrace {
		return false
	}
	for p := range d.active {
		if _, answered := d.haves[p]; !answered {
			return true
		}
	}
	return false
}

func (d *download) releaseLocked(i int) {
	if d.state[i] == pieceInflight {
		d.state[i] = pieceMissing
		d.notifyLocked()
	}
}

func (d *download) release(i int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.releaseLocked(i)
}

func (d *download) acceptLocked(i int, src peer.ID, sum content.Hash) error {
	if err := d.w.Accept(i); err != nil {
		d.releaseLocked(i)
		return err
	}
	d.state[i] = pieceAccepted
	d.source[i] = src
	d.sums[i] = sum
	d.accepted++
	d.lastProgress = time.Now()
	d.notifyLocked()
	return nil
}

func (d *download) recordServedLocked(i int, p peer.ID, sum content.Hash) {
	if d.served[i] == nil {
		d.served[i] = map[peer.ID]content.Hash{}
	}
	d.served[i][p] = sum
}

func (d *download) excludeLocked(i int, p peer.ID) {
	if d.exclude[i] == nil {
		d.exclude[i] = map[peer.ID]bool{}
	}
	d.exclude[i][p] = true
}

func (d *download) setFatal(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fatal == nil {
		d.fatal = err
	}
	d.notifyLocked()
}

// endSession forgets a session; cause != nil drops the peer for the rest of
// this download.
func (d *download) endSession(p peer.ID, cause error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.active, p)
	delete(d.haves, p)
	d.ended[p] = time.Now()
	if cause != nil {
		d.dropped[p] = true
		d.log.Info("exchange: dropped peer", "peer", p, "err", cause)
	}
	d.notifyLocked()
}

// runSession downloads pieces from one peer until nothing is left to do, the
// peer misbehaves, or ctx ends.
func (d *download) runSession(ctx context.Context, ai peer.AddrInfo) {
	p := ai.ID
	t := d.f.timing
	conn, err := d.f.dial(ctx, ai)
	d.mu.Lock()
	d.dialing--
	d.notifyLocked()
	d.mu.Unlock()
	if err != nil {
		if ctx.Err() == nil {
			d.f.sb.punish(p, offenceFailure, err)
		}
		d.endSession(p, err)
		return
	}
	s := newSession(conn)
	defer s.close()
	var cause error
	defer func() { d.endSession(p, cause) }()
	fail := func(kind offence, err error) {
		if ctx.Err() != nil {
			return
		}
		d.f.sb.punish(p, kind, err)
		cause = err
	}
	isFull := false
	refresh := func(wait bool) error {
		var hv *HaveResponse
		var err error
		if wait {
			hv, err = s.haveWait(ctx, t.RequestTimeout, d.h, d.w.PieceSize(), d.size, t.PollInterval, d.need(p))
		} else {
			hv, err = s.have(ctx, t.RequestTimeout, d.h, d.w.PieceSize())
		}
		if err != nil {
			return err
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		switch hv.Status {
		case HaveNone:
			d.haves[p] = nil
			return nil
		case HaveFull, HavePartial:
			if hv.Size != d.size || hv.PieceSize != d.w.PieceSize() {
				return &badDataError{fmt.Errorf("peer claims size %d piece %d, signed size is %d", hv.Size, hv.PieceSize, d.size)}
			}
		}
		have := make([]bool, d.n)
		for i := range have {
			have[i] = hv.Status == HaveFull || hv.Bitmap[i/8]&(0x80>>(i%8)) != 0
		}
		isFull = hv.Status == HaveFull
		d.full[p] = isFull
		d.haves[p] = have
		d.notifyLocked()
		return nil
	}
	penalize := func(err error) {
		var bad *badDataError
		if errors.As(err, &bad) {
			fail(offenceBadData, err)
		} else {
			fail(offenceFailure, err)
		}
	}
	if err := refresh(false); err != nil {
		penalize(err)
		return
	}
	lastUseful := time.Now()
	for ctx.Err() == nil {
		d.mu.Lock()
		i := d.pickLocked(p)
		wake := d.wake
		done := d.accepted == d.n
		mayRotate := d.waiting > 0
		d.mu.Unlock()
		if i < 0 {
			if done {
				// Wait for the final verification; a repair wakes us.
				select {
				case <-ctx.Done():
				case <-wake:
				}
				continue
			}
			if mayRotate && time.Since(lastUseful) > t.RotateAfter {
				return // let another candidate have the slot
			}
			if isFull || s.v1 {
				// It holds everything (what we lack is in flight from
				// other sessions: wait for one of them to give up a
				// piece), or it cannot wait for news: poll.
				timer := time.NewTimer(jitter(t.PollInterval))
				select {
				case <-ctx.Done():
				case <-wake:
				case <-timer.C:
				}
				timer.Stop()
				if isFull {
					continue
				}
			}
			// A v2 peer answers as soon as it holds a piece we need.
			if err := refresh(!s.v1); err != nil {
				penalize(err)
				return
			}
			continue
		}
		lastUseful = time.Now()
		if err := d.ensureManifest(ctx, s, p, i); err != nil {
			d.release(i)
			var re *RemoteError
			if errors.As(err, &re) && re.Code == CodeBusy {
				// Hashing the payload for us takes an upload slot: ask
				// again in a moment, like a busy range.
				timer := time.NewTimer(jitter(t.PollInterval / 2))
				select {
				case <-ctx.Done():
				case <-timer.C:
				}
				timer.Stop()
				continue
			}
			penalize(err)
			return
		}
		_, n := d.pieceRange(i)
		began := time.Now()
		sum, err := s.readPiece(ctx, t.pieceTimeout(n), d.w, i)
		d.f.sb.addIn(p, s.in.Load())
		if took := time.Since(began); took > 500*time.Millisecond {
			d.log.Debug("exchange: slow piece", "peer", p, "piece", i, "took", took, "bytes", s.in.Load(), "err", err)
		}
		if err != nil {
			d.release(i)
			var re *RemoteError
			var le *localError
			switch {
			case ctx.Err() != nil:
				return
			case errors.As(err, &le):
				d.setFatal(le.err)
				return
			case errors.As(err, &re) && re.Code == CodeBusy:
				timer := time.NewTimer(jitter(t.PollInterval / 2))
				select {
				case <-ctx.Done():
				case <-timer.C:
				}
				timer.Stop()
				continue
			case errors.As(err, &re) && re.Code == CodeNotFound:
				if err := refresh(false); err != nil {
					penalize(err)
					return
				}
				continue
			default:
				fail(offenceFailure, fmt.Errorf("piece %d: %w", i, err))
				return
			}
		}
		d.mu.Lock()
		d.recordServedLocked(i, p, sum)
		v := judge(i, sum, p, d.claims)
		switch v {
		case verdictAccept:
			err = d.acceptLocked(i, p, sum)
		case verdictDisputed:
			d.excludeLocked(i, p)
			d.releaseLocked(i)
		case verdictLiar:
			delete(d.claims, p) // a proved liar's manifest carries no weight
			d.releaseLocked(i)
		}
		d.mu.Unlock()
		if err != nil {
			d.setFatal(err)
			return
		}
		if v == verdictLiar {
			fail(offenceBadData, fmt.Errorf("piece %d has sha256 %s, not what the peer's own manifest says", i, sum))
			return
		}
		if v == verdictDisputed {
			d.log.Debug("exchange: piece disputed", "peer", p, "piece", i)
		}
	}
}

// need returns the bitmap of the pieces a session to p could fetch: missing,
// not in flight, and p not excluded for them.
func (d *download) need(p peer.ID) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	bm := make([]byte, (d.n+7)/8)
	for i, st := range d.state {
		if st == pieceMissing && !d.exclude[i][p] {
			bm[i/8] |= 0x80 >> (i % 8)
		}
	}
	return bm
}

// fromPeers reports whether some accepted piece came from a peer, i.e. the
// payload is already spread through the swarm.
func (d *download) fromPeers() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, src := range d.source {
		if src != sourceOrigin && src != sourceLocal && src != "" {
			return true
		}
	}
	return false
}

// badDataError marks a protocol answer that is provably false.
type badDataError struct{ err error }

func (e *badDataError) Error() string { return e.err.Error() }
func (e *badDataError) Unwrap() error { return e.err }

// manifestKnownLocked reports whether piece i from p can be judged without
// asking p for its manifest (again): p was asked and refused, or vouches
// for i, or another peer's manifest does.
func (d *download) manifestKnownLocked(p peer.ID, i int) bool {
	if !d.asked[p] {
		return false
	}
	if d.claims[p] == nil {
		return true
	}
	for _, c := range d.claims {
		if !c[i].IsZero() {
			return true
		}
	}
	return false
}

// ensureManifest fetches p's manifest before its first piece, and again
// (for a partial holder) when it does not yet vouch for piece i and no
// other peer's manifest does: a piece some manifest vouches for can be
// judged without p's (a false one is disputed, and its sender blamed once
// the payload is verified), and asking a partial holder for its whole
// manifest before each of its pieces costs 32 bytes a piece each time.
func (d *download) ensureManifest(ctx context.Context, s *session, p peer.ID, i int) error {
	d.mu.Lock()
	known := d.manifestKnownLocked(p, i)
	d.mu.Unlock()
	if known {
		return nil
	}
	sums, err := s.manifest(ctx, d.f.timing.RequestTimeout, d.h, d.w.PieceSize(), d.n)
	var re *RemoteError
	if errors.As(err, &re) && re.Code == CodeNotFound {
		err, sums = nil, nil
	}
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.asked[p] = true
	if sums != nil {
		d.claims[p] = sums
	}
	return nil
}

// runOrigin streams missing pieces from the origin, consecutive pieces over
// one request, through the WAN limiter.
func (d *download) runOrigin(ctx context.Context) {
	backoff := time.Second
	for ctx.Err() == nil {
		d.mu.Lock()
		i := -1
		// While the holders' sessions have yet to answer, the wake or
		// the poll below looks again.
		if !d.awaitingHavesLocked() {
			for j := range d.n {
				if d.originEligibleLocked(j) {
					i = j
					d.state[j] = pieceInflight
					break
				}
			}
		}
		wake := d.wake
		d.mu.Unlock()
		if i < 0 {
			timer := time.NewTimer(d.f.timing.PollInterval)
			select {
			case <-ctx.Done():
			case <-wake:
			case <-timer.C:
			}
			timer.Stop()
			continue
		}
		off, _ := d.pieceRange(i)
		body, err := d.opts.Origin(ctx, off)
		if err != nil {
			d.mu.Lock()
			d.originErr = err
			d.releaseLocked(i)
			d.mu.Unlock()
			d.log.Warn("exchange: origin failed", "err", err, "retry_in", backoff)
			timer := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
			case <-timer.C:
			}
			timer.Stop()
			backoff = min(2*backoff, 30*time.Second)
			continue
		}
		backoff = time.Second
		d.originPieces(ctx, body, i)
		_ = body.Close()
	}
}

func (d *download) originPieces(ctx context.Context, body io.Reader, i int) {
	r := &limitedReader{ctx: ctx, r: body, pay: &meter{l: d.f.wan}, count: d.f.sb.addOrigin}
	defer func() { _ = r.pay.flush(ctx) }()
	for i >= 0 && i < d.n {
		sum, err := d.w.WritePiece(ctx, i, r)
		if err != nil {
			d.mu.Lock()
			d.releaseLocked(i)
			if ctx.Err() == nil {
				if errors.Is(err, content.ErrDiskFull) {
					d.mu.Unlock()
					d.setFatal(err)
					return
				}
				d.originErr = err
			}
			d.mu.Unlock()
			return
		}
		d.mu.Lock()
		d.recordServedLocked(i, sourceOrigin, sum)
		err = d.acceptLocked(i, sourceOrigin, sum)
		d.originErr = nil
		next := i + 1
		if next < d.n && d.originEligibleLocked(next) {
			d.state[next] = pieceInflight
		} else {
			next = -1
		}
		d.mu.Unlock()
		if err != nil {
			d.setFatal(err)
			return
		}
		i = next
	}
}

// limitedReader reads through a Limiter and counts bytes.
type limitedReader struct {
	ctx   context.Context
	r     io.Reader
	pay   *meter
	count func(int64)
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if len(p) > ioChunk {
		p = p[:ioChunk]
	}
	n, err := l.r.Read(p)
	if n > 0 {
		l.count(int64(n))
		if werr := l.pay.add(l.ctx, n); werr != nil && err == nil {
			err = werr
		}
	}
	return n, err
}

// repair handles a final hash mismatch: it resets the suspect pieces so that
// other sources fetch them. It returns false when the rounds are exhausted.
func (d *download) repair(verr error) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rounds++
	if d.rounds > maxVerifyRounds {
		return false
	}
	// Suspects: accepted pieces some peer's manifest contradicts.
	var suspects []int
	for i := range d.n {
		for q, c := range d.claims {
			if q != d.source[i] && c != nil && !c[i].IsZero() && c[i] != d.sums[i] {
				suspects = append(suspects, i)
				break
			}
		}
	}
	if len(suspects) == 0 {
		// Nobody contradicts anything: every source vouched for what it
		// sent, or sent no manifest. Fetch every piece again, from another
		// source than before.
		for i := range d.n {
			suspects = append(suspects, i)
		}
		d.forceOrigin = true
	}
	d.log.Warn("exchange: payload failed verification, refetching suspect pieces",
		"round", d.rounds, "suspects", len(suspects), "err", verr)
	for _, i := range suspects {
		d.excludeLocked(i, d.source[i])
		d.w.Reset(i)
		d.state[i] = pieceMissing
		d.accepted--
		d.sums[i] = content.Hash{}
		d.source[i] = ""
	}
	d.lastProgress = time.Now()
	d.notifyLocked()
	return true
}

// hopeless reports whether, after a repair, some missing piece has no
// possible source: no origin, no candidate peer waiting, and every session
// holding it excluded for it.
func (d *download) hopeless() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.opts.Origin != nil || d.opts.MorePeers != nil || d.waiting > 0 {
		return false
	}
	for i := range d.n {
		if d.state[i] != pieceMissing {
			continue
		}
		possible := false
		for q, h := range d.haves {
			if (h == nil || h[i]) && !d.exclude[i][q] {
				possible = true // a partial holder may still get it
				break
			}
		}
		if !possible {
			return true
		}
	}
	return false
}

// blameAfterSuccess runs once the payload verified: the accepted piece
// hashes are now known to be true, so any peer that served or vouched for a
// different hash is proved to have lied.
func (d *download) blameAfterSuccess() {
	d.mu.Lock()
	liars := map[peer.ID]error{}
	for i := range d.n {
		for q, sum := range d.served[i] {
			if sum != d.sums[i] && q != sourceOrigin {
				liars[q] = fmt.Errorf("served piece %d with sha256 %s; verified payload has %s", i, sum, d.sums[i])
			}
		}
		for q, c := range d.claims {
			if c != nil && !c[i].IsZero() && c[i] != d.sums[i] {
				liars[q] = fmt.Errorf("manifest says piece %d has sha256 %s; verified payload has %s", i, c[i], d.sums[i])
			}
		}
	}
	d.mu.Unlock()
	for q, err := range liars {
		d.log.Warn("exchange: peer proved to have sent bad data", "peer", q, "err", err)
		d.f.sb.punish(q, offenceBadData, err)
	}
}

// jitter spreads d over [d/2, 3d/2).
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d/2 + rand.N(d)
}

// logStateLocked logs why a download makes no progress (debug level).
func (d *download) logStateLocked(idle time.Duration) {
	missing, inflight := 0, 0
	for _, st := range d.state {
		switch st {
		case pieceMissing:
			missing++
		case pieceInflight:
			inflight++
		}
	}
	useful := 0
	for q, h := range d.haves {
		for i := range d.n {
			if h != nil && h[i] && d.state[i] == pieceMissing && !d.exclude[i][q] {
				useful++
				break
			}
		}
	}
	d.log.Debug("exchange: no progress", "idle", idle, "missing", missing, "inflight", inflight,
		"sessions", len(d.active), "useful_sessions", useful, "waiting_candidates", d.waiting)
}
