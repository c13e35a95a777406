package store

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"
)

// Release is one update (source, package, version) the fleet reported
// outcomes for.
type Release struct {
	// ID names the release in URLs: source/package/version, each part
	// path-escaped.
	ID      string `json:"id"`
	Source  string `json:"source"`
	Package string `json:"package"`
	Version string `json:"version"`
	// Nodes reported an outcome for it; Succeeded and Failed count the
	// nodes with at least one such outcome (a node that failed and then
	// succeeded is in both).
	Nodes     int       `json:"nodes"`
	Succeeded int       `json:"succeeded"`
	Failed    int       `json:"failed"`
	Sites     int       `json:"sites"`
	First     time.Time `json:"first"`
	Last      time.Time `json:"last"`
}

// ReleaseID is the ID of a release.
func ReleaseID(source, pkg, version string) string {
	return url.PathEscape(source) + "/" + url.PathEscape(pkg) + "/" + url.PathEscape(version)
}

// Releases lists the releases the fleet reported outcomes for, the one
// with the newest outcome first.
func (s *Store) Releases(ctx context.Context, limit int) ([]Release, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT source, package, version, COUNT(DISTINCT node_id),
	COUNT(DISTINCT CASE WHEN result = 'succeeded' THEN node_id END),
	COUNT(DISTINCT CASE WHEN result <> 'succeeded' THEN node_id END),
	COUNT(DISTINCT site), MIN(at), MAX(at)
FROM outcomes GROUP BY source, package, version ORDER BY MAX(at) DESC, package, version, source LIMIT ?`), limit)
	if err != nil {
		return nil, fmt.Errorf("releases: %w", err)
	}
	var first, last int64
	return collectThen(rows, "releases", func(r *Release) []any {
		return []any{&r.Source, &r.Package, &r.Version, &r.Nodes, &r.Succeeded, &r.Failed, &r.Sites, &first, &last}
	}, func(r *Release) {
		r.First, r.Last, r.ID = fromMS(first), fromMS(last), ReleaseID(r.Source, r.Package, r.Version)
	})
}

// Rollout is one release's progress over time, per ring and site.
type Rollout struct {
	Release Release `json:"release"`
	// Bucket is the width of a time step; Times are the steps' ends.
	Bucket string      `json:"bucket"`
	Times  []time.Time `json:"times"`
	Series []Series    `json:"series"`
}

// Series is one ring at one site: its nodes now, and per time step the
// nodes that had reported an outcome for the release by the step's end,
// of which how many last succeeded and how many last failed (or rolled
// back). A node counts in the ring and site of its latest outcome.
type Series struct {
	Ring   string  `json:"ring"`
	Site   string  `json:"site"`
	Nodes  int     `json:"nodes"`
	Points []Point `json:"points"`
}

// Point is a series at one time step's end.
type Point struct {
	Reporting int `json:"reporting"`
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
}

// Rollout limits.
const (
	// MaxRolloutSteps bounds the time steps of one rollout.
	MaxRolloutSteps = 1000
	// autoSteps is the most steps an automatic bucket gives.
	autoSteps = 60
)

var autoBuckets = []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute, 30 * time.Minute, time.Hour,
	3 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour, 7 * 24 * time.Hour}

// ErrBadRequest: a query parameter is out of range.
var ErrBadRequest = fmt.Errorf("bad request")

// Rollout returns a release's rollout in steps of bucket (0: the smallest
// of 1m, 5m, 15m, 30m, 1h, 3h, 6h, 12h, 1d, 7d that gives at most 60
// steps).
func (s *Store) Rollout(ctx context.Context, source, pkg, version string, bucket time.Duration) (Rollout, error) {
	ro := Rollout{Release: Release{ID: ReleaseID(source, pkg, version), Source: source, Package: pkg, Version: version}, Times: []time.Time{}, Series: []Series{}}
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT node_id, ring, site, result, at FROM outcomes
WHERE package = ? AND version = ? AND source = ? ORDER BY at, node_id, seq, idx`), pkg, version, source)
	if err != nil {
		return ro, fmt.Errorf("rollout of %s: %w", ro.Release.ID, err)
	}
	type outcome struct {
		node, ring, site, result string
		at                       time.Time
	}
	var at int64
	outs, err := collectThen(rows, "rollout", func(o *outcome) []any { return []any{&o.node, &o.ring, &o.site, &o.result, &at} },
		func(o *outcome) { o.at = fromMS(at) })
	if err != nil {
		return ro, fmt.Errorf("rollout of %s: %w", ro.Release.ID, err)
	}
	if len(outs) == 0 {
		return ro, fmt.Errorf("rollout of %s: %w", ro.Release.ID, ErrNotFound)
	}
	first, last := outs[0].at, outs[len(outs)-1].at
	if bucket <= 0 {
		bucket = autoBuckets[len(autoBuckets)-1]
		for _, b := range autoBuckets {
			if steps(first, last, b) <= autoSteps {
				bucket = b
				break
			}
		}
	}
	if bucket < time.Minute {
		return ro, fmt.Errorf("rollout of %s: %w: a time step of %s is under a minute", ro.Release.ID, ErrBadRequest, bucket)
	}
	n := steps(first, last, bucket)
	if n > MaxRolloutSteps {
		return ro, fmt.Errorf("rollout of %s: %w: %d time steps of %s (at most %d): take a wider step", ro.Release.ID, ErrBadRequest, n, bucket, MaxRolloutSteps)
	}
	ro.Bucket = bucket.String()
	start := first.Truncate(bucket)

	// Nodes now per ring and site: the series' totals.
	ov, err := s.Overview(ctx)
	if err != nil {
		return ro, fmt.Errorf("rollout of %s: %w", ro.Release.ID, err)
	}
	type key struct{ ring, site string }
	total := map[key]int{}
	for _, o := range ov {
		total[key{o.Ring, o.Site}] = o.Nodes
	}
	type state struct {
		k  key
		ok bool
	}
	nodes := map[string]state{}
	count := map[key]*Point{}
	sites, nodesOf := map[string]bool{}, map[string]bool{}
	succeeded, failed := map[string]bool{}, map[string]bool{}
	var order []key
	points := map[key][]Point{}
	i := 0
	for step := range n {
		end := start.Add(time.Duration(step+1) * bucket)
		for ; i < len(outs) && outs[i].at.Before(end); i++ {
			o := outs[i]
			k := key{o.ring, o.site}
			if count[k] == nil {
				count[k] = &Point{}
				order = append(order, k)
				points[k] = make([]Point, step) // zero before its first outcome
			}
			if prev, seen := nodes[o.node]; seen {
				p := count[prev.k]
				p.Reporting--
				if prev.ok {
					p.Succeeded--
				} else {
					p.Failed--
				}
			}
			ok := o.result == "succeeded"
			nodes[o.node] = state{k, ok}
			p := count[k]
			p.Reporting++
			if ok {
				p.Succeeded++
				succeeded[o.node] = true
			} else {
				p.Failed++
				failed[o.node] = true
			}
			sites[o.site], nodesOf[o.node] = true, true
		}
		ro.Times = append(ro.Times, end)
		for _, k := range order {
			points[k] = append(points[k], *count[k])
		}
	}
	sort.Slice(order, func(a, b int) bool {
		if order[a].ring != order[b].ring {
			return order[a].ring < order[b].ring
		}
		return order[a].site < order[b].site
	})
	for _, k := range order {
		ro.Series = append(ro.Series, Series{Ring: k.ring, Site: k.site, Nodes: total[k], Points: points[k]})
	}
	r := &ro.Release
	r.Nodes, r.Succeeded, r.Failed, r.Sites, r.First, r.Last = len(nodesOf), len(succeeded), len(failed), len(sites), first, last
	return ro, nil
}

// steps is the number of bucket-wide steps from first's step to last's.
func steps(first, last time.Time, bucket time.Duration) int {
	return int(last.Truncate(bucket).Sub(first.Truncate(bucket))/bucket) + 1
}

// ParseReleaseID splits a release ID into its parts.
func ParseReleaseID(id string) (source, pkg, version string, err error) {
	parts := strings.Split(id, "/")
	if len(parts) != 3 {
		return "", "", "", fmt.Errorf("release %.100q: %w: want source/package/version", id, ErrBadRequest)
	}
	var out [3]string
	for i, p := range parts {
		if out[i], err = url.PathUnescape(p); err != nil || out[i] == "" {
			return "", "", "", fmt.Errorf("release %.100q: %w: part %d", id, ErrBadRequest, i+1)
		}
	}
	return out[0], out[1], out[2], nil
}
