package policy

import (
	"strings"
	"testing"
	"time"
)

const evalPolicy = `schema: 1
expires: 2027-06-30T00:00:00Z
rings:
  - name: lab
    select: [{tags: [lab]}]
  - name: pilot
    select: [{hostname: "pilot-*"}]
    defer: 2d
    deadline: 10d
    gates: [{ring: lab, min_success: 90, min_nodes: 2}]
  - name: broad
    default: true
    defer: 7d
    gates: [{ring: pilot, min_success: 95%, min_nodes: 10}]
windows:
  - name: nightly
    cron: "0 2 * * *"
    duration: 4h
    tz: Europe/Berlin
    rings: [pilot]
  - name: ny-nightly
    cron: "30 2 * * *"
    duration: 1h
    tz: America/New_York
    rings: [broad]
  - name: freeze
    action: block
    cron: "0 0 20 12 *"
    duration: 14d
    tz: UTC
auto_approve:
  - {sources: [apt], classifications: [security]}
  - {name: important catalog, sources: [catalog], min_severity: high}
approve:
  - {package: firefox-esr, version: "128.*"}
deny:
  - {package: openssl, version: "3.0.*", reason: breaks billing}
  - {package: "*", version: "*~rc*", rings: [broad]}
pins:
  - {package: postgresql-15, version: "15.8-*"}
expedite:
  - {package: openssl, version: "3.0.99"}
  - {package: openssh-server, version: "1:9.2p1-2+deb12u3", reason: CVE-2024-6387}
  - {package: postgresql-15, version: "15.9-1"}
pauses:
  - {ring: lab, from: 2026-07-01T00:00:00Z, until: 2026-07-10T00:00:00Z, reason: lab move}
  - {ring: lab, from: 2026-07-09T00:00:00Z, until: 2026-07-20T00:00:00Z}
rollbacks:
  - {package: libfoo1, version: "2.1-1", rings: [pilot, broad], reason: crashes printing}
`

var (
	labNode   = NodeFacts{NodeID: "lab-node", Hostname: "lab-01", Tags: []string{"lab"}}
	pilotNode = NodeFacts{NodeID: "pilot-node", Hostname: "pilot-01"}
	broadNode = NodeFacts{NodeID: "broad-node", Hostname: "ws-17", Site: "berlin"}
)

func sec(pkg, version string, firstSeen time.Time) Update {
	return Update{Source: SourceApt, Package: pkg, Version: version, Classification: ClassSecurity, Severity: SeverityHigh, FirstSeen: firstSeen}
}

// goodFleet lets every gate of evalPolicy open for u.
func goodFleet(u Update) FleetStats {
	return FleetStats{
		"lab":   {u.Key(): {Succeeded: 5, Total: 5}},
		"pilot": {u.Key(): {Succeeded: 20, Failed: 1, Total: 40}},
	}
}

