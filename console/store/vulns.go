package store

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/patchring/patchring/console/report"
)

// VulnFilter narrows the vulnerability views. Package matches the binary
// package or its source package (openssl finds libssl3 too).
type VulnFilter struct {
	CVE     string `json:"cve,omitempty"`
	Package string `json:"package,omitempty"`
	Site    string `json:"site,omitempty"`
	KEV     bool   `json:"kev,omitempty"` // only CISA KEV entries
}

// Filtered says whether any filter is set.
func (f VulnFilter) Filtered() bool { return f.CVE != "" || f.Package != "" || f.Site != "" || f.KEV }

func (f VulnFilter) where() (string, []any) {
	var conds []string
	var args []any
	if f.CVE != "" {
		conds, args = append(conds, "v.cve = ?"), append(args, f.CVE)
	}
	if f.Package != "" {
		conds, args = append(conds, "(v.package = ? OR v.source = ?)"), append(args, f.Package, f.Package)
	}
	if f.Site != "" {
		conds, args = append(conds, "n.site = ?"), append(args, f.Site)
	}
	if f.KEV {
		conds = append(conds, "v.kev = 1")
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// VulnsPage is the JSON of the console's vulns view: the exposure per
// vulnerability and package, and with a filter the nodes it selects.
type VulnsPage struct {
	Filter    VulnFilter     `json:"filter"`
	Exposures []VulnExposure `json:"exposures"`
	Nodes     []VulnNode     `json:"nodes,omitempty"`
}

// VulnExposure is one vulnerability through one package across the
// fleet: how many nodes are exposed, at which sites.
type VulnExposure struct {
	ID       string `json:"id"`
	Package  string `json:"package"`
	Severity string `json:"severity"` // the worst any node reports
	KEV      bool   `json:"kev"`
	// FixedIn is the first fixed version the nodes report ("" when no
	// node knows of a fix); NoFix counts nodes with no fix available.
	FixedIn string      `json:"fixed_in"`
	Nodes   int         `json:"nodes"`
	NoFix   int         `json:"no_fix"`
	Sites   []SiteCount `json:"sites"`
}

// Urgent is a KEV entry or a critical severity.
func (v VulnExposure) Urgent() bool { return v.KEV || v.Severity == report.SeverityCritical }

// SiteCount is a number of nodes at one site.
type SiteCount struct {
	Site  string `json:"site"`
	Nodes int    `json:"nodes"`
}

// VulnExposures is the fleet's exposure: vulnerability x package, the
// nodes exposed and their sites; urgent ones first, then by severity and
// the number of nodes.
func (s *Store) VulnExposures(ctx context.Context, f VulnFilter, limit int) ([]VulnExposure, error) {
	where, args := f.where()
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT v.cve, v.package, n.site, v.severity, v.kev, v.fixed_in,
	COUNT(*), SUM(CASE WHEN v.fix IN ('none', 'not-available') THEN 1 ELSE 0 END)
FROM node_vulns v JOIN node_keys k ON k.nid = v.nid JOIN nodes n ON n.node_id = k.node_id`+where+`
GROUP BY v.cve, v.package, n.site, v.severity, v.kev, v.fixed_in`), args...)
	if err != nil {
		return nil, fmt.Errorf("vulnerability exposure: %w", err)
	}
	type part struct {
		id, pkg, site, severity, fixedIn string
		kev, nodes, noFix                int
	}
	parts, err := collect(rows, "vulnerability exposure", func(p *part) []any {
		return []any{&p.id, &p.pkg, &p.site, &p.severity, &p.kev, &p.fixedIn, &p.nodes, &p.noFix}
	})
	if err != nil {
		return nil, err
	}
	type key struct{ id, pkg string }
	byKey := map[key]*VulnExposure{}
	bySite := map[key]map[string]int{}
	for _, p := range parts {
		k := key{p.id, p.pkg}
		e := byKey[k]
		if e == nil {
			e = &VulnExposure{ID: p.id, Package: p.pkg, Severity: p.severity}
			byKey[k], bySite[k] = e, map[string]int{}
		}
		if report.SeverityRank(p.severity) > report.SeverityRank(e.Severity) {
			e.Severity = p.severity
		}
		e.KEV = e.KEV || p.kev != 0
		if p.fixedIn != "" && (e.FixedIn == "" || p.fixedIn < e.FixedIn) {
			e.FixedIn = p.fixedIn
		}
		e.Nodes += p.nodes
		e.NoFix += p.noFix
		bySite[k][p.site] += p.nodes
	}
	out := make([]VulnExposure, 0, len(byKey))
	for k, e := range byKey {
		for site, n := range bySite[k] {
			e.Sites = append(e.Sites, SiteCount{Site: site, Nodes: n})
		}
		sort.Slice(e.Sites, func(a, b int) bool {
			return e.Sites[a].Nodes > e.Sites[b].Nodes || e.Sites[a].Nodes == e.Sites[b].Nodes && e.Sites[a].Site < e.Sites[b].Site
		})
		out = append(out, *e)
	}
	sort.Slice(out, func(a, b int) bool {
		x, y := out[a], out[b]
		if x.Urgent() != y.Urgent() {
			return x.Urgent()
		}
		if rx, ry := report.SeverityRank(x.Severity), report.SeverityRank(y.Severity); rx != ry {
			return rx > ry
		}
		if x.Nodes != y.Nodes {
			return x.Nodes > y.Nodes
		}
		if x.ID != y.ID {
			return x.ID < y.ID
		}
		return x.Package < y.Package
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// VulnNode is one node exposed to one vulnerability through one package.
type VulnNode struct {
	NodeID   string `json:"node_id"`
	Hostname string `json:"hostname"`
	Site     string `json:"site"`
	Ring     string `json:"ring"`
	ID       string `json:"id"`
	Package  string `json:"package"`
	Version  string `json:"version"` // installed
	Source   string `json:"source,omitempty"`
	FixedIn  string `json:"fixed_in"`
	Severity string `json:"severity"`
	KEV      bool   `json:"kev"`
	Fix      string `json:"fix"`
}

// VulnNodes lists the exposed nodes the filter selects, by site and host.
func (s *Store) VulnNodes(ctx context.Context, f VulnFilter, limit int) ([]VulnNode, error) {
	where, args := f.where()
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT n.node_id, n.hostname, n.site, n.ring, v.cve, v.package, v.version, v.source, v.fixed_in, v.severity, v.kev, v.fix
FROM node_vulns v JOIN node_keys k ON k.nid = v.nid JOIN nodes n ON n.node_id = k.node_id`+where+`
ORDER BY n.site, n.hostname, n.node_id, v.cve, v.package LIMIT ?`), append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("exposed nodes: %w", err)
	}
	var kev int
	return collectThen(rows, "exposed nodes", func(v *VulnNode) []any {
		return []any{&v.NodeID, &v.Hostname, &v.Site, &v.Ring, &v.ID, &v.Package, &v.Version, &v.Source, &v.FixedIn, &v.Severity, &kev, &v.Fix}
	}, func(v *VulnNode) { v.KEV = kev != 0 })
}

