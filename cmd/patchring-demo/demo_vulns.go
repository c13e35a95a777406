package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/patchring/patchring/daemon/apitypes"
)

// The vulnerabilities scene (issue #17): the admin publishes signed
// advisory data (OSV, CISA KEV) naming a CVE that the demo's patch
// (acme-tool and libacme 1.1) fixes; every agent reports it open before
// the release and closed once its ring installed the patch.
const (
	demoCVE = "CVE-2026-4242"
	demoDSA = "DSA-6042-1"
)

// demoOSV is the advisory in the OSV format (as osv.dev publishes
// Debian's): both packages of the patch are affected before 1.1.
func demoOSV(ecosystem string) map[string]any {
	affected := func(pkg string) map[string]any {
		return map[string]any{
			"package": map[string]any{"ecosystem": ecosystem, "name": pkg},
			"ranges":  []any{map[string]any{"type": "ECOSYSTEM", "events": []any{map[string]any{"introduced": "0"}, map[string]any{"fixed": "1.1"}}}},
		}
	}
	return map[string]any{
		"schema_version": "1.6.0",
		"id":             demoDSA,
		"modified":       "2026-12-01T00:00:00Z",
		"published":      "2026-12-01T00:00:00Z",
		"upstream":       []string{demoCVE},
		"summary":        "acme-tool, libacme: remote code execution in the update parser",
		"severity":       []any{map[string]any{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}},
		"affected":       []any{affected("acme-tool"), affected("libacme")},
	}
}

// demoKEV is CISA's Known Exploited Vulnerabilities catalog (its JSON
// feed's format) listing the CVE.
func demoKEV() map[string]any {
	return map[string]any{
		"title": "CISA Catalog of Known Exploited Vulnerabilities", "catalogVersion": "2026.12.01",
		"dateReleased": "2026-12-01T12:00:00.000Z", "count": 1,
		"vulnerabilities": []any{map[string]any{
			"cveID": demoCVE, "vendorProject": "Acme", "product": "acme-tool",
			"vulnerabilityName": "Acme acme-tool Remote Code Execution", "dateAdded": "2026-12-01",
			"shortDescription": "acme-tool's update parser allows remote code execution.",
			"requiredAction":   "Apply updates per vendor instructions.", "dueDate": "2026-12-22",
			"knownRansomwareCampaignUse": "Unknown",
		}},
	}
}

// advisories publishes the advisory database with `patchring advisories
// import`, waits until every agent verified it and reports the CVE open,
// and prints what they report.
func (d *demo) advisories(ctx context.Context, repoDir, keys string) error {
	d.step("admin: publish signed advisory data (OSV + CISA KEV): %s (%s) in acme-tool and libacme before 1.1, critical, exploited", demoCVE, demoDSA)
	first := d.agents[0]
	var ecos []string
	if err := d.poll(ctx, first, "its ecosystem", func() (bool, error) {
		v, err := first.client.Vulns(ctx)
		ecos = v.Ecosystems
		return err == nil && len(ecos) > 0, err
	}); err != nil {
		return err
	}
	dir := filepath.Join(d.work, "advisories")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	osvFile, kevFile := filepath.Join(dir, demoDSA+".json"), filepath.Join(dir, "known_exploited_vulnerabilities.json")
	for file, doc := range map[string]any{osvFile: demoOSV(ecos[0]), kevFile: demoKEV()} {
		b, err := json.MarshalIndent(doc, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(file, b, 0o644); err != nil {
			return err
		}
	}
	if err := d.cli(ctx, "advisories", "import", osvFile, "--kev", kevFile, "--ecosystem", ecos[0], "--repo", repoDir, "--keys", keys); err != nil {
		return err
	}
	for _, a := range d.debAgents() {
		if err := d.poll(ctx, a, demoCVE+" in its exposure", func() (bool, error) {
			f, err := d.finding(ctx, a)
			return f != nil, err
		}); err != nil {
			return err
		}
	}
	d.note("every agent verified the advisory database like the policy (TUF) and matched its installed packages with dpkg's version rules:")
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "          NODE\tRING\tACME-TOOL\t"+demoCVE+"\tFIX")
	for _, a := range d.debAgents() {
		v := d.view(ctx, a)
		state, fix := "closed", "-"
		if f, err := d.finding(ctx, a); err != nil {
			state = "?"
		} else if f != nil {
			state, fix = "OPEN ("+f.Severity+", KEV)", f.Fix
		}
		fmt.Fprintf(tw, "          %s\t%s\t%s\t%s\t%s\n", a.name, v.ring, v.version, state, fix)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return d.cli(ctx, "--socket", first.sock, "vulns")
}

// finding is a's finding for demoCVE in acme-tool (nil: not exposed).
func (d *demo) finding(ctx context.Context, a *agent) (*apitypes.VulnFinding, error) {
	v, err := a.client.Vulns(ctx)
	if err != nil {
		return nil, err
	}
	for i, f := range v.Findings {
		if f.ID == demoCVE && f.Package == "acme-tool" {
			return &v.Findings[i], nil
		}
	}
	return nil, nil
}

// exposure prints, ring by ring, where the CVE was closed by the patch
// and where it is still open, as each agent reports it.
func (d *demo) exposure(ctx context.Context) error {
	d.step("%s ring by ring, as each agent reports it (patchring vulns / GET /v1/vulns)", demoCVE)
	// An agent matches again after its inventory saw the install: wait
	// until every agent that installed the patch reports the CVE closed.
	deadline := time.Now().Add(30 * time.Second)
	for _, a := range d.debAgents() {
		if err := d.poll(ctx, a, demoCVE+" closed after the install", func() (bool, error) {
			if v := d.view(ctx, a); v.version != "1.1" || time.Now().After(deadline) {
				return true, nil
			}
			f, err := d.finding(ctx, a)
			return err == nil && f == nil, err
		}); err != nil {
			return err
		}
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "          RING\tNODE\tACME-TOOL\t"+demoCVE+"\tFIX")
	for _, ring := range []string{"lab", "pilot", "broad"} {
		for _, a := range d.debAgents() {
			v := d.view(ctx, a)
			if v.ring != ring {
				continue
			}
			f, err := d.finding(ctx, a)
			state, fix := "closed", "installed"
			switch {
			case err != nil:
				state, fix = "?", err.Error()
			case f != nil:
				state, fix = "OPEN ("+f.Severity+", KEV)", f.Fix
				if f.Update != "" {
					fix += " " + f.Update
				}
				if v.last != "" {
					fix += "; last: " + v.last
				}
			}
			fmt.Fprintf(tw, "          %s\t%s\t%s\t%s\t%s\n", ring, a.name, v.version, state, fix)
		}
	}
	return tw.Flush()
}