func TestEvaluate(t *testing.T) {
	t.Parallel()
	p := mustParse(t, evalPolicy)
	at := func(s string) time.Time { return mustTime(t, s) }
	june10 := at("2026-06-10T10:00:00Z")
	type want struct {
		action Action
		at     string // RFC 3339 or ""
		window string
		rule   string
		reason string // exact when set
	}
	tests := []struct {
		name  string
		node  NodeFacts
		u     Update
		fleet func(Update) FleetStats // nil: goodFleet
		now   time.Time
		want  want
	}{
		{
			name: "policy expired installs nothing",
			node: labNode, u: sec("bash", "5.2-2", june10), now: at("2027-06-30T00:00:00Z"),
			want: want{action: ActionExpired, rule: "expires", reason: "policy expired 2027-06-30 00:00 UTC; installing nothing until a newer policy arrives"},
		},
		{
			name: "lab installs approved security update at once",
			node: labNode, u: sec("bash", "5.2-2", june10), now: june10,
			want: want{action: ActionInstallNow, at: "2026-06-10T10:00:00Z", rule: "auto_approve[0]",
				reason: "lab: approved by auto_approve[0] (security, high); deferral ended 2026-06-10 10:00 UTC and no maintenance window restricts this ring"},
		},
		{
			name: "deny",
			node: labNode, u: sec("openssl", "3.0.11-1", june10), now: june10,
			want: want{action: ActionDenied, rule: "deny[0]", reason: "denied by deny[0] (openssl 3.0.*): breaks billing"},
		},
		{
			name: "deny wins over expedite",
			node: labNode, u: sec("openssl", "3.0.99", june10), now: june10,
			want: want{action: ActionDenied, rule: "deny[0]"},
		},
		{
			name: "deny limited to a ring",
			node: broadNode, u: sec("curl", "8.0~rc1", june10.Add(-30*24*time.Hour)), now: june10,
			want: want{action: ActionDenied, rule: "deny[1]", reason: "denied by deny[1] (* *~rc*)"},
		},
		{
			name: "deny limited to a ring does not touch others",
			node: labNode, u: sec("curl", "8.0~rc1", june10), now: june10,
			want: want{action: ActionInstallNow, rule: "auto_approve[0]", at: "2026-06-10T10:00:00Z"},
		},
		{
			name: "expedite skips approval, deferral, gates and block windows",
			node: broadNode, u: Update{Source: SourceApt, Package: "openssh-server", Version: "1:9.2p1-2+deb12u3", FirstSeen: at("2026-12-24T07:00:00Z")},
			fleet: func(Update) FleetStats { return nil }, now: at("2026-12-24T07:00:00Z"),
			want: want{action: ActionInstallNow, at: "2026-12-24T07:00:00Z", rule: "expedite[1]",
				reason: "broad: expedited by expedite[1] (openssh-server 1:9.2p1-2+deb12u3): installing now regardless of deferral, gates, windows and pauses: CVE-2024-6387"},
		},
		{
			name: "expedite skips a pause",
			node: labNode, u: Update{Source: SourceApt, Package: "openssh-server", Version: "1:9.2p1-2+deb12u3"}, now: at("2026-07-05T00:00:00Z"),
			want: want{action: ActionInstallNow, rule: "expedite[1]", at: "2026-07-05T00:00:00Z"},
		},
		{
			name: "pin holds other versions",
			node: labNode, u: sec("postgresql-15", "16.1-1", june10), now: june10,
			want: want{action: ActionPinned, rule: "pins[0]", reason: "pinned by pins[0]: postgresql-15 held at 15.8-*"},
		},
		{
			name: "pin wins over expedite",
			node: labNode, u: sec("postgresql-15", "15.9-1", june10), now: june10,
			want: want{action: ActionPinned, rule: "pins[0]"},
		},
		{
			name: "pinned version still needs approval",
			node: labNode, u: Update{Source: SourceApt, Package: "postgresql-15", Version: "15.8-2", Classification: ClassBugfix, FirstSeen: june10}, now: june10,
			want: want{action: ActionNotApproved, rule: "approve",
				reason: "not approved: no approve or auto_approve entry matches apt postgresql-15 15.8-2 (bugfix, unknown) in ring lab"},
		},
		{
			name: "explicit approve",
			node: labNode, u: Update{Source: SourceApt, Package: "firefox-esr", Version: "128.3.0esr-1", Classification: ClassEnhancement, FirstSeen: june10}, now: june10,
			want: want{action: ActionInstallNow, rule: "approve[0]", at: "2026-06-10T10:00:00Z"},
		},
		{
			name: "explicit approve is per version",
			node: labNode, u: Update{Source: SourceApt, Package: "firefox-esr", Version: "130.0-1", FirstSeen: june10}, now: june10,
			want: want{action: ActionNotApproved, rule: "approve"},
		},
		{
			name: "catalog update at or above min severity",
			node: labNode, u: Update{Source: SourceCatalog, Package: "zoom", Version: "6.1", Severity: SeverityCritical, FirstSeen: june10}, now: june10,
			want: want{action: ActionInstallNow, rule: "auto_approve[1]",
				reason: "lab: approved by auto_approve[1] (important catalog); deferral ended 2026-06-10 10:00 UTC and no maintenance window restricts this ring"},
		},
		{
			name: "catalog update below min severity",
			node: labNode, u: Update{Source: SourceCatalog, Package: "zoom", Version: "6.1", Severity: SeverityMedium, FirstSeen: june10}, now: june10,
			want: want{action: ActionNotApproved},
		},
		{
			name: "security classification from another source is not auto-approved",
			node: labNode, u: Update{Source: SourceCatalog, Package: "zoom", Version: "6.1", Classification: ClassSecurity, FirstSeen: june10}, now: june10,
			want: want{action: ActionNotApproved},
		},
		{
			name: "rollback of the installed version",
			node: pilotNode, u: Update{Source: SourceApt, Package: "libfoo1", Version: "2.2-1", InstalledVersion: "2.1-1", Classification: ClassSecurity}, now: june10,
			want: want{action: ActionRollback, at: "2026-06-10T10:00:00Z", rule: "rollbacks[0]",
				reason: "pilot: rollbacks[0] orders libfoo1 2.1-1 out of this ring; rolling back the installed version: crashes printing"},
		},
		{
			name: "rollback order keeps its version from being installed",
			node: broadNode, u: sec("libfoo1", "2.1-1", time.Time{}), now: june10,
			want: want{action: ActionDenied, rule: "rollbacks[0]", reason: "denied by rollbacks[0] (libfoo1 2.1-1): crashes printing"},
		},
		{
			name: "rollback order limited to rings",
			node: labNode, u: Update{Source: SourceApt, Package: "libfoo1", Version: "2.2-1", InstalledVersion: "2.1-1", Classification: ClassSecurity, FirstSeen: june10}, now: june10,
			want: want{action: ActionInstallNow},
		},
		{
			name: "paused ring, overlapping pauses chain",
			node: labNode, u: sec("bash", "5.2-2", june10), now: at("2026-07-05T00:00:00Z"),
			want: want{action: ActionPaused, at: "2026-07-20T00:00:00Z", rule: "pauses[0]", reason: "lab: paused until 2026-07-20 00:00 UTC: lab move"},
		},
		{
			name: "pause expired",
			node: labNode, u: sec("bash", "5.2-2", june10), now: at("2026-07-20T00:00:00Z"),
			want: want{action: ActionInstallNow, at: "2026-07-20T00:00:00Z"},
		},
		{
			name: "pause not yet started",
			node: labNode, u: sec("bash", "5.2-2", june10), now: at("2026-06-30T23:59:00Z"),
			want: want{action: ActionInstallNow},
		},
		{
			name: "gate without reports",
			node: pilotNode, u: sec("bash", "5.2-2", june10.Add(-5*24*time.Hour)), fleet: func(Update) FleetStats { return nil }, now: june10,
			want: want{action: ActionWaitGate, rule: "rings[1].gates[0]",
				reason: "pilot: waiting for ring lab: 0 of 0 nodes reported (0 succeeded, 0 failed, 0% success); needs 90% success over at least 2; no node of ring lab is known here; with too few reports this gate waits (too_few_reports: wait)"},
		},
		{
			name: "gate with too few nodes",
			node: pilotNode, u: sec("bash", "5.2-2", june10.Add(-5*24*time.Hour)), now: june10,
			fleet: func(u Update) FleetStats { return FleetStats{"lab": {u.Key(): {Succeeded: 1, Total: 5}}} },
			want:  want{action: ActionWaitGate, reason: "pilot: waiting for ring lab: 1 of 5 nodes reported (1 succeeded, 0 failed, 100% success); needs 90% success over at least 2; with too few reports this gate waits (too_few_reports: wait)"},
		},
		{
			name: "gate with too many failures",
			node: pilotNode, u: sec("bash", "5.2-2", june10.Add(-5*24*time.Hour)), now: june10,
			fleet: func(u Update) FleetStats { return FleetStats{"lab": {u.Key(): {Succeeded: 3, Failed: 1, Total: 5}}} },
			want:  want{action: ActionWaitGate, reason: "pilot: waiting for ring lab: 4 of 5 nodes reported (3 succeeded, 1 failed, 75% success); needs 90% success over at least 2"},
		},
		{
			name: "gate counts only the same update",
			node: pilotNode, u: sec("bash", "5.2-2", june10.Add(-5*24*time.Hour)), now: june10,
			fleet: func(u Update) FleetStats {
				return FleetStats{"lab": {UpdateKey{Source: SourceApt, Package: "bash", Version: "5.2-1"}: {Succeeded: 5, Total: 5}}}
			},
			want: want{action: ActionWaitGate},
		},
		{
			name: "deferral, then the next window",
			node: pilotNode, u: sec("bash", "5.2-2", at("2026-06-09T10:00:00Z")), now: june10,
			want: want{action: ActionWaitDeferral, at: "2026-06-12T00:00:00Z", window: "nightly", rule: "rings[1].defer",
				reason: "pilot: waiting: deferral ends in 1d (2026-06-11 10:00 UTC); then due 2026-06-12 00:00 UTC in window nightly (02:00 Europe/Berlin)"},
		},
		{
			name: "first seen unknown counts as now",
			node: pilotNode, u: sec("bash", "5.2-2", time.Time{}), now: june10,
			want: want{action: ActionWaitDeferral, at: "2026-06-13T00:00:00Z", window: "nightly",
				reason: "pilot: waiting: deferral ends in 2d (2026-06-12 10:00 UTC); then due 2026-06-13 00:00 UTC in window nightly (02:00 Europe/Berlin)"},
		},
		{
			name: "deferral over, waiting for the window",
			node: pilotNode, u: sec("bash", "5.2-2", at("2026-06-07T10:00:00Z")), now: june10,
			want: want{action: ActionInstallAt, at: "2026-06-11T00:00:00Z", window: "nightly", rule: "windows[0]",
				reason: "pilot: due 2026-06-11 00:00 UTC in window nightly (02:00 Europe/Berlin)"},
		},
		{
			name: "inside the window",
			node: pilotNode, u: sec("bash", "5.2-2", at("2026-06-07T10:00:00Z")), now: at("2026-06-11T01:00:00Z"),
			want: want{action: ActionInstallNow, at: "2026-06-11T01:00:00Z", window: "nightly", rule: "auto_approve[0]",
				reason: "pilot: approved by auto_approve[0] (security, high); in window nightly until 2026-06-11 04:00 UTC"},
		},
		{
			name: "deadline passed: install outside windows",
			node: pilotNode, u: sec("bash", "5.2-2", at("2026-05-30T10:00:00Z")), now: june10,
			want: want{action: ActionInstallNow, at: "2026-06-10T10:00:00Z", rule: "rings[1].deadline",
				reason: "pilot: approved by auto_approve[0] (security, high); deadline 2026-06-09 10:00 UTC has passed, installing outside maintenance windows"},
		},
		{
			name: "deadline comes before the next window",
			node: pilotNode, u: sec("bash", "5.2-2", at("2026-05-31T12:00:00Z")), now: june10,
			want: want{action: ActionInstallAt, at: "2026-06-10T12:00:00Z", rule: "rings[1].deadline",
				reason: "pilot: due 2026-06-10 12:00 UTC at the ring's install deadline"},
		},
		{
			name: "block window overrides an open allow window",
			node: pilotNode, u: sec("bash", "5.2-2", at("2026-12-01T00:00:00Z")), now: at("2026-12-24T01:00:00Z"),
			want: want{action: ActionWaitWindow, at: "2027-01-03T00:00:00Z", window: "freeze", rule: "windows[2]",
				reason: "pilot: blocked by window freeze until 2027-01-03 00:00 UTC; then due 2027-01-03 00:00 UTC at the ring's install deadline, after block window freeze"},
		},
		{
			name: "block window overrides an open allow window, no deadline",
			node: broadNode, u: sec("bash", "5.2-2", at("2026-12-01T00:00:00Z")), now: at("2026-12-24T07:45:00Z"),
			want: want{action: ActionWaitWindow, at: "2027-01-03T07:30:00Z", window: "freeze", rule: "windows[2]",
				reason: "broad: blocked by window freeze until 2027-01-03 00:00 UTC; then due 2027-01-03 07:30 UTC in window ny-nightly (02:30 America/New_York), after block window freeze"},
		},
		{
			name: "block window overrides the deadline",
			node: pilotNode, u: sec("bash", "5.2-2", at("2026-11-01T00:00:00Z")), now: at("2026-12-24T12:00:00Z"),
			want: want{action: ActionWaitWindow, at: "2027-01-03T00:00:00Z", window: "freeze", rule: "windows[2]"},
		},
		{
			name: "deferral ending inside a block window",
			node: pilotNode, u: sec("bash", "5.2-2", at("2026-12-22T00:00:00Z")), now: at("2026-12-18T12:00:00Z"),
			want:  want{action: ActionWaitGate},
			fleet: func(Update) FleetStats { return nil },
		},
		{
			name: "deferral ending inside a block window, gates met",
			node: pilotNode, u: sec("bash", "5.2-2", at("2026-12-19T00:00:00Z")), now: at("2026-12-19T12:00:00Z"),
			want: want{action: ActionWaitDeferral, at: "2027-01-03T00:00:00Z",
				reason: "pilot: waiting: deferral ends in 1d12h (2026-12-21 00:00 UTC); then due 2027-01-03 00:00 UTC at the ring's install deadline, after block window freeze"},
		},
		{
			name: "new york window on the spring forward night opens at 03:30 EDT",
			node: broadNode, u: sec("bash", "5.2-2", at("2026-02-01T00:00:00Z")), now: at("2026-03-08T05:00:00Z"),
			want: want{action: ActionInstallAt, at: "2026-03-08T07:30:00Z", window: "ny-nightly", rule: "windows[1]",
				reason: "broad: due 2026-03-08 07:30 UTC in window ny-nightly (03:30 America/New_York)"},
		},
		{
			name: "new york window on the fall back day is in EST",
			node: broadNode, u: sec("bash", "5.2-2", at("2026-10-01T00:00:00Z")), now: at("2026-11-01T07:45:00Z"),
			want: want{action: ActionInstallNow, window: "ny-nightly", at: "2026-11-01T07:45:00Z",
				reason: "broad: approved by auto_approve[0] (security, high); in window ny-nightly until 2026-11-01 08:30 UTC"},
		},
		{
			name: "new york window after it closed",
			node: broadNode, u: sec("bash", "5.2-2", at("2026-10-01T00:00:00Z")), now: at("2026-11-01T08:30:00Z"),
			want: want{action: ActionInstallAt, window: "ny-nightly", at: "2026-11-02T07:30:00Z"},
		},
		{
			name: "broad gate uses pilot numbers",
			node: broadNode, u: sec("bash", "5.2-2", at("2026-05-01T00:00:00Z")), now: june10,
			fleet: func(u Update) FleetStats { return FleetStats{"pilot": {u.Key(): {Succeeded: 9, Total: 40}}} },
			want:  want{action: ActionWaitGate, rule: "rings[2].gates[0]", reason: "broad: waiting for ring pilot: 9 of 40 nodes reported (9 succeeded, 0 failed, 100% success); needs 95% success over at least 10; with too few reports this gate waits (too_few_reports: wait)"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fleet := goodFleet(tc.u)
			if tc.fleet != nil {
				fleet = tc.fleet(tc.u)
			}
			ds := Evaluate(p, tc.node, []Update{tc.u}, fleet, tc.now)
			if len(ds) != 1 {
				t.Fatalf("got %d decisions", len(ds))
			}
			d := ds[0]
			if d.Update != tc.u {
				t.Errorf("decision for %+v, want %+v", d.Update, tc.u)
			}
			if d.Action != tc.want.action {
				t.Fatalf("action = %s (%s; %s), want %s", d.Action, d.Reason, d.Rule, tc.want.action)
			}
			var wantAt time.Time
			if tc.want.at != "" {
				wantAt = mustTime(t, tc.want.at)
			}
			if tc.want.at != "" && !d.At.Equal(wantAt) {
				t.Errorf("at = %v, want %v", d.At.UTC(), wantAt)
			}
			if tc.want.at == "" && (d.Action == ActionDenied || d.Action == ActionPinned || d.Action == ActionNotApproved || d.Action == ActionExpired || d.Action == ActionWaitGate) && !d.At.IsZero() {
				t.Errorf("at = %v, want zero for %s", d.At, d.Action)
			}
			if d.Window != tc.want.window && (tc.want.window != "" || d.Action != ActionInstallNow) {
				t.Errorf("window = %q, want %q", d.Window, tc.want.window)
			}
			if tc.want.rule != "" && d.Rule != tc.want.rule {
				t.Errorf("rule = %q, want %q", d.Rule, tc.want.rule)
			}
			if tc.want.reason != "" && d.Reason != tc.want.reason {
				t.Errorf("reason:\n got %s\nwant %s", d.Reason, tc.want.reason)
			}
			if d.Reason == "" {
				t.Errorf("empty reason")
			}
		})
	}
}

