package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/patchring/patchring/console/report"
	"github.com/patchring/patchring/daemon/apicall"
	"github.com/patchring/patchring/daemon/apitypes"
	"github.com/patchring/patchring/daemon/engine"
	"github.com/patchring/patchring/daemon/reporter"
	"github.com/patchring/patchring/daemon/vulns"
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
		Console:  d.consoleFromPolicy,
		Interval: d.cfg.Report.Interval,
		Log:      d.log.With("part", "reporter"),
	}
	// The site membership starts after the outbox (it serves it), so the
	// reporter looks it up when it runs.
	rc.Members = func() []string {
		if d.fleet != nil {
			return d.fleet.ReportMembers()
		}
		return []string{d.ID()}
	}
	rc.SiteDevices = func(ctx context.Context) ([]report.Device, bool) {
		if d.unmanaged == nil {
			return nil, false
		}
		return reportDevices(d.unmanaged.View().Devices), true
	}
	rc.Fetch = func(ctx context.Context, member string, after uint64) ([]report.Envelope, error) {
		if d.fleet == nil {
			return nil, fmt.Errorf("fetch reports from %s: no site membership", member)
		}
		return d.fleet.FetchReports(ctx, member, after)
	}
	d.outbox = box
	d.reporter = reporter.New(rc)
	d.add(d.reporter)
	return nil
}

// ExportReports implements the local API's reports part: every record the
// site's live members hold, for `patchring bundle export-reports`.
func (d *Daemon) ExportReports(ctx context.Context) (apitypes.ReportExport, error) {
	if d.reporter == nil {
		return apitypes.ReportExport{}, apicall.Unavailable("no console reporter on this node (it runs with a policy source)")
	}
	envs, err := d.reporter.Export(ctx)
	out := apitypes.ReportExport{Records: make([]json.RawMessage, 0, len(envs))}
	if err != nil {
		if len(envs) == 0 {
			return apitypes.ReportExport{}, err
		}
		out.Problems = append(out.Problems, err.Error())
	}
	for _, e := range envs {
		raw, err := json.Marshal(e)
		if err != nil {
			return apitypes.ReportExport{}, fmt.Errorf("export reports: %w", err)
		}
		out.Records = append(out.Records, raw)
	}
	return out, nil
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
	if d.vulns != nil && d.vulns.State().Version > 0 {
		fs, _ := d.vulns.Findings(ctx)
		s.VulnsKnown, s.Vulns = true, reportVulns(fs)
	}
	return s, ctx.Err()
}

// reportVulns are a node's findings for its console record, sorted, each
// (vulnerability, package) once; one the console would refuse is left
// out (and logged by no one: it names a package dpkg would not accept).
func reportVulns(fs []vulns.Finding) []report.Vuln {
	out := make([]report.Vuln, 0, len(fs))
	seen := map[[2]string]bool{}
	for _, f := range fs {
		v := report.Vuln{ID: f.ID, Package: f.Package, Version: f.Version, FixedIn: f.FixedIn, Severity: string(f.Severity), KEV: f.KEV, Fix: string(f.Fix)}
		if f.Source != f.Package {
			v.Source = f.Source
		}
		if v.Severity == "" {
			v.Severity = report.SeverityUnknown
		}
		k := [2]string{v.ID, v.Package}
		if seen[k] || v.Check() != nil {
			continue
		}
		seen[k] = true
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b report.Vuln) int {
		if c := strings.Compare(a.ID, b.ID); c != 0 {
			return c
		}
		return strings.Compare(a.Package, b.Package)
	})
	if len(out) > report.MaxVulns {
		out = out[:report.MaxVulns]
	}
	return out
}

// reportDevices are the site's unmanaged devices for the reporter's
// record (which rounds their last sighting), sorted by MAC, at most
// report.MaxDevices.
func reportDevices(ds []apitypes.UnmanagedDevice) []report.Device {
	out := make([]report.Device, 0, len(ds))
	for _, x := range ds {
		d := report.Device{MAC: strings.ToLower(x.MAC), Vendor: x.Vendor, Hostname: x.Hostname,
			FirstSeen: x.FirstSeen.UTC().Truncate(time.Second), LastSeen: x.LastSeen.UTC()}
		d.Addrs = x.Addrs[:min(len(x.Addrs), report.MaxDeviceAddrs)]
		d.SeenBy = x.SeenBy[:min(len(x.SeenBy), report.MaxDeviceSeenBy)]
		if d.Check() != nil {
			continue
		}
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b report.Device) int { return strings.Compare(a.MAC, b.MAC) })
	if len(out) > report.MaxDevices {
		out = out[:report.MaxDevices]
	}
	return out
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
