package policy

import (
	"fmt"
	"testing"
)

func TestBucketIsStable(t *testing.T) {
	t.Parallel()
	// Fixed vectors: changing the hash would move nodes between rings
	// fleet-wide, so these must never change.
	for id, want := range map[string]int{
		"":                                     2282,
		"node-0001":                            4334,
		"3f9a1c2e-7b7d-4e0a-9d3e-2f1b6c8a9e10": 189,
	} {
		if got := Bucket(id); got != want {
			t.Errorf("Bucket(%q) = %d, want %d", id, got, want)
		}
	}
}

func TestBucketSpreadsNodes(t *testing.T) {
	t.Parallel()
	p := mustParse(t, `schema: 1
expires: 2027-06-30T00:00:00Z
rings:
  - {name: ten, select: [{percent: 10}]}
  - {name: forty, select: [{percent: 50}]}
  - {name: rest, default: true}
`)
	counts := map[string]int{}
	const n = 20000
	for i := range n {
		ring, _ := RingFor(p, NodeFacts{NodeID: fmt.Sprintf("node-%05d", i)})
		counts[ring]++
	}
	// First match wins, so "forty" gets buckets 10%..50%.
	for ring, want := range map[string]float64{"ten": 0.10, "forty": 0.40, "rest": 0.50} {
		got := float64(counts[ring]) / n
		if got < want-0.02 || got > want+0.02 {
			t.Errorf("ring %s got %.3f of nodes, want about %.2f", ring, got, want)
		}
	}
}

func TestRingFor(t *testing.T) {
	t.Parallel()
	p := mustParse(t, `schema: 1
expires: 2027-06-30T00:00:00Z
rings:
  - name: lab
    select:
      - tags: [lab]
      - hostname: "lab-*"
  - name: pilot
    select:
      - site: "hq"
        tags: [early, laptop]
      - percent: 20
  - name: broad
    default: true
`)
	tests := []struct {
		name string
		f    NodeFacts
		ring string
		why  string
	}{
		{"tag", NodeFacts{NodeID: "x", Tags: []string{"db", "lab"}}, "lab", "selected by rings[0].select[0]: has tags lab"},
		{"hostname glob", NodeFacts{NodeID: "x", Hostname: "lab-07"}, "lab", "selected by rings[0].select[1]: hostname lab-07 matches lab-*"},
		{"all fields of a selector must match", NodeFacts{NodeID: "node-0001", Site: "hq", Tags: []string{"early"}}, "broad", "no selector matched; broad (rings[2]) is the default ring"},
		{"site and tags", NodeFacts{NodeID: "node-0001", Site: "hq", Tags: []string{"laptop", "early"}}, "pilot", "selected by rings[1].select[0]: has tags early, laptop; site hq matches hq"},
		{"percent bucket", NodeFacts{NodeID: "3f9a1c2e-7b7d-4e0a-9d3e-2f1b6c8a9e10"}, "pilot", "selected by rings[1].select[1]: node ID bucket 1.89% is below 20%"},
		{"first ring wins", NodeFacts{NodeID: "3f9a1c2e-7b7d-4e0a-9d3e-2f1b6c8a9e10", Tags: []string{"lab"}}, "lab", "selected by rings[0].select[0]: has tags lab"},
		{"default", NodeFacts{NodeID: "node-0001", Hostname: "ws-1"}, "broad", "no selector matched; broad (rings[2]) is the default ring"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ring, why := RingFor(p, tc.f)
			if ring != tc.ring || why != tc.why {
				t.Errorf("RingFor = %q, %q; want %q, %q", ring, why, tc.ring, tc.why)
			}
		})
	}
}