func TestEvaluateManyUpdatesKeepsOrder(t *testing.T) {
	t.Parallel()
	p := mustParse(t, evalPolicy)
	now := mustTime(t, "2026-06-10T10:00:00Z")
	ups := []Update{sec("a", "1", now), sec("openssl", "3.0.1", now), sec("c", "3", now)}
	ds := Evaluate(p, labNode, ups, nil, now)
	if len(ds) != 3 || ds[0].Update.Package != "a" || ds[1].Action != ActionDenied || ds[2].Update.Package != "c" {
		t.Fatalf("decisions = %+v", ds)
	}
	for _, d := range ds {
		if d.Ring != "lab" {
			t.Errorf("ring = %q", d.Ring)
		}
	}
	again := Evaluate(p, labNode, ups, nil, now)
	for i := range ds {
		if ds[i] != again[i] {
			t.Errorf("Evaluate is not deterministic: %+v vs %+v", ds[i], again[i])
		}
	}
}

func TestEvaluateUnvalidatedPolicy(t *testing.T) {
	t.Parallel()
	now := mustTime(t, "2026-06-10T10:00:00Z")
	p := &Policy{Schema: 1, Expires: now.Add(time.Hour), Rings: []Ring{{Name: "all", Default: true}},
		AutoApprove: []AutoApproval{{Packages: []string{"*"}}}}
	ds := Evaluate(p, labNode, []Update{sec("a", "1", now)}, nil, now)
	if ds[0].Action != ActionInstallNow || ds[0].Ring != "all" {
		t.Fatalf("Go-built policy: %+v", ds[0])
	}
	bad := &Policy{Schema: 1, Rings: []Ring{{Name: "all"}}}
	ds = Evaluate(bad, labNode, []Update{sec("a", "1", now)}, nil, now)
	if ds[0].Action != ActionExpired || !strings.Contains(ds[0].Reason, "policy unusable") {
		t.Fatalf("invalid policy: %+v", ds[0])
	}
	ds = Evaluate(nil, labNode, []Update{sec("a", "1", now)}, nil, now)
	if ds[0].Action != ActionExpired {
		t.Fatalf("nil policy: %+v", ds[0])
	}
}

