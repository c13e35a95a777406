package store

import (
	"context"
	"fmt"
	"time"

	"github.com/patchring/patchring/console/report"
	"github.com/patchring/patchring/policy"
	"github.com/patchring/patchring/policy/fleetstatus"
)

// FleetStatus computes the fleet status document at now: per ring the nodes
// the console knows (in all and per site) and, per update some node
// reported an outcome for, each ring's nodes by their latest outcome with
// it (a rollback counts as a failure), per site, and when the fleet first
// saw it (the earliest outcome reported for it). A node counts once per
// update, in the ring and site of its latest outcome.
func (s *Store) FleetStatus(ctx context.Context, now time.Time) (*fleetstatus.Document, error) {
	doc := &fleetstatus.Document{V: fleetstatus.Version, Generated: now.UTC(), Rings: map[string]fleetstatus.RingNodes{}}
	rows, err := s.db.QueryContext(ctx, `SELECT ring, site, COUNT(*) FROM nodes WHERE ring <> '' GROUP BY ring, site`)
	if err != nil {
		return nil, fmt.Errorf("fleet status: %w", err)
	}
	for rows.Next() {
		var ring, site string
		var n int
		if err := rows.Scan(&ring, &site, &n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("fleet status: %w", err)
		}
		rn := doc.Rings[ring]
		if rn.Sites == nil {
			rn.Sites = map[string]int{}
		}
		rn.Nodes += n
		rn.Sites[site] += n
		doc.Rings[ring] = rn
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("fleet status: %w", err)
	}

	// The latest outcome of each node with each update: rows in order, the
	// last one of a (node, update) group wins.
	rows, err = s.db.QueryContext(ctx, `SELECT node_id, source, package, version, ring, site, result, at FROM outcomes
WHERE ring <> '' ORDER BY source, package, version, node_id, seq, idx`)
	if err != nil {
		return nil, fmt.Errorf("fleet status: %w", err)
	}
	defer rows.Close()
	type latest struct {
		ring, site, result string
	}
	var (
		cur     *fleetstatus.Update
		curKey  policy.UpdateKey
		curNode string
		last    latest
		have    bool
	)
	flushNode := func() {
		if !have {
			return
		}
		c := cur.Rings[last.ring]
		if c.Sites == nil {
			c.Sites = map[string]fleetstatus.SiteCounts{}
		}
		sc := c.Sites[last.site]
		if last.result == report.ResultSucceeded {
			c.Succeeded++
			sc.Succeeded++
		} else {
			c.Failed++
			sc.Failed++
		}
		c.Sites[last.site] = sc
		cur.Rings[last.ring] = c
		have = false
	}
	for rows.Next() {
		var node, ring, site, result string
		var k policy.UpdateKey
		var at int64
		if err := rows.Scan(&node, &k.Source, &k.Package, &k.Version, &ring, &site, &result, &at); err != nil {
			return nil, fmt.Errorf("fleet status: %w", err)
		}
		if cur == nil || k != curKey {
			flushNode()
			doc.Updates = append(doc.Updates, fleetstatus.Update{Source: k.Source, Package: k.Package, Version: k.Version,
				FirstSeen: fromMS(at).UTC(), Rings: map[string]fleetstatus.Counts{}})
			cur, curKey, curNode = &doc.Updates[len(doc.Updates)-1], k, ""
		}
		if node != curNode {
			flushNode()
			curNode = node
		}
		if t := fromMS(at).UTC(); t.Before(cur.FirstSeen) {
			cur.FirstSeen = t
		}
		last, have = latest{ring: ring, site: site, result: result}, true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("fleet status: %w", err)
	}
	flushNode()
	return doc, nil
}
