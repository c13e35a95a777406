// Package reporter is the agent's side of the fleet console: every node
// signs its own records (console/report, with its node key) into an
// outbox, and the site's reporter, chosen by rendezvous over the live
// credentialed members of the site (p2p/site, as for WAN fetches), collects
// every member's outbox and sends the records to the console named by the
// signed policy.
//
// The hand-off uses an existing channel: each node serves its outbox on
// the exchange's file protocol (/patchring/meta/1, the same allow-listed,
// credentialed peers that share TUF metadata) at the path
// "reports/since/N", which returns the node's records with a sequence
// number above N. The reporter asks with N = the highest sequence number
// the console confirmed for that node, and a node drops the records up to
// N when asked, so a node's records stay queued on the node itself until
// the console has them: a console outage, or the reporter leaving the
// site, loses nothing. A new reporter starts at N = 0; the console counts
// what it already has as duplicates.
package reporter

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/patchring/patchring/console/report"
	"github.com/patchring/patchring/internal/atomicfile"
)

// PathPrefix is the file path prefix under which a node serves its
// outbox: PathPrefix + decimal sequence number.
const PathPrefix = "reports/since/"

// MaxBatchBytes bounds one outbox answer; a reporter asks with it.
const MaxBatchBytes = 32 << 20

// Defaults of an Outbox.
const (
	DefaultMaxRecords = 256
	DefaultHeartbeat  = 24 * time.Hour
)

// Sample is a node's state now, as the daemon sees it. Outcomes are every
// outcome the node still knows (the outbox keeps only those newer than its
// previous record); bytes are running totals (the outbox sends the
// difference).
type Sample struct {
	Record          report.Record // Node, Seq, Time, digest, outcomes and bytes are set by the outbox
	Packages        []report.Package
	Outcomes        []report.Outcome
	BytesFromPeers  int64
	BytesFromOrigin int64
	// VulnsKnown: the node matched its packages against advisories, and
	// Vulns is its open exposure (sorted by ID and package); without it
	// the record says nothing about vulnerabilities.
	VulnsKnown bool
	Vulns      []report.Vuln
	// ReportsSite: this node is the site's reporter and Unmanaged is the
	// site's unmanaged devices (sorted by MAC); the reporter sets it.
	ReportsSite bool
	Unmanaged   []report.Device
}

// outboxState is what the outbox keeps on disk.
type outboxState struct {
	Seq         uint64            `json:"seq"`
	Fingerprint string            `json:"fingerprint"` // of the last record's state fields
	LastAt      time.Time         `json:"last_at"`
	LastOutcome time.Time         `json:"last_outcome"`
	Digest      string            `json:"digest"` // package list digest the console will know
	VulnsDigest string            `json:"vulns_digest,omitempty"`
	DevsDigest  string            `json:"unmanaged_digest,omitempty"`
	Peers       int64             `json:"peers"` // byte totals at the last record
	Origin      int64             `json:"origin"`
	Queue       []report.Envelope `json:"queue"`
	Seqs        []uint64          `json:"seqs"`
}

// Outbox holds this node's signed records until the console has them.
type Outbox struct {
	path       string
	key        ed25519.PrivateKey
	node       string
	credential func() []byte
	max        int
	heartbeat  time.Duration

	mu sync.Mutex
	st outboxState
}

// OutboxConfig configures an Outbox.
type OutboxConfig struct {
	Path       string // state file (JSON)
	Key        ed25519.PrivateKey
	Credential func() []byte // the node's fleet credential now (nil or empty: none)
	MaxRecords int           // records kept (default 256); beyond, the oldest go
	Heartbeat  time.Duration // an unchanged node still reports this often (default a day)
}

// OpenOutbox loads the outbox from cfg.Path, or starts an empty one.
func OpenOutbox(cfg OutboxConfig) (*Outbox, error) {
	o := &Outbox{path: cfg.Path, key: cfg.Key, node: report.NodeID(cfg.Key.Public().(ed25519.PublicKey)),
		credential: cfg.Credential, max: cfg.MaxRecords, heartbeat: cfg.Heartbeat}
	if o.max <= 0 {
		o.max = DefaultMaxRecords
	}
	if o.heartbeat <= 0 {
		o.heartbeat = DefaultHeartbeat
	}
	raw, err := os.ReadFile(cfg.Path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("open report outbox: %w", err)
	default:
		if err := json.Unmarshal(raw, &o.st); err != nil || len(o.st.Queue) != len(o.st.Seqs) {
			return nil, fmt.Errorf("open report outbox %s: damaged (%v): remove it to start afresh", cfg.Path, err)
		}
	}
	return o, nil
}

// Node is the outbox's node ID.
func (o *Outbox) Node() string { return o.node }

// fingerprint covers the fields whose change is worth a record (the
// lists by their digests).
func fingerprint(r report.Record, digest string) string {
	r.Node, r.Seq, r.Time, r.Outcomes, r.Packages, r.PackagesDigest = "", 0, time.Time{}, nil, nil, digest
	r.Vulns, r.Unmanaged = nil, nil
	r.BytesFromPeers, r.BytesFromOrigin = 0, 0
	b, _ := json.Marshal(r)
	return string(b)
}

