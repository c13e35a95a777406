package server

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/patchring/patchring/console/store"
)

// Filter is one field of a view's filter form (GET, so a filtered view
// has a URL to share, and its CSV and JSON links keep the filter).
type Filter struct {
	Name, Label, Value string
	Checkbox           bool
}

// vulnFilter reads the vulns view's filter from the query.
func vulnFilter(r *http.Request) (store.VulnFilter, error) {
	q := r.URL.Query()
	f := store.VulnFilter{CVE: strings.ToUpper(strings.TrimSpace(q.Get("cve"))), Package: strings.TrimSpace(q.Get("package")), Site: strings.TrimSpace(q.Get("site"))}
	switch q.Get("kev") {
	case "", "0", "false":
	case "1", "true", "on":
		f.KEV = true
	default:
		return f, fmt.Errorf("vulns: %w: kev=%.20q (want 1 or 0)", store.ErrBadRequest, q.Get("kev"))
	}
	for _, v := range []string{f.CVE, f.Package, f.Site} {
		if len(v) > 256 {
			return f, fmt.Errorf("vulns: %w: a filter longer than 256 bytes", store.ErrBadRequest)
		}
	}
	return f, nil
}

// viewFilters are the filter forms of the views that have one.
var viewFilters = map[string]func(r *http.Request) []Filter{
	"vulns": func(r *http.Request) []Filter {
		f, _ := vulnFilter(r)
		kev := ""
		if f.KEV {
			kev = "1"
		}
		return []Filter{{Name: "cve", Label: "CVE", Value: f.CVE}, {Name: "package", Label: "Package", Value: f.Package},
			{Name: "site", Label: "Site", Value: f.Site}, {Name: "kev", Label: "KEV only", Value: kev, Checkbox: true}}
	},
	"unmanaged": func(r *http.Request) []Filter {
		return []Filter{{Name: "site", Label: "Site", Value: r.URL.Query().Get("site")}}
	},
}

