package daemon

import (
	"context"
	"path/filepath"
	"slices"
	"strings"

	"github.com/patchring/patchring/console/report"
	"github.com/patchring/patchring/daemon/engine"
	"github.com/patchring/patchring/daemon/reporter"
	"github.com/patchring/patchring/policy"
	"github.com/patchring/patchring/policy/credential"
)

// startReporter adds the console reporter: this node's records go into
// its outbox (served to the site's reporter over the payload exchange),
// and when rendezvous makes this node the site's reporter it sends the
// site's records to the console the signed policy names.
func (d *Daemon) startReporter() error {
	box, err := reporter.OpenOutbox(reporter.OutboxConfig{
		Path:       filepath.Join(d.cfg.StateDir, "report-outbox.json"),
		Key:        d.id.Ed25519(),
		Credential: d.pol.Credential,
	})
	if err != nil {
		return err
	}
	rc := reporter.Config{
		Outbox:   box,
		Sample:   d.reportSample,
		Members:  func() []string { return []string{d.ID()} },
		Console:  d.consoleFromPolicy,
		Interval: d.cfg.Report.Interval,
		Log:      d.log.With("part", "reporter"),
	}
	if d.fleet != nil {
		rc.Members = d.fleet.ReportMembers
		rc.Fetch = d.fleet.FetchReports
	}
	d.outbox = box
	d.add(reporter.New(rc))
	return nil
}

// consoleFromPolicy is the console the signed policy in force names.
func (d *Daemon) consoleFromPolicy() (reporter.Console, bool) {
	p, _ := d.currentPolicy()
	if p == nil || p.Console == nil {
		return reporter.Console{}, false
	}
	return reporter.Console{URL: p.Console.URL, Pin: p.Console.TLSPin}, true
}

// reportSample is this node's state for its console record.
func (d *Daemon) reportSample(ctx context.Context) (reporter.Sample, error) {
	var s reporter.Sample
	r := &s.Record
	r.Hostname, r.Site, r.State = d.hostname, d.cfg.Site, "idle"
	if r.Site == "" {
		r.Site = "default"
	}
	r.Reboot.State = report.RebootNone
	if p, _ := d.currentPolicy(); p != nil {
		r.Ring, _ = policy.RingFor(p, d.Facts())
	}
	if d.pol != nil {
		eff := d.pol.Effective()
		r.PolicyVersion = max(eff.TimestampVersion, 0)
		r.MetadataExpires = eff.MetadataExpires
		if raw := d.pol.Credential(); len(raw) > 0 {
			if c, err := credential.Parse(raw); err == nil {
				r.CredentialExpires = c.NotAfter
			}
		}
	}
	if d.engine != nil {
		ds, _ := d.engine.Decisions()
		for _, dec := range ds {
			switch dec.Action {
			case "install-now", "install-at", "wait-window", "wait-gate", "wait-deferral":
				r.Pending++
			}
		}
		if st := d.engine.Status(); st.State != "ok" {
			r.State = st.State
		}
		if txs, err := d.engine.History(200); err == nil {
			for _, tx := range txs {
				s.Outcomes = append(s.Outcomes, txOutcomes(tx)...)
			}
			if len(txs) > 0 && !txs[0].Open() && (txs[0].Outcome == engine.OutcomeFailed || txs[0].Outcome == engine.OutcomeRolledBack) {
				r.State = "failed"
			}
			if len(txs) > 0 && txs[0].Open() {
				r.State = "installing"
			}
		}
	}
	if d.reboot != nil {
		rs := d.reboot.RebootStatus()
		switch {
		case rs.Refused:
			r.Reboot.State = report.RebootRefused
		case rs.Required && rs.DeferralsUsed > 0:
			r.Reboot.State = report.RebootDeferred
		case rs.Required:
			r.Reboot.State = report.RebootPending
		}
		if rs.Required {
			r.Reboot.Deadline, r.Reboot.Deferrals = rs.EffectiveDeadline, rs.DeferralsUsed
		}
	}
	if snap := d.inv.Latest(); snap != nil && snap.Packages != nil {
		for _, p := range snap.Packages.Items {
			if p.Manager != "dpkg" || p.Name == "" || p.Version == "" {
				continue
			}
			s.Packages = append(s.Packages, report.Package{Name: p.Name, Version: p.Version, Arch: p.Architecture})
		}
		slices.SortFunc(s.Packages, func(a, b report.Package) int {
			if c := strings.Compare(a.Name, b.Name); c != 0 {
				return c
			}
			return strings.Compare(a.Arch, b.Arch)
		})
		if len(s.Packages) > report.MaxPackages {
			s.Packages = s.Packages[:report.MaxPackages]
		}
	}
	if d.fleet != nil {
		p := d.fleet.Peers()
		s.BytesFromPeers, s.BytesFromOrigin = p.FromPeers, p.FromOrigin
	}
	return s, ctx.Err()
}

// txOutcomes are the console outcomes of one ended install transaction.
func txOutcomes(tx *engine.Tx) []report.Outcome {
	if tx.Open() || tx.Kind != engine.KindInstall {
		return nil
	}
	var res string
	switch tx.Outcome {
	case engine.OutcomeInstalled:
		res = report.ResultSucceeded
	case engine.OutcomeFailed:
		res = report.ResultFailed
	case engine.OutcomeRolledBack:
		res = report.ResultRolledBack
	default:
		return nil
	}
	reason := tx.Error
	if len(reason) > 1000 {
		reason = reason[:1000]
	}
	var out []report.Outcome
	for _, it := range tx.Items {
		if it.Package == "" || it.To == "" {
			continue
		}
		src := it.Source
		if src == "" {
			src = "apt"
		}
		out = append(out, report.Outcome{Source: src, Package: it.Package, Version: it.To, Result: res, Reason: reason, At: tx.Ended})
	}
	return out
}
