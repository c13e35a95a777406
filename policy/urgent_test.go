package policy

import (
	"strings"
	"testing"
	"time"
)

const urgentPolicy = `
schema: 1
expires: 2030-01-01T00:00:00Z
rings:
  - name: broad
    default: true
    defer: 7d
auto_approve:
  - classifications: [security]
urgent:
  - name: kev-or-critical
    kev: true
    min_severity: critical
    no_deferral: true
    reboot_deadline: 24h
`

func TestUrgentRule(t *testing.T) {
	p := mustParse(t, urgentPolicy)
	now := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	first := now.Add(-time.Hour)
	ups := []Update{
		{Source: "apt", Package: "libfoo1", Version: "1.2-1", Classification: "security", Severity: "high", KEV: true, FirstSeen: first},
		{Source: "apt", Package: "libbar1", Version: "2.1-1", Classification: "security", Severity: "critical", FirstSeen: first},
		{Source: "apt", Package: "libbaz1", Version: "3.1-1", Classification: "security", Severity: "high", FirstSeen: first},
		{Source: "apt", Package: "tool", Version: "4.1-1", Classification: "other", Severity: "low", FirstSeen: first},
	}
	ds := Evaluate(p, NodeFacts{NodeID: "n1"}, ups, FleetStats{}, now)
	want := []struct {
		action Action
		rule   string
		reason string
	}{
		{ActionInstallNow, "urgent[0]", "urgent[0] (kev-or-critical: fixes a known exploited vulnerability (KEV))"},
		{ActionInstallNow, "urgent[0]", "fixes a critical vulnerability"},
		{ActionWaitDeferral, "rings[0].defer", "deferral ends in"},
		{ActionNotApproved, "approve", "not approved"},
	}
	for i, w := range want {
		d := ds[i]
		if d.Action != w.action || d.Rule != w.rule || !strings.Contains(d.Reason, w.reason) {
			t.Errorf("%s: %s %s %q, want %s %s containing %q", d.Update.Package, d.Action, d.Rule, d.Reason, w.action, w.rule, w.reason)
		}
	}
	if p.Urgent[0].RebootDeadline.Std() != 24*time.Hour {
		t.Errorf("reboot_deadline %s", p.Urgent[0].RebootDeadline)
	}
	// The JSON form round-trips the section.
	raw, err := MarshalCanonical(p)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseJSON(raw, "policy.json")
	if err != nil || len(back.Urgent) != 1 || !back.Urgent[0].KEV || !back.Urgent[0].NoDeferral {
		t.Fatalf("JSON round trip: %v %+v", err, back)
	}
}

func TestUrgentRuleValidation(t *testing.T) {
	for src, want := range map[string]string{
		"urgent:\n  - name: x\n":                           "needs kev: true or min_severity",
		"urgent:\n  - kev: true\n    min_severity: huge\n": "'huge' is not a severity",
		"urgent:\n  - kev: true\n    rings: [nope]\n":      "nope",
	} {
		_, err := Parse([]byte(strings.SplitN(urgentPolicy, "urgent:", 2)[0]+src), "policy.yaml")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", src, err, want)
		}
	}
}