// fleetViews are the release rollouts, the fleet's vulnerability exposure
// and the sites' unmanaged devices.
func (s *Server) fleetViews() []view {
	st := s.cfg.Store
	return []view{
		{name: "rollouts", title: "Rollouts", load: func(r *http.Request) (any, *Table, error) {
			rows, err := st.Releases(r.Context(), listLimit)
			t := &Table{Head: []string{"Release", "Last outcome", "First outcome", "Nodes", "Succeeded", "Failed", "Sites"}}
			for _, x := range rows {
				t.Rows = append(t.Rows, append([]Cell{{Text: x.Source + ":" + x.Package + " " + x.Version, Href: "/rollouts/" + x.ID}},
					cells(when(x.Last), when(x.First), x.Nodes, x.Succeeded, x.Failed, x.Sites)...))
			}
			return rows, t, err
		}},
		{name: "vulns", title: "Vulnerabilities", load: func(r *http.Request) (any, *Table, error) {
			f, err := vulnFilter(r)
			if err != nil {
				return nil, nil, err
			}
			p := store.VulnsPage{Filter: f}
			if p.Exposures, err = st.VulnExposures(r.Context(), f, listLimit); err != nil {
				return nil, nil, err
			}
			if !f.Filtered() {
				t := &Table{Head: []string{"CVE", "Package", "Severity", "KEV", "Fixed in", "Nodes", "Without fix", "Sites"}}
				for _, e := range p.Exposures {
					var sites []string
					for _, sc := range e.Sites {
						sites = append(sites, fmt.Sprintf("%s (%d)", sc.Site, sc.Nodes))
					}
					t.Rows = append(t.Rows, append([]Cell{{Text: e.ID, Href: "/vulns?cve=" + url.QueryEscape(e.ID)}, {Text: e.Package, Href: "/vulns?package=" + url.QueryEscape(e.Package)}},
						cells(e.Severity, yesNo(e.KEV), orDash(e.FixedIn), e.Nodes, e.NoFix, strings.Join(sites, ", "))...))
				}
				return p, t, nil
			}
			if p.Nodes, err = st.VulnNodes(r.Context(), f, listLimit); err != nil {
				return nil, nil, err
			}
			t := &Table{Head: []string{"Host", "Site", "Ring", "CVE", "Package", "Installed", "Fixed in", "Fix", "Severity", "KEV"}}
			for _, n := range p.Nodes {
				t.Rows = append(t.Rows, append([]Cell{nodeLink(n.NodeID, n.Hostname)}, append(cells(n.Site, n.Ring),
					append([]Cell{{Text: n.ID, Href: "/vulns?cve=" + url.QueryEscape(n.ID)}}, cells(n.Package, n.Version, orDash(n.FixedIn), orDash(n.Fix), n.Severity, yesNo(n.KEV))...)...)...))
			}
			return p, t, nil
		}},
		{name: "unmanaged", title: "Unmanaged devices", load: func(r *http.Request) (any, *Table, error) {
			site := strings.TrimSpace(r.URL.Query().Get("site"))
			if len(site) > 256 {
				return nil, nil, fmt.Errorf("unmanaged: %w: a site name longer than 256 bytes", store.ErrBadRequest)
			}
			rows, err := st.Unmanaged(r.Context(), site, 10*listLimit)
			t := &Table{Head: []string{"Site", "MAC", "Vendor", "Addresses", "Hostname", "First seen", "Last seen", "Seen by", "Reported by"}}
			for _, d := range rows {
				rep := d.ReportedByHost
				if rep == "" {
					rep = d.ReportedBy
				}
				t.Rows = append(t.Rows, append([]Cell{{Text: d.Site, Href: "/unmanaged?site=" + url.QueryEscape(d.Site)}},
					cells(d.MAC, orDash(d.Vendor), strings.Join(d.Addrs, " "), orDash(d.Hostname), when(d.FirstSeen), when(d.LastSeen), strings.Join(d.SeenByHosts, ", "), rep)...))
			}
			return rows, t, err
		}},
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// RolloutPage is what the rollout template gets.
type RolloutPage struct {
	Rollout store.Rollout
	Chart   Chart
	CSV     string
	JSON    string
}

// serveRollout serves one release's rollout: /rollouts/{source}/{package}/{version}
// (?bucket=1h for the time step).
func (s *Server) serveRollout(format string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		src, pkg, ver := r.PathValue("source"), r.PathValue("package"), r.PathValue("version")
		var bucket time.Duration
		if b := r.URL.Query().Get("bucket"); b != "" {
			var err error
			if bucket, err = time.ParseDuration(b); err != nil || bucket <= 0 {
				httpError(w, http.StatusBadRequest, fmt.Errorf("rollout: bucket=%.32q: want a duration such as 15m or 1h", b))
				return
			}
		}
		ro, err := s.cfg.Store.Rollout(r.Context(), src, pkg, ver, bucket)
		if err != nil {
			status := http.StatusServiceUnavailable
			switch {
			case errors.Is(err, store.ErrNotFound):
				status = http.StatusNotFound
			case errors.Is(err, store.ErrBadRequest):
				status = http.StatusBadRequest
			}
			httpError(w, status, err)
			return
		}
		t := &Table{Head: []string{"Until", "Ring", "Site", "Nodes", "Reporting", "Succeeded", "Failed"}}
		for i, at := range ro.Times {
			for _, sr := range ro.Series {
				p := sr.Points[i]
				t.Rows = append(t.Rows, cells(when(at), sr.Ring, sr.Site, sr.Nodes, p.Reporting, p.Succeeded, p.Failed))
			}
		}
		title := fmt.Sprintf("Rollout of %s:%s %s", ro.Release.Source, ro.Release.Package, ro.Release.Version)
		if format != "html" {
			s.emit(w, r, format, "rollout-"+ro.Release.Package+"-"+ro.Release.Version, title, ro, t)
			return
		}
		// The page lists each series' latest state; the time series in
		// full is in the CSV and the JSON.
		t = &Table{Head: []string{"Ring", "Site", "Nodes", "Reporting", "Succeeded", "Failed", "Succeeded of nodes"}}
		for _, sr := range ro.Series {
			p := sr.Points[len(sr.Points)-1]
			pct := "-"
			if sr.Nodes > 0 {
				pct = fmt.Sprintf("%.1f%%", 100*float64(p.Succeeded)/float64(sr.Nodes))
			}
			t.Rows = append(t.Rows, cells(sr.Ring, sr.Site, sr.Nodes, p.Reporting, p.Succeeded, p.Failed, pct))
		}
		q := ""
		if r.URL.RawQuery != "" {
			q = "?" + r.URL.RawQuery
		}
		p := RolloutPage{Rollout: ro, Chart: rolloutChart(ro), CSV: "/rollouts/" + ro.Release.ID + "/rollout.csv" + q, JSON: "/api/v1/rollouts/" + ro.Release.ID + q}
		s.render(w, r, "rollout", page{Title: title, View: "rollouts", Data: p, Table: t})
	}
}

// Chart is a line chart drawn as inline SVG on the server: per series,
// the share of its nodes that succeeded (solid) and failed (dashed) over
// time.
type Chart struct {
	Width, Height int
	Left, Top     int // plot area origin
	PlotW, PlotH  int
	Lines         []ChartLine
	XTicks        []ChartTick
	YTicks        []ChartTick
	// Legend: a short line and its label per line, right of the plot.
	Legend  struct{ X, X2, TextX int }
	LegendY []int
}

// ChartLine is one polyline.
type ChartLine struct {
	Label  string
	Color  string
	Points string // SVG polyline points
	Dashed bool
}

// ChartTick is an axis label at a position.
type ChartTick struct {
	X, Y int
	Text string
}

// maxChartSeries bounds the chart's series; beyond, a ring's sites are
// summed into one series (the table and CSV keep every site).
const maxChartSeries = 8

func chartSeries(ss []store.Series) []store.Series {
	if len(ss) <= maxChartSeries {
		return ss
	}
	var out []store.Series
	at := map[string]int{}
	for _, sr := range ss {
		i, ok := at[sr.Ring]
		if !ok {
			i = len(out)
			at[sr.Ring] = i
			out = append(out, store.Series{Ring: sr.Ring, Site: "all sites", Points: make([]store.Point, len(sr.Points))})
		}
		out[i].Nodes += sr.Nodes
		for j, p := range sr.Points {
			q := &out[i].Points[j]
			q.Reporting, q.Succeeded, q.Failed = q.Reporting+p.Reporting, q.Succeeded+p.Succeeded, q.Failed+p.Failed
		}
	}
	return out[:min(len(out), maxChartSeries)]
}

var chartColors = []string{"#2a6fdb", "#1a9e55", "#d9822b", "#8e44ad", "#c0392b", "#16a085", "#7f8c8d", "#b7950b"}

func rolloutChart(ro store.Rollout) Chart {
	c := Chart{Width: 860, Height: 280, Left: 48, Top: 12}
	c.PlotW, c.PlotH = c.Width-c.Left-200, c.Height-c.Top-36
	n := len(ro.Times)
	x := func(i int) int {
		if n <= 1 {
			return c.Left + c.PlotW/2
		}
		return c.Left + i*c.PlotW/(n-1)
	}
	y := func(frac float64) int { return c.Top + c.PlotH - int(frac*float64(c.PlotH)) }
	for _, pct := range []int{0, 25, 50, 75, 100} {
		c.YTicks = append(c.YTicks, ChartTick{X: c.Left - 6, Y: y(float64(pct) / 100), Text: fmt.Sprintf("%d%%", pct)})
	}
	for _, i := range []int{0, n / 2, n - 1} {
		if i < 0 || (i == n/2 && (i == 0 || i == n-1)) {
			continue
		}
		c.XTicks = append(c.XTicks, ChartTick{X: x(i), Y: c.Top + c.PlotH + 16, Text: ro.Times[i].UTC().Format("Jan 2 15:04")})
	}
	for si, sr := range chartSeries(ro.Series) {
		total := sr.Nodes
		for _, p := range sr.Points {
			total = max(total, p.Reporting)
		}
		total = max(total, 1)
		var ok, bad strings.Builder
		for i, p := range sr.Points {
			fmt.Fprintf(&ok, "%d,%d ", x(i), y(float64(p.Succeeded)/float64(total)))
			fmt.Fprintf(&bad, "%d,%d ", x(i), y(float64(p.Failed)/float64(total)))
		}
		color := chartColors[si%len(chartColors)]
		label := sr.Ring + " @ " + sr.Site
		c.Lines = append(c.Lines, ChartLine{Label: label + " succeeded", Color: color, Points: strings.TrimSpace(ok.String())},
			ChartLine{Label: label + " failed", Color: color, Points: strings.TrimSpace(bad.String()), Dashed: true})
	}
	c.Legend.X = c.Left + c.PlotW + 12
	c.Legend.X2, c.Legend.TextX = c.Legend.X+22, c.Legend.X+28
	for i := range c.Lines {
		c.LegendY = append(c.LegendY, c.Top+8+i*15)
	}
	return c
}
