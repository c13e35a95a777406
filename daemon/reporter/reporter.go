package reporter

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/patchring/patchring/console/report"
	"github.com/patchring/patchring/p2p/site"
)

// RankKey is the rendezvous key that chooses the site's reporter.
const RankKey = "patchring/console-report"

// Defaults of a Reporter.
const (
	DefaultInterval = 15 * time.Minute
	// maxSend bounds the records of one ingest request (the console takes
	// at most 5,000).
	maxSend = 1000
)

// Console is where the site reports: from the signed policy.
type Console struct {
	URL string
	// Pin, when set, is the hex SHA-256 of the console certificate's
	// SubjectPublicKeyInfo; the connection is accepted on it alone.
	Pin string
}

// Config configures a Reporter.
type Config struct {
	Outbox *Outbox
	// Sample is this node's state now.
	Sample func(ctx context.Context) (Sample, error)
	// Members are the live, credentialed members of this node's site,
	// this node included.
	Members func() []string
	// Fetch asks a member for its records above after (exchange file
	// protocol, PathPrefix). It is not called for this node.
	Fetch func(ctx context.Context, member string, after uint64) ([]report.Envelope, error)
	// SiteDevices is the site's unmanaged devices as this node knows them
	// (false: this node has no discovery and says nothing about them); the
	// site's reporter carries them in its own record.
	SiteDevices func(ctx context.Context) ([]report.Device, bool)
	// Console is the console the signed policy names; false: none.
	Console func() (Console, bool)
	// Interval between rounds (default 15 minutes); each wait is drawn
	// from [Interval/2, Interval*3/2) so sites do not report in step.
	Interval time.Duration
	Log      *slog.Logger
	// Wait waits for d or ctx (nil: a timer); tests inject a clock.
	Wait func(ctx context.Context, d time.Duration) error
	Now  func() time.Time
}

// Reporter runs the node's part: sign its own records into the outbox
// and, while it is the site's reporter, send the site's records on.
type Reporter struct {
	cfg Config

	mu      sync.Mutex
	cursor  map[string]uint64 // per member: highest sequence the console confirmed
	leading bool
	stats   Stats
	client  *http.Client
	forCons Console // the console client was made for
}

// Stats are the reporter's counters.
type Stats struct {
	Rounds, Sent, Stored, Duplicate, Refused int
	Failures                                 int
	LastError                                string
	BytesSent                                int64
}

