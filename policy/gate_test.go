package policy

import (
	"strings"
	"testing"
	"time"
)

const gatePolicy = `schema: 1
expires: 2027-06-30T00:00:00Z
rings:
  - name: lab
    select: [{tags: [lab]}]
  - name: pilot
    select: [{tags: [pilot]}]
    gates: [{ring: lab, min_success: 100%, min_nodes: 2, too_few_reports: open, open_after: 1d}]
  - name: broad
    default: true
    gates: [{ring: pilot, min_success: 90%, min_nodes: 3}]
auto_approve:
  - {sources: [apt]}
`

// TestGateTooFewReports: what a gate does while fewer than min_nodes
// nodes reported is the policy's choice. "open" opens it open_after past
// first seen (a site without a lab node does not wait forever), and says
// so; a failure among the few reports holds it; enough bad reports never
// open by time; "wait" (the default) waits whatever the time.
func TestGateTooFewReports(t *testing.T) {
	t.Parallel()
	p := mustParse(t, gatePolicy)
	seen := mustTime(t, "2026-06-10T10:00:00Z")
	u := Update{Source: SourceApt, Package: "libc6", Version: "2.36-9+deb12u9", FirstSeen: seen}
	pilot := NodeFacts{NodeID: "p", Hostname: "p", Tags: []string{"pilot"}}
	broad := NodeFacts{NodeID: "b", Hostname: "b"}
	fleet := func(ring string, st RingStats) FleetStats { return FleetStats{ring: {u.Key(): st}} }
	tests := []struct {
		name   string
		node   NodeFacts
		fleet  FleetView
		now    time.Time
		action Action
		at     string
		reason []string // substrings
	}{
		{"no lab node, before open_after", pilot, nil, seen.Add(23 * time.Hour), ActionWaitGate, "2026-06-11T10:00:00Z",
			[]string{"no node of ring lab is known here", "with too few reports it opens 2026-06-11 10:00 UTC (too_few_reports: open, open_after 1d)"}},
		{"no lab node, after open_after", pilot, nil, seen.Add(24 * time.Hour), ActionInstallNow, "",
			[]string{"gate on ring lab (rings[1].gates[0]) opened without enough reports", "open_after 1d passed 2026-06-11 10:00 UTC"}},
		{"one good report, after open_after", pilot, fleet("lab", RingStats{Succeeded: 1, Total: 1}), seen.Add(25 * time.Hour), ActionInstallNow, "",
			[]string{"ring lab has only 1 known nodes here", "opened without enough reports"}},
		{"one failed report holds it", pilot, fleet("lab", RingStats{Failed: 1, Total: 3}), seen.Add(30 * 24 * time.Hour), ActionWaitGate, "",
			[]string{"below the success threshold, so the gate does not open by time"}},
		{"enough bad reports never open by time", pilot, fleet("lab", RingStats{Succeeded: 1, Failed: 1, Total: 2}), seen.Add(30 * 24 * time.Hour), ActionWaitGate, "",
			[]string{"2 of 2 nodes reported (1 succeeded, 1 failed, 50% success)"}},
		{"enough good reports open before open_after", pilot, fleet("lab", RingStats{Succeeded: 2, Total: 2}), seen, ActionInstallNow, "",
			nil},
		{"wait is the default", broad, fleet("pilot", RingStats{Succeeded: 2, Total: 2}), seen.Add(365 * 24 * time.Hour), ActionWaitGate, "",
			[]string{"ring pilot has only 2 known nodes here", "with too few reports this gate waits (too_few_reports: wait)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := Evaluate(p, tc.node, []Update{u}, tc.fleet, tc.now)[0]
			if d.Action != tc.action {
				t.Fatalf("action %s (%s), want %s", d.Action, d.Reason, tc.action)
			}
			if tc.at != "" && !d.At.Equal(mustTime(t, tc.at)) {
				t.Errorf("at %v, want %s", d.At, tc.at)
			}
			for _, s := range tc.reason {
				if !strings.Contains(d.Reason, s) {
					t.Errorf("reason %q lacks %q", d.Reason, s)
				}
			}
		})
	}
}

func TestGateTooFewReportsValidation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ gate, want string }{
		{`{ring: lab, min_success: 90, min_nodes: 2, too_few_reports: open}`, "rings[1].gates[0].open_after: too_few_reports: open needs a positive open_after"},
		{`{ring: lab, min_success: 90, min_nodes: 2, open_after: 2d}`, "rings[1].gates[0].open_after: has no effect while too_few_reports is wait"},
		{`{ring: lab, min_success: 90, min_nodes: 2, too_few_reports: wait, open_after: 2d}`, "has no effect while too_few_reports is wait"},
		{`{ring: lab, min_success: 90, min_nodes: 2, too_few_reports: skip}`, `rings[1].gates[0].too_few_reports: "skip" is not a choice; use wait`},
		{`{ring: lab, min_success: 90, min_nodes: 2, too_few_reports: open, open_after: -1d}`, "rings[1].gates[0].open_after"},
	} {
		src := strings.Replace(gatePolicy, "[{ring: lab, min_success: 100%, min_nodes: 2, too_few_reports: open, open_after: 1d}]", "["+tc.gate+"]", 1)
		_, err := Parse([]byte(src), "policy.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.gate, err, tc.want)
		}
	}
	// The choice survives the signed (canonical JSON) form.
	p := mustParse(t, gatePolicy)
	b, err := MarshalCanonical(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"too_few_reports":"open","open_after":"1d"`) {
		t.Fatalf("canonical JSON lacks the gate's choice: %s", b)
	}
	q, err := ParseJSON(b, "signed")
	if err != nil {
		t.Fatal(err)
	}
	if g := q.Rings[1].Gates[0]; g.TooFewReports != TooFewReportsOpen || g.OpenAfter.Std() != 24*time.Hour {
		t.Fatalf("gate after the JSON round trip: %+v", g)
	}
}
