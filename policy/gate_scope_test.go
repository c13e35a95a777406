package policy

import (
	"strings"
	"testing"
)

const fleetGatePolicy = `schema: 1
expires: 2027-06-30T00:00:00Z
rings:
  - name: pilot
    select: [{tags: [pilot]}]
  - name: broad
    default: true
    gates: [{ring: pilot, min_success: 90%, min_nodes: 3, scope: fleet}]
auto_approve:
  - {sources: [apt]}
`

// TestGateScopeFleet: a gate of scope fleet counts the fleet's numbers
// (the console's signed fleet status) and ignores the site's; without a
// fleet status it has no reports and waits.
func TestGateScopeFleet(t *testing.T) {
	t.Parallel()
	p := mustParse(t, fleetGatePolicy)
	seen := mustTime(t, "2026-06-10T10:00:00Z")
	u := Update{Source: SourceApt, Package: "libc6", Version: "2.36-9+deb12u9", FirstSeen: seen}
	broad := NodeFacts{NodeID: "b", Hostname: "b", Site: "b"}
	stats := func(st RingStats) FleetStats { return FleetStats{"pilot": {u.Key(): st}} }
	good, bad := stats(RingStats{Succeeded: 3, Total: 3}), stats(RingStats{Succeeded: 1, Failed: 2, Total: 3})
	tests := []struct {
		name   string
		view   FleetView
		action Action
		reason string
	}{
		{"fleet's pilot succeeded", Scoped{Site: FleetStats{}, Fleet: good}, ActionInstallNow, ""},
		{"fleet's pilot failed", Scoped{Site: FleetStats{}, Fleet: bad}, ActionWaitGate, "across the fleet, 3 of 3 nodes reported (1 succeeded, 2 failed"},
		{"site's numbers do not count", Scoped{Site: good}, ActionWaitGate, "no verified fleet status document"},
		{"a plain site view has no fleet numbers", good, ActionWaitGate, "no verified fleet status document"},
		{"fleet status without pilot reports", Scoped{Fleet: FleetStats{}}, ActionWaitGate, "no node of ring pilot is known in the fleet"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := Evaluate(p, broad, []Update{u}, tc.view, seen.Add(1))
			if d[0].Action != tc.action || !strings.Contains(d[0].Reason, tc.reason) {
				t.Errorf("%s: %s, want %s with %q", tc.name, d[0].Action, tc.action, tc.reason)
			}
		})
	}
}

func TestGateScopeValidated(t *testing.T) {
	t.Parallel()
	_, err := Parse([]byte(strings.Replace(fleetGatePolicy, "scope: fleet", "scope: world", 1)), "p.yaml")
	if err == nil || !strings.Contains(err.Error(), "rings[1].gates[0].scope") {
		t.Fatalf("a bad scope: %v", err)
	}
}