// New makes a reporter.
func New(cfg Config) *Reporter {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Wait == nil {
		cfg.Wait = func(ctx context.Context, d time.Duration) error {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return &Reporter{cfg: cfg, cursor: map[string]uint64{}}
}

// Name names the service.
func (r *Reporter) Name() string { return "reporter" }

// Stats returns a copy of the counters.
func (r *Reporter) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// Run reports until ctx ends.
func (r *Reporter) Run(ctx context.Context) error {
	// A send runs beside the sampling, one at a time: a console that
	// stops answering in the middle of a request (a WAN that went dark
	// under an open connection) holds a send for up to the client's
	// timeout, and this node's own records keep being queued meanwhile.
	var wg sync.WaitGroup
	defer wg.Wait()
	busy := make(chan struct{}, 1)
	for {
		c, send, err := r.sample(ctx)
		if err != nil && ctx.Err() == nil {
			r.cfg.Log.Warn("report round", "err", err)
		}
		if send {
			select {
			case busy <- struct{}{}:
				wg.Go(func() {
					defer func() { <-busy }()
					if err := r.send(ctx, c); err != nil && ctx.Err() == nil {
						r.cfg.Log.Warn("report round", "err", err)
					}
				})
			default: // the previous send is still running
			}
		}
		d := r.cfg.Interval/2 + rand.N(r.cfg.Interval)
		if err := r.cfg.Wait(ctx, d); err != nil {
			return nil
		}
	}
}

// IsReporter reports whether this node is its site's reporter now.
func (r *Reporter) IsReporter() bool {
	var ms []site.Member
	for _, id := range r.cfg.Members() {
		ms = append(ms, site.Member{ID: id})
	}
	m, ok := site.Choose(RankKey, ms)
	return ok && m.ID == r.cfg.Outbox.Node()
}

// Round samples this node into its outbox and, if this node is the site's
// reporter and the policy names a console, sends every member's records.
func (r *Reporter) Round(ctx context.Context) error {
	c, send, err := r.sample(ctx)
	if err != nil || !send {
		return err
	}
	return r.send(ctx, c)
}

// sample samples this node into its outbox and returns the console to
// send to when this node is the site's reporter and the policy names one.
func (r *Reporter) sample(ctx context.Context) (Console, bool, error) {
	lead := r.IsReporter()
	s, err := r.cfg.Sample(ctx)
	if err != nil {
		return Console{}, false, fmt.Errorf("report round: sample: %w", err)
	}
	if lead {
		r.addSite(ctx, &s)
	}
	if _, err := r.cfg.Outbox.Add(s, r.cfg.Now()); err != nil {
		return Console{}, false, fmt.Errorf("report round: %w", err)
	}
	r.mu.Lock()
	if lead != r.leading {
		r.cfg.Log.Info("site reporter", "this_node", lead)
		r.leading = lead
		if lead {
			// Taking over: what the previous reporter confirmed is not
			// known here; members send all they hold, the console counts
			// the known ones as duplicates.
			r.cursor = map[string]uint64{}
		}
	}
	r.stats.Rounds++
	r.mu.Unlock()
	if !lead {
		return Console{}, false, nil
	}
	c, ok := r.cfg.Console()
	return c, ok, nil
}

// Export is an offline site's way out: it samples this node into its
// outbox and collects every record the site's live members still hold
// (from the start of each outbox, whatever the console confirmed), for
// `patchring bundle export-reports`. The console counts records it already
// has as duplicates. A member that cannot be reached is named in the error;
// the records of the others are returned all the same.
func (r *Reporter) Export(ctx context.Context) ([]report.Envelope, error) {
	s, err := r.cfg.Sample(ctx)
	if err != nil {
		return nil, fmt.Errorf("export reports: sample: %w", err)
	}
	// The exporting node speaks for its site: the bundle is the site's
	// only way out.
	r.addSite(ctx, &s)
	if _, err := r.cfg.Outbox.Add(s, r.cfg.Now()); err != nil {
		return nil, fmt.Errorf("export reports: %w", err)
	}
	envs, errs := r.collect(ctx, func(string) uint64 { return 0 })
	if len(errs) > 0 {
		return envs, fmt.Errorf("export reports: %w", errors.Join(errs...))
	}
	return envs, nil
}

// LastSeenStep is the step a device's last sighting is rounded down to
// in the reporter's record: a device seen again every round changes the
// site's list (and sends it) at most once per step.
const LastSeenStep = 3 * time.Hour

// addSite puts the site's unmanaged devices into this node's sample,
// their last sighting rounded down to LastSeenStep (never before the
// first).
func (r *Reporter) addSite(ctx context.Context, s *Sample) {
	if r.cfg.SiteDevices == nil {
		return
	}
	devs, ok := r.cfg.SiteDevices(ctx)
	if !ok {
		return
	}
	out := make([]report.Device, len(devs))
	for i, d := range devs {
		d.LastSeen = d.LastSeen.UTC().Truncate(LastSeenStep)
		if d.LastSeen.Before(d.FirstSeen) {
			d.LastSeen = d.FirstSeen
		}
		out[i] = d
	}
	s.ReportsSite, s.Unmanaged = true, out
}

// collect gathers the members' records above after(member).
func (r *Reporter) collect(ctx context.Context, after func(member string) uint64) ([]report.Envelope, []error) {
	var batch []report.Envelope
	var errs []error
	for _, m := range r.cfg.Members() {
		var envs []report.Envelope
		var err error
		if m == r.cfg.Outbox.Node() {
			envs, err = r.cfg.Outbox.Since(after(m))
		} else if r.cfg.Fetch != nil {
			envs, err = r.cfg.Fetch(ctx, m, after(m))
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("collect from %s: %w", m, err))
			continue
		}
		batch = append(batch, envs...)
	}
	return batch, errs
}

func (r *Reporter) send(ctx context.Context, c Console) error {
	batch, errs := r.collect(ctx, func(m string) uint64 {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.cursor[m]
	})
	for len(batch) > 0 {
		n := min(len(batch), maxSend)
		if err := r.post(ctx, c, batch[:n]); err != nil {
			r.mu.Lock()
			r.stats.Failures++
			r.stats.LastError = err.Error()
			r.mu.Unlock()
			// Nothing is lost: the records stay in their nodes' outboxes
			// and the cursors did not move.
			return errors.Join(append(errs, err)...)
		}
		batch = batch[n:]
	}
	return errors.Join(errs...)
}

// IngestResult mirrors the console's answer (console/server), kept here
// so the agent does not link the console.
type ingestResponse struct {
	Results []struct {
		Node   string `json:"node"`
		Seq    uint64 `json:"seq"`
		Status string `json:"status"`
		Error  string `json:"error"`
	} `json:"results"`
}

func (r *Reporter) post(ctx context.Context, c Console, envs []report.Envelope) error {
	body, err := json.Marshal(struct {
		Records []report.Envelope `json:"records"`
	}{envs})
	if err != nil {
		return fmt.Errorf("send reports: %w", err)
	}
	r.mu.Lock()
	if r.client == nil || r.forCons != c {
		if r.client != nil {
			r.client.CloseIdleConnections()
		}
		cl, err := httpClient(c)
		if err != nil {
			r.mu.Unlock()
			return err
		}
		r.client, r.forCons = cl, c
	}
	client := r.client
	r.mu.Unlock()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(c.URL, "/")+"/api/v1/ingest", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("send reports to %s: %w", c.URL, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("send reports to %s: %w", c.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("send reports to %s: %s: %s", c.URL, resp.Status, bytes.TrimSpace(msg))
	}
	var out ingestResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&out); err != nil || len(out.Results) != len(envs) {
		return fmt.Errorf("send reports to %s: unreadable answer (%v, %d results for %d records)", c.URL, err, len(out.Results), len(envs))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stats.Sent += len(envs)
	r.stats.BytesSent += int64(len(body))
	for i, res := range out.Results {
		switch res.Status {
		case "stored":
			r.stats.Stored++
		case "duplicate":
			r.stats.Duplicate++
		default:
			// A refused record will never be accepted: it is dropped like
			// a stored one (the console logs why).
			r.stats.Refused++
			r.cfg.Log.Warn("console refused a record", "index", i, "node", res.Node, "seq", res.Seq, "reason", res.Error)
		}
		// The cursor moves on what the node signed, not on what the
		// console echoes (a refused malformed record has no node).
		if rec, _, err := report.Open(envs[i]); err == nil {
			r.cursor[rec.Node] = max(r.cursor[rec.Node], rec.Seq)
		} else if res.Node != "" {
			r.cursor[res.Node] = max(r.cursor[res.Node], res.Seq)
		}
	}
	return nil
}

// httpClient talks to the console: the system's roots, or with a pin only
// the certificate whose public key has that SHA-256.
func httpClient(c Console) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if c.Pin != "" {
		want, err := hex.DecodeString(c.Pin)
		if err != nil || len(want) != sha256.Size {
			return nil, fmt.Errorf("console TLS pin %q: want the hex SHA-256 of the certificate's public key", c.Pin)
		}
		tr.TLSClientConfig = &tls.Config{
			MinVersion:         tls.VersionTLS12,
			InsecureSkipVerify: true, // replaced by the pin check below
			VerifyConnection: func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) == 0 {
					return errors.New("console presented no certificate")
				}
				got := sha256.Sum256(cs.PeerCertificates[0].RawSubjectPublicKeyInfo)
				if subtle.ConstantTimeCompare(got[:], want) != 1 {
					return fmt.Errorf("console certificate key %x does not match the policy's pin", got)
				}
				return nil
			},
		}
	}
	return &http.Client{Transport: tr, Timeout: 2 * time.Minute}, nil
}

// PinOf is the pin of a certificate: hex SHA-256 of its public key info.
func PinOf(cert *x509.Certificate) string {
	s := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return hex.EncodeToString(s[:])
}