// UnmanagedDevice is one device without an agent at one site, as the
// site's reporter last listed it.
type UnmanagedDevice struct {
	Site      string    `json:"site"`
	MAC       string    `json:"mac"`
	Vendor    string    `json:"vendor"`
	Addrs     []string  `json:"addrs"`
	Hostname  string    `json:"hostname"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"` // to the hour
	// SeenBy are the node IDs of the members that saw it; SeenByHosts
	// their hostnames where the console knows them (else the ID).
	SeenBy         []string  `json:"seen_by"`
	SeenByHosts    []string  `json:"seen_by_hosts"`
	ReportedBy     string    `json:"reported_by"` // the reporter's node ID
	ReportedByHost string    `json:"reported_by_host"`
	ReceivedAt     time.Time `json:"received_at"`
}

// Unmanaged lists the unmanaged devices of one site ("" every site), by
// site and MAC.
func (s *Store) Unmanaged(ctx context.Context, site string, limit int) ([]UnmanagedDevice, error) {
	query := `SELECT site, mac, vendor, addrs, hostname, first_seen, last_seen, seen_by, reported_by, received_at FROM unmanaged`
	var args []any
	if site != "" {
		query, args = query+` WHERE site = ?`, append(args, site)
	}
	rows, err := s.db.QueryContext(ctx, s.q(query+` ORDER BY site, mac LIMIT ?`), append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("unmanaged devices: %w", err)
	}
	var addrs, seenBy string
	var t [3]int64
	devs, err := collectThen(rows, "unmanaged devices", func(d *UnmanagedDevice) []any {
		return []any{&d.Site, &d.MAC, &d.Vendor, &addrs, &d.Hostname, &t[0], &t[1], &seenBy, &d.ReportedBy, &t[2]}
	}, func(d *UnmanagedDevice) {
		d.Addrs, d.SeenBy = strings.Fields(addrs), strings.Fields(seenBy)
		d.FirstSeen, d.LastSeen, d.ReceivedAt = fromMS(t[0]), fromMS(t[1]), fromMS(t[2])
	})
	if err != nil {
		return nil, err
	}
	hosts, err := s.hostnames(ctx, devs)
	if err != nil {
		return nil, err
	}
	for i := range devs {
		d := &devs[i]
		d.ReportedByHost = hosts[d.ReportedBy]
		d.SeenByHosts = make([]string, len(d.SeenBy))
		for j, id := range d.SeenBy {
			d.SeenByHosts[j] = id
			if h := hosts[id]; h != "" {
				d.SeenByHosts[j] = h
			}
		}
	}
	return devs, nil
}

// hostnames are the hostnames of the members of the devices' sites.
func (s *Store) hostnames(ctx context.Context, devs []UnmanagedDevice) (map[string]string, error) {
	out := map[string]string{}
	done := map[string]bool{}
	for _, d := range devs {
		if done[d.Site] {
			continue
		}
		done[d.Site] = true
		rows, err := s.db.QueryContext(ctx, s.q(`SELECT node_id, hostname FROM nodes WHERE site = ?`), d.Site)
		if err != nil {
			return nil, fmt.Errorf("unmanaged devices: %w", err)
		}
		type nh struct{ id, host string }
		list, err := collect(rows, "unmanaged devices", func(x *nh) []any { return []any{&x.id, &x.host} })
		if err != nil {
			return nil, err
		}
		for _, x := range list {
			out[x.id] = x.host
		}
	}
	return out, nil
}