func TestNextWindowCutShortByBlock(t *testing.T) {
	t.Parallel()
	p := mustParse(t, base+`windows:
  - {name: late, cron: "0 22 * * *", duration: 4h, tz: UTC}
  - {name: freeze, action: block, cron: "0 0 20 12 *", duration: 14d, tz: UTC}
`)
	start, end, name, ok := p.NextWindow("broad", mustTime(t, "2026-12-19T21:00:00Z"))
	if !ok || name != "late" || !start.Equal(mustTime(t, "2026-12-19T22:00:00Z")) || !end.Equal(mustTime(t, "2026-12-20T00:00:00Z")) {
		t.Fatalf("NextWindow = [%v, %v) %q %v, want [22:00, 00:00) late", start, end, name, ok)
	}
	start, _, _, _ = p.NextWindow("broad", mustTime(t, "2026-12-20T00:00:00Z"))
	if !start.Equal(mustTime(t, "2027-01-03T00:00:00Z")) {
		t.Fatalf("NextWindow during freeze starts %v, want the rest of the 2027-01-02 22:00 window at the freeze end", start)
	}
}

func TestRollbacks(t *testing.T) {
	t.Parallel()
	p := mustParse(t, evalPolicy)
	now := mustTime(t, "2026-06-10T10:00:00Z")
	node := pilotNode
	node.Installed = map[string]string{"libfoo1": "2.1-1", "bash": "5.2-1", "libbar": "2.1-1"}
	ds := Rollbacks(p, node, now)
	if len(ds) != 1 || ds[0].Update.Package != "libfoo1" || ds[0].Action != ActionRollback || ds[0].Ring != "pilot" {
		t.Fatalf("Rollbacks = %+v", ds)
	}
	labNodeInstalled := labNode
	labNodeInstalled.Installed = node.Installed
	if ds := Rollbacks(p, labNodeInstalled, now); len(ds) != 0 {
		t.Fatalf("lab is not in the order's rings: %+v", ds)
	}
	if ds := Rollbacks(p, node, mustTime(t, "2027-07-01T00:00:00Z")); len(ds) != 0 {
		t.Fatalf("expired policy orders nothing: %+v", ds)
	}
}