// Add signs a record of s when something changed since the previous one
// (state, new outcomes, packages) or the heartbeat is due, and queues it.
// It reports whether it queued one.
func (o *Outbox) Add(s Sample, now time.Time) (bool, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	r := s.Record
	digest := report.DigestPackages(s.Packages)
	r.VulnsDigest, r.UnmanagedDigest = "", ""
	if s.VulnsKnown {
		r.VulnsDigest = report.DigestVulns(s.Vulns)
	}
	if s.ReportsSite {
		r.UnmanagedDigest = report.DigestDevices(s.Unmanaged)
	}
	fp := fingerprint(r, digest)
	var outs []report.Outcome
	last := o.st.LastOutcome
	for _, oc := range s.Outcomes {
		if oc.At.After(o.st.LastOutcome) {
			outs = append(outs, oc)
			last = maxTime(last, oc.At)
		}
	}
	if len(outs) > report.MaxOutcomes {
		outs = outs[len(outs)-report.MaxOutcomes:]
	}
	if fp == o.st.Fingerprint && len(outs) == 0 && now.Sub(o.st.LastAt) < o.heartbeat {
		return false, nil
	}
	r.Node, r.Seq, r.Time, r.Outcomes = o.node, o.st.Seq+1, now, outs
	r.PackagesDigest = digest
	if digest != o.st.Digest {
		r.Packages = s.Packages
	}
	// Lists go only when they changed; an empty one is said by its
	// digest alone.
	r.Vulns, r.Unmanaged = nil, nil
	if r.VulnsDigest != "" && r.VulnsDigest != o.st.VulnsDigest {
		r.Vulns = s.Vulns
	}
	if r.UnmanagedDigest != "" && r.UnmanagedDigest != o.st.DevsDigest {
		r.Unmanaged = s.Unmanaged
	}
	r.BytesFromPeers, r.BytesFromOrigin = since(s.BytesFromPeers, o.st.Peers), since(s.BytesFromOrigin, o.st.Origin)
	env, err := report.Sign(r, o.key)
	if err != nil {
		return false, fmt.Errorf("report: %w", err)
	}
	next := o.st
	next.Seq, next.Fingerprint, next.LastAt, next.LastOutcome, next.Digest = r.Seq, fp, now, last, digest
	next.VulnsDigest, next.DevsDigest = r.VulnsDigest, r.UnmanagedDigest
	next.Peers, next.Origin = s.BytesFromPeers, s.BytesFromOrigin
	next.Queue = append(append([]report.Envelope(nil), o.st.Queue...), env)
	next.Seqs = append(append([]uint64(nil), o.st.Seqs...), r.Seq)
	if over := len(next.Queue) - o.max; over > 0 {
		// The oldest go. If one of them carried the package list, the
		// console may never see it: send it again with the next record.
		next.Queue, next.Seqs = next.Queue[over:], next.Seqs[over:]
		next.Digest, next.VulnsDigest, next.DevsDigest = "", "", ""
	}
	if err := o.save(next); err != nil {
		return false, err
	}
	o.st = next
	return true, nil
}

// since is a running total's growth; a total below the last one was
// restarted (the agent restarted), so all of it is new.
func since(total, last int64) int64 {
	if total < last {
		return max(total, 0)
	}
	return total - last
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func (o *Outbox) save(st outboxState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("save report outbox: %w", err)
	}
	if err := atomicfile.WriteFile(o.path, b, 0o600); err != nil {
		return fmt.Errorf("save report outbox: %w", err)
	}
	return nil
}

// Since drops the records up to after (the console has them) and returns
// the rest, each with the node's current credential attached.
func (o *Outbox) Since(after uint64) ([]report.Envelope, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	i := 0
	for i < len(o.st.Seqs) && o.st.Seqs[i] <= after {
		i++
	}
	if i > 0 {
		next := o.st
		next.Queue, next.Seqs = append([]report.Envelope(nil), o.st.Queue[i:]...), append([]uint64(nil), o.st.Seqs[i:]...)
		if err := o.save(next); err != nil {
			return nil, err
		}
		o.st = next
	}
	var cred []byte
	if o.credential != nil {
		cred = o.credential()
	}
	out := make([]report.Envelope, len(o.st.Queue))
	for j, e := range o.st.Queue {
		e.Credential = cred
		out[j] = e
	}
	return out, nil
}

// Len is the number of queued records.
func (o *Outbox) Len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.st.Queue)
}

// OpenFile serves the outbox on the exchange's file protocol: path
// PathPrefix+N answers the records above N as a JSON array of envelopes.
// Other paths are not its (the caller routes by prefix).
func (o *Outbox) OpenFile(_ context.Context, path string) (io.ReadCloser, int64, error) {
	n, err := ParsePath(path)
	if err != nil {
		return nil, 0, err
	}
	envs, err := o.Since(n)
	if err != nil {
		return nil, 0, err
	}
	b, err := json.Marshal(envs)
	if err != nil {
		return nil, 0, fmt.Errorf("serve reports: %w", err)
	}
	return io.NopCloser(strings.NewReader(string(b))), int64(len(b)), nil
}

// ParsePath reads N from PathPrefix+N.
func ParsePath(path string) (uint64, error) {
	s, ok := strings.CutPrefix(path, PathPrefix)
	if !ok {
		return 0, fmt.Errorf("report path %q: not under %s", path, PathPrefix)
	}
	n, err := strconv.ParseUint(s, 10, 63)
	if err != nil || strconv.FormatUint(n, 10) != s {
		return 0, fmt.Errorf("report path %q: want %sN with N a decimal sequence number", path, PathPrefix)
	}
	return n, nil
}

// ParseBatch decodes an outbox answer from a peer (untrusted: the console
// verifies every record; this only bounds and shapes it).
func ParseBatch(b []byte) ([]report.Envelope, error) {
	if len(b) > MaxBatchBytes {
		return nil, fmt.Errorf("report batch of %d bytes (at most %d)", len(b), MaxBatchBytes)
	}
	var envs []report.Envelope
	if err := json.Unmarshal(b, &envs); err != nil {
		return nil, fmt.Errorf("report batch: %w", err)
	}
	if len(envs) > 4*DefaultMaxRecords {
		return nil, fmt.Errorf("report batch of %d records", len(envs))
	}
	return envs, nil
}