func TestInWindowAndNextWindow(t *testing.T) {
	t.Parallel()
	p := mustParse(t, evalPolicy)
	at := func(s string) time.Time { return mustTime(t, s) }
	tests := []struct {
		name, ring, now  string
		inName           string
		inOK             bool
		start, end, next string // NextWindow; start "" means none
	}{
		{"pilot outside", "pilot", "2026-06-10T10:00:00Z", "", false, "2026-06-11T00:00:00Z", "2026-06-11T04:00:00Z", "nightly"},
		{"pilot inside", "pilot", "2026-06-11T03:00:00Z", "nightly", true, "2026-06-11T03:00:00Z", "2026-06-11T04:00:00Z", "nightly"},
		{"pilot in freeze", "pilot", "2026-12-24T01:00:00Z", "freeze", false, "2027-01-03T01:00:00Z", "2027-01-03T05:00:00Z", "nightly"},
		{"lab has no allow windows", "lab", "2026-06-10T10:00:00Z", "", true, "", "", ""},
		{"lab in freeze", "lab", "2026-12-25T10:00:00Z", "freeze", false, "", "", ""},
		{"broad spring forward", "broad", "2026-03-08T07:45:00Z", "ny-nightly", true, "2026-03-08T07:45:00Z", "2026-03-08T08:30:00Z", "ny-nightly"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			name, ok := p.InWindow(tc.ring, at(tc.now))
			if name != tc.inName || ok != tc.inOK {
				t.Errorf("InWindow = %q %v, want %q %v", name, ok, tc.inName, tc.inOK)
			}
			start, end, wname, ok := p.NextWindow(tc.ring, at(tc.now))
			if tc.start == "" {
				if ok {
					t.Errorf("NextWindow = %v %v %q, want none", start, end, wname)
				}
				return
			}
			if !ok || !start.Equal(at(tc.start)) || !end.Equal(at(tc.end)) || wname != tc.next {
				t.Errorf("NextWindow = [%v, %v) %q %v, want [%s, %s) %q", start.UTC(), end.UTC(), wname, ok, tc.start, tc.end, tc.next)
			}
		})
	}
}
