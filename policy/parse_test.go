package policy

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

const examplePath = "../docs/policy.example.yaml"

func readExample(t testing.TB) []byte {
	t.Helper()
	data, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatalf("read example policy: %v", err)
	}
	return data
}

func mustParse(t testing.TB, src string) *Policy {
	t.Helper()
	p, err := Parse([]byte(src), "policy.yaml")
	if err != nil {
		t.Fatalf("Parse:\n%v", err)
	}
	return p
}

func TestExamplePolicyValidates(t *testing.T) {
	t.Parallel()
	p, err := Parse(readExample(t), "policy.example.yaml")
	if err != nil {
		t.Fatalf("docs/policy.example.yaml does not validate:\n%v", err)
	}
	var names []string
	for _, r := range p.Rings {
		names = append(names, r.Name)
	}
	if got := strings.Join(names, ","); got != "lab,pilot,broad" {
		t.Errorf("rings = %s, want lab,pilot,broad", got)
	}
	if r, _ := p.Ring("broad"); !r.Default || r.Defer.Std() != 7*24*time.Hour {
		t.Errorf("broad = %+v, want the default ring deferring 7d", r)
	}
	if p.PeerSharing.UploadRate.BytesPerSecond() != 8_000_000 {
		t.Errorf("upload rate = %d", p.PeerSharing.UploadRate)
	}
	if w, ok := p.Window("year-end-freeze"); !ok || w.Action != WindowBlock {
		t.Errorf("year-end-freeze = %+v", w)
	}
}

// base is a small valid policy; cases below append to or replace parts of it.
const base = `schema: 1
expires: 2027-06-30T00:00:00Z
rings:
  - name: lab
    select: [{tags: [lab]}]
  - name: pilot
    select: [{percent: 10}]
    defer: 2d
  - name: broad
    default: true
    defer: 7d
`

func TestParseProblems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		src  string
		want []string // every formatted problem, in order
	}{
		{
			name: "duration in words",
			src: `schema: 1
expires: 2027-06-30T00:00:00Z
rings:
  - name: lab
    select: [{tags: [lab]}]
  - name: pilot
    select: [{percent: 10}]
  - name: broad
    default: true
    defer: 7 days
`,
			want: []string{`policy.yaml:10:12: rings[2].defer: '7 days' is not a duration; use e.g. 7d, 36h, 2w or 1d12h`},
		},
		{
			name: "unknown key with suggestion",
			src:  base + "    defered: 2d\n",
			want: []string{`policy.yaml:12:5: rings[2].defered: unknown key "defered" (did you mean "defer"?); allowed here: name, default, select, defer, deadline, gates, reboot, health_check`},
		},
		{
			name: "unknown top-level key",
			src:  base + "colour: blue\n",
			want: []string{`policy.yaml:12:1: colour: unknown key "colour"; allowed here: schema, name, expires, rings, windows, auto_approve, approve, deny, pins, expedite, pauses, rollbacks, reboot, peer_sharing, health_check, transactions, console, self_update, unmanaged, urgent, restart_services, reboot_hooks`},
		},
		{
			name: "repeated key",
			src:  base + "schema: 1\n",
			want: []string{`policy.yaml:12:1: schema: key "schema" appears again (first at line 1); write it once`},
		},
		{
			name: "missing schema, expires and default ring",
			src:  "rings:\n  - name: lab\n    select: [{tags: [lab]}]\n",
			want: []string{
				`policy.yaml:1:1: schema: is required; write schema: 1`,
				`policy.yaml:1:1: expires: is required: the time after which agents stop following this policy, e.g. 2027-01-31T00:00:00Z`,
				`policy.yaml:2:3: rings: no default ring: mark the ring for nodes no selector matches with default: true`,
			},
		},
		{
			name: "unsupported schema",
			src:  strings.Replace(base, "schema: 1", "schema: 2", 1),
			want: []string{`policy.yaml:1:9: schema: schema 2 is not supported; this patchring reads schema 1`},
		},
		{
			name: "date without time",
			src:  strings.Replace(base, "2027-06-30T00:00:00Z", "2027-06-30", 1),
			want: []string{`policy.yaml:2:10: expires: '2027-06-30' is not an RFC 3339 time; use e.g. 2027-01-31T00:00:00Z or 2027-01-31T00:00:00+01:00`},
		},
		{
			name: "duplicate ring and two defaults",
			src:  base + "  - name: broad\n    default: true\n",
			want: []string{
				`policy.yaml:12:11: rings[3].name: ring "broad" is already defined by rings[2]; ring names must be unique`,
				`policy.yaml:13:14: rings[3].default: rings[2] is already the default ring; only one ring may be`,
			},
		},
		{
			name: "ring nobody can join",
			src:  base + "  - name: orphan\n",
			want: []string{`policy.yaml:12:5: rings[3]: ring "orphan" has no select and is not the default ring, so no node can join it; add select: [{tags: [...]}]`},
		},
		{
			name: "bad ring name",
			src:  base + "  - name: Big Ring\n    select: [{tags: [x]}]\n",
			want: []string{`policy.yaml:12:11: rings[3].name: "Big Ring" is not a valid ring name; use 1-63 lowercase letters, digits, - or _, starting with a letter or digit`},
		},
		{
			name: "percentages out of range",
			src:  base + "  - name: x\n    select: [{percent: 120}, {percent: \"0%\"}, {percent: 1.234}]\n",
			want: []string{
				`policy.yaml:13:24: rings[3].select[0].percent: 120 is out of range; use a percentage above 0 and at most 100`,
				`policy.yaml:13:30: rings[3].select[1]: an empty selector matches nothing; set tags, hostname, site or percent`,
				`policy.yaml:13:57: rings[3].select[2].percent: 1.234 has too many decimals; use at most two (e.g. 12.5)`,
			},
		},
		{
			name: "tags not a list",
			src:  base + "  - name: x\n    select:\n      - tags: lab\n",
			want: []string{`policy.yaml:14:15: rings[3].select[0].tags: must be a list, e.g. [lab]; got 'lab'`},
		},
		{
			name: "gates",
			src: base + `    gates:
      - {ring: pilot, min_success: 95%, min_nodes: 0}
      - {ring: nope, min_success: 101}
      - {ring: broad, min_success: 90}
`,
			want: []string{
				`policy.yaml:13:52: rings[2].gates[0].min_nodes: 0 is out of range; use at least 1`,
				`policy.yaml:14:16: rings[2].gates[1].ring: unknown ring "nope"; rings are: lab, pilot, broad`,
				`policy.yaml:14:35: rings[2].gates[1].min_success: 101 is out of range; use a percentage from 0 to 100`,
				`policy.yaml:15:16: rings[2].gates[2].ring: a ring cannot wait for itself`,
			},
		},
		{
			name: "gate cycle",
			src: `schema: 1
expires: 2027-06-30T00:00:00Z
rings:
  - name: a
    select: [{tags: [a]}]
    gates: [{ring: b, min_success: 90}]
  - name: b
    default: true
    gates: [{ring: a, min_success: 90}]
`,
			want: []string{`policy.yaml:9:20: rings[1].gates[0].ring: gates wait for each other in a circle (a -> b -> a), so none of these rings would ever install`},
		},
		{
			name: "deadline shorter than defer",
			src:  base + "    deadline: 1d\n",
			want: []string{`policy.yaml:12:15: rings[2].deadline: 1d is shorter than defer (7d); the deadline counts from first seen too, so make it at least the deferral`},
		},
		{
			name: "windows",
			src: base + `windows:
  - name: nightly
    cron: "0 25 * * *"
    duration: 4h
    tz: Europe/Berlinn
    rings: [pilot, nope]
  - name: nightly
    action: maybe
    cron: "0 0 30 2 *"
    duration: 40d
  - name: w3
    cron: "@every 1h"
    tz: UTC
`,
			want: []string{
				`policy.yaml:14:11: windows[0].cron: "0 25 * * *" is not a valid cron expression (end of range (25) above maximum (23): 25); use 5 fields like "0 2 * * *" (minute hour day-of-month month day-of-week)`,
				`policy.yaml:16:9: windows[0].tz: unknown time zone "Europe/Berlinn"; use an IANA name like Europe/Berlin, America/New_York or UTC`,
				`policy.yaml:17:20: windows[0].rings[1]: unknown ring "nope"; rings are: lab, pilot, broad`,
				`policy.yaml:18:5: windows[1].tz: is required: an IANA time zone like Europe/Berlin or America/New_York, UTC, or Local for each node's own zone`,
				`policy.yaml:18:11: windows[1].name: window "nightly" is already defined by windows[0]; window names must be unique`,
				`policy.yaml:19:13: windows[1].action: 'maybe' is not a window action; use allow or block`,
				`policy.yaml:20:11: windows[1].cron: "0 0 30 2 *" never fires: no month has that day`,
				`policy.yaml:21:15: windows[1].duration: 40d is too long; a window may stay open at most 31d`,
				`policy.yaml:22:5: windows[2].duration: is required and must be above 0, e.g. 4h`,
				`policy.yaml:23:11: windows[2].cron: "@every 1h": @every is not tied to the clock; use 5 fields like "0 */6 * * *"`,
			},
		},
		{
			name: "pause longer than 35 days",
			src:  base + "pauses:\n  - {ring: broad, from: 2026-12-01T00:00:00Z, until: 2027-01-20T00:00:00Z}\n",
			want: []string{`policy.yaml:13:54: pauses[0].until: pauses 50d; a pause may last at most 35d (renew it by publishing a new policy)`},
		},
		{
			name: "pause ends before it starts and names no ring",
			src:  base + "pauses:\n  - {from: 2026-12-01T00:00:00Z, until: 2026-11-01T00:00:00Z}\n",
			want: []string{
				`policy.yaml:13:5: pauses[0].ring: is required: the name of a ring`,
				`policy.yaml:13:41: pauses[0].until: is not after from`,
			},
		},
		{
			name: "approvals",
			src: base + `auto_approve:
  - {}
  - {sources: [apt, deb], classifications: [urgent], min_severity: severe, rings: [qa]}
approve:
  - {version: "1.*"}
deny:
  - {package: openssl, version: "[abc"}
`,
			want: []string{
				`policy.yaml:13:5: auto_approve[0]: a rule with no criteria would approve everything; set sources, classifications, min_severity or packages (packages: ["*"] to approve all)`,
				`policy.yaml:14:21: auto_approve[1].sources[1]: 'deb' is not a source; use one of apt, catalog, dnf`,
				`policy.yaml:14:45: auto_approve[1].classifications[0]: 'urgent' is not a classification; use one of security, bugfix, enhancement, other`,
				`policy.yaml:14:68: auto_approve[1].min_severity: 'severe' is not a severity; use one of low, medium, high, critical`,
				`policy.yaml:14:84: auto_approve[1].rings[0]: unknown ring "qa"; rings are: lab, pilot, broad`,
				`policy.yaml:16:5: approve[0].package: is required: a package name or pattern`,
				`policy.yaml:18:33: deny[0].version: '[abc' is not a valid pattern; use * for any text, ? for one character, [...] for a set`,
			},
		},
		{
			name: "pins expedite rollbacks",
			src: base + `pins:
  - {package: pg, version: "15.*"}
  - {package: pg, version: "16.*", rings: [broad]}
expedite:
  - {package: "open*", version: "1.0"}
rollbacks:
  - {package: libfoo}
`,
			want: []string{
				`policy.yaml:14:15: pins[1].package: pg is already pinned by pins[0] in an overlapping set of rings; keep one pin per package and ring`,
				`policy.yaml:16:15: expedite[0].package: package 'open*' must be exact here, not a pattern`,
				`policy.yaml:18:5: rollbacks[0].version: is required: the version (or pattern) to leave`,
			},
		},
		{
			name: "reboot",
			src: base + `reboot:
  max_deferrals: yes
  defer_choices: [1h, 1h, 0s]
  allow_refuse: {rings: [qa]}
  active_hours: {start: "8:00", end: "18:00"}
  headless: {cron: "0 3 * * *", duration: 1h, tz: UTC, per: rack, max_concurrent: -1}
  user_restart: anyone
`,
			want: []string{
				`policy.yaml:13:18: reboot.max_deferrals: 'yes' is not a whole number; use e.g. 3`,
				`policy.yaml:14:23: reboot.defer_choices[1]: 1h is offered twice`,
				`policy.yaml:14:27: reboot.defer_choices[2]: must be above 0`,
				`policy.yaml:15:26: reboot.allow_refuse.rings[0]: unknown ring "qa"; rings are: lab, pilot, broad`,
				`policy.yaml:16:17: reboot.active_hours.tz: is required: an IANA time zone like Europe/Berlin, UTC, or Local for each node's own zone`,
				`policy.yaml:16:25: reboot.active_hours.start: '8:00' is not a time of day; use 24-hour HH:MM like 08:00`,
				`policy.yaml:17:61: reboot.headless.per: 'rack' is not a grouping; use site or tag:<pattern> (e.g. tag:rack-*)`,
				`policy.yaml:17:83: reboot.headless.max_concurrent: -1 is out of range; use 0 (no limit) or more`,
				`policy.yaml:18:17: reboot.user_restart: 'anyone' is not a choice; use session (the user at the machine may restart it) or none (only root and the admin group)`,
			},
		},
		{
			name: "ring reboot override needs choices",
			src:  base + "    reboot: {max_deferrals: 2, defer_choices: []}\n",
			want: []string{`policy.yaml:12:29: rings[2].reboot.max_deferrals: users may defer 2 times but defer_choices is empty; offer choices like [1h, 4h, 1d] or set max_deferrals: 0`},
		},
		{
			name: "peer sharing and health check",
			src: base + `peer_sharing: {enabled: "yes", upload_rate: 8MB, wan_rate: fast}
health_check: {command: /bin/true, timeout: 2h}
`,
			want: []string{
				`policy.yaml:12:25: peer_sharing.enabled: 'yes' is not a boolean; use true or false`,
				`policy.yaml:12:45: peer_sharing.upload_rate: '8MB' is not a rate; use e.g. 8MB/s, 512KiB/s, 100Mbit/s or unlimited`,
				`policy.yaml:12:60: peer_sharing.wan_rate: 'fast' is not a rate; use e.g. 8MB/s, 512KiB/s, 100Mbit/s or unlimited`,
				`policy.yaml:13:25: health_check.command: must be a list of program and arguments (no shell), e.g. [/usr/local/bin/check, --quick]; got '/bin/true'`,
				`policy.yaml:13:45: health_check.timeout: 2h is too long; use at most 1h`,
			},
		},
		{
			name: "self-update deadline too long",
			src:  base + "self_update: {health_deadline: 2h}\n",
			want: []string{`policy.yaml:12:32: self_update.health_deadline: 2h is too long; use at most 1h`},
		},
		{
			name: "self-update deadline too short",
			src:  base + "self_update: {health_deadline: 2s}\n",
			want: []string{`policy.yaml:12:32: self_update.health_deadline: 2s is too short for an agent to start, rejoin gossip and verify its policy; use at least 10s`},
		},
		{
			name: "self-update unknown key",
			src:  base + "self_update: {health_deadlin: 2m}\n",
			want: []string{`policy.yaml:12:15: self_update.health_deadlin: unknown key "health_deadlin" (did you mean "health_deadline"?); allowed here: health_deadline`},
		},
		{
			name: "transactions rules",
			src: base + `transactions:
  allow_remove: ["linux-image-*"]
  without_rolback: [tzdata]
`,
			want: []string{
				`policy.yaml:14:3: transactions.without_rolback: unknown key "without_rolback" (did you mean "without_rollback"?); allowed here: allow_remove, without_rollback`,
			},
		},
		{
			name: "transactions globs",
			src: base + `transactions:
  allow_remove: ["linux-image-[", ""]
  without_rollback: [tzdata]
`,
			want: []string{
				`policy.yaml:13:18: transactions.allow_remove[0]: 'linux-image-[' is not a valid pattern; use * for any text, ? for one character, [...] for a set`,
				`policy.yaml:13:35: transactions.allow_remove[1]: is required: a package glob, e.g. linux-image-*`,
			},
		},
		{
			name: "rings is not a list",
			src:  "schema: 1\nexpires: 2027-06-30T00:00:00Z\nrings: {lab: 1}\n",
			want: []string{`policy.yaml:3:8: rings: must be a list, e.g. [{name: pilot, ...}]; got a mapping`},
		},
		{
			name: "document is a list",
			src:  "- a\n- b\n",
			want: []string{`policy.yaml:1:1: the file must hold a mapping of policy keys (schema, expires, rings, ...), not a list`},
		},
		{
			name: "yaml syntax error",
			src:  "schema: 1\nrings: [a,\n",
			want: []string{`policy.yaml:2:1: YAML syntax: did not find expected node content`},
		},
		{
			name: "empty file",
			src:  "",
			want: []string{`policy.yaml: the file is empty; a policy needs at least schema, expires and rings`},
		},
		{
			name: "two documents",
			src:  base + "---\nschema: 1\n",
			want: []string{`policy.yaml:12:1: a second YAML document starts here; a policy file holds exactly one`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(tc.src), "policy.yaml")
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Parse error = %v, want a *ValidationError", err)
			}
			got := strings.Split(ve.Error(), "\n")
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			if len(ve.Problems) != len(tc.want) {
				t.Errorf("%d problems, want %d", len(ve.Problems), len(tc.want))
			}
		})
	}
}

func TestParseYAMLFeatures(t *testing.T) {
	t.Parallel()
	src := `schema: 1
expires: 2027-06-30T00:00:00+02:00
x-common: &ringdefaults
  defer: 2d
  deadline: 7d
rings:
  - name: lab
    select: [{tags: [lab]}]
  - <<: *ringdefaults
    name: broad
    default: true
    defer: 3d
`
	_, err := Parse([]byte(src), "p.yaml")
	if err == nil || !strings.Contains(err.Error(), `p.yaml:3:1: x-common: unknown key "x-common"`) {
		t.Fatalf("Parse = %v, want x-common rejected", err)
	}
	p := mustParse(t, `schema: 1
expires: 2027-06-30T00:00:00+02:00
rings:
  - &lab
    name: lab
    select: [{tags: [lab]}]
    defer: 2d
    deadline: 7d
  - <<: *lab
    name: broad
    default: true
    select: []
windows:
  - &w {name: a, cron: "0 2 * * *", duration: 1h, tz: UTC}
  - {<<: *w, name: b}
peer_sharing:
  enabled:
`)
	if r, _ := p.Ring("broad"); r.Deadline.Std() != 7*24*time.Hour || len(r.Select) != 0 || !r.Default {
		t.Errorf("merge key: broad = %+v", r)
	}
	if p.Expires.Location() != time.UTC || !p.Expires.Equal(mustTime(t, "2027-06-29T22:00:00Z")) {
		t.Errorf("expires = %v, want it in UTC", p.Expires)
	}
	if len(p.Windows) != 2 || p.Windows[1].Cron != "0 2 * * *" || p.Windows[1].Name != "b" {
		t.Errorf("merge key: windows = %+v", p.Windows)
	}
	if !p.PeerSharing.Enabled {
		t.Errorf("an empty value must keep the default (peer sharing enabled)")
	}
}

func TestParseAliasBomb(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("schema: 1\nexpires: 2027-06-30T00:00:00Z\nx0: &a0 [{name: r, default: true}]\n")
	for i := 1; i < 12; i++ {
		b.WriteString("x")
		b.WriteString(string(rune('0' + i%10)))
		b.WriteString(": &a")
		b.WriteString(strings.Repeat("x", i))
		b.WriteString(" [")
		for j := range 10 {
			if j > 0 {
				b.WriteString(", ")
			}
			if i == 1 {
				b.WriteString("*a0")
			} else {
				b.WriteString("*a" + strings.Repeat("x", i-1))
			}
		}
		b.WriteString("]\n")
	}
	b.WriteString("rings: *a" + strings.Repeat("x", 11) + "\n")
	_, err := Parse([]byte(b.String()), "bomb.yaml")
	if err == nil {
		t.Fatal("Parse accepted an alias bomb")
	}
}

func TestCanonicalJSON(t *testing.T) {
	t.Parallel()
	p, err := Parse(readExample(t), "example")
	if err != nil {
		t.Fatal(err)
	}
	b1, err := MarshalCanonical(p)
	if err != nil {
		t.Fatal(err)
	}
	q, err := ParseJSON(b1, "policy.json")
	if err != nil {
		t.Fatalf("ParseJSON(MarshalCanonical(example)):\n%v", err)
	}
	b2, err := MarshalCanonical(q)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b1, b2) {
		t.Fatalf("canonical form is not stable:\n%s\n%s", b1, b2)
	}
	// The same policy written differently gives the same bytes.
	reordered := mustParse(t, `rings:
  - {name: lab, select: [{tags: [lab]}], defer: 0s}
  - name: broad
    defer: 168h
    default: true
expires: 2027-06-30T02:00:00+02:00
schema: 1
`)
	plain := mustParse(t, `schema: 1
expires: 2027-06-30T00:00:00Z
rings:
  - name: lab
    select:
      - tags: [lab]
  - name: broad
    default: true
    defer: 1w
`)
	c1, _ := MarshalCanonical(reordered)
	c2, _ := MarshalCanonical(plain)
	if !bytes.Equal(c1, c2) {
		t.Fatalf("equal policies, different bytes:\n%s\n%s", c1, c2)
	}
	want := `{"schema":1,"expires":"2027-06-30T00:00:00Z","rings":[{"name":"lab","select":[{"tags":["lab"]}],"defer":"0s"},{"name":"broad","default":true,"defer":"7d"}],` +
		`"reboot":{"notify_ahead":"15m","defer_choices":["1h","4h","1d"],"max_deferrals":3,"deadline":"2d","grace":"4h"},"peer_sharing":{"enabled":true,"upload_rate":"unlimited","wan_rate":"unlimited"}}`
	if string(c2) != want {
		t.Errorf("canonical bytes:\n%s\nwant:\n%s", c2, want)
	}
}

func TestParseJSONRejects(t *testing.T) {
	t.Parallel()
	good, err := MarshalCanonical(mustParse(t, base))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, src, want string
	}{
		{"unknown field", strings.Replace(string(good), `"schema":1`, `"schema":1,"extra":true`, 1), `unknown field "extra"`},
		{"trailing data", string(good) + "{}", "JSON syntax"},
		{"wrong type", strings.Replace(string(good), `"schema":1`, `"schema":"1"`, 1), `schema: is JSON string; expected int`},
		{"bad duration", strings.Replace(string(good), `"defer":"2d"`, `"defer":"2 days"`, 1), `not a duration`},
		{"pause too long", strings.Replace(string(good), `"reboot"`, `"pauses":[{"ring":"broad","from":"2026-01-01T00:00:00Z","until":"2026-03-01T00:00:00Z"}],"reboot"`, 1), `pauses[0].until: pauses 59d; a pause may last at most 35d`},
		{"not json", "schema: 1", "JSON syntax"},
		{"empty", "", "empty document"},
		{"expired field missing", strings.Replace(string(good), `"expires":"2027-06-30T00:00:00Z",`, "", 1), "expires: is required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseJSON([]byte(tc.src), "policy.json")
			var ve *ValidationError
			if !errors.As(err, &ve) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseJSON error = %v, want a *ValidationError containing %q", err, tc.want)
			}
		})
	}
}

func TestValidateGoBuiltPolicy(t *testing.T) {
	t.Parallel()
	p := &Policy{
		Schema:  1,
		Expires: mustTime(t, "2027-01-01T00:00:00Z"),
		Rings:   []Ring{{Name: "all", Default: true}},
		Windows: []Window{{Name: "w", Cron: "0 2 * * *", Duration: Duration(time.Hour), TZ: "Mars/Olympus"}},
	}
	err := p.Validate()
	if err == nil || !strings.Contains(err.Error(), `windows[0].tz: unknown time zone "Mars/Olympus"`) {
		t.Fatalf("Validate = %v", err)
	}
	p.Windows[0].TZ = "UTC"
	if err := p.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if name, ok := p.InWindow("all", mustTime(t, "2026-06-01T02:30:00Z")); !ok || name != "w" {
		t.Fatalf("InWindow = %q %v", name, ok)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(readExample(f))
	f.Add([]byte(base))
	f.Add([]byte("schema: 1\nrings: [a,\n"))
	f.Add([]byte(base + "windows:\n  - {name: n, cron: \"30 2 * * *\", duration: 3h, tz: America/New_York, action: block}\n"))
	now := mustTime(f, "2026-11-01T05:45:00Z")
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data, "fuzz.yaml")
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || len(ve.Problems) == 0 {
				t.Fatalf("Parse error %v is not a *ValidationError with problems", err)
			}
			return
		}
		b, err := MarshalCanonical(p)
		if err != nil {
			t.Fatalf("MarshalCanonical of a parsed policy: %v", err)
		}
		q, err := ParseJSON(b, "fuzz.json")
		if err != nil {
			t.Fatalf("ParseJSON(MarshalCanonical(p)): %v\n%s", err, b)
		}
		b2, _ := MarshalCanonical(q)
		if !bytes.Equal(b, b2) {
			t.Fatalf("canonical bytes differ after a round trip:\n%s\n%s", b, b2)
		}
		facts := NodeFacts{NodeID: "n1", Hostname: "lab-1", Site: "hq", Tags: []string{"lab"}, Headless: true}
		ds := Evaluate(q, facts, []Update{{Source: SourceApt, Package: "openssl", Version: "3.0.1", Classification: ClassSecurity, FirstSeen: now.Add(-72 * time.Hour)}}, nil, now)
		if len(ds) != 1 || ds[0].Action == "" || ds[0].Reason == "" {
			t.Fatalf("Evaluate = %+v", ds)
		}
		_ = q.RebootRules(facts)
		for _, r := range q.Rings {
			q.NextWindow(r.Name, now)
		}
	})
}

func FuzzParseJSON(f *testing.F) {
	p, err := Parse(readExample(f), "example")
	if err != nil {
		f.Fatal(err)
	}
	b, _ := MarshalCanonical(p)
	f.Add(b)
	f.Add([]byte(`{"schema":1}`))
	f.Add([]byte(`{"schema":1,"expires":"2027-06-30T00:00:00Z","rings":[{"name":"a","default":true,"defer":"1d"}],"reboot":{},"peer_sharing":{}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseJSON(data, "fuzz.json")
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || len(ve.Problems) == 0 {
				t.Fatalf("ParseJSON error %v is not a *ValidationError with problems", err)
			}
			return
		}
		b, err := MarshalCanonical(p)
		if err != nil {
			t.Fatalf("MarshalCanonical: %v", err)
		}
		q, err := ParseJSON(b, "again.json")
		if err != nil {
			t.Fatalf("re-parse canonical: %v\n%s", err, b)
		}
		if b2, _ := MarshalCanonical(q); !bytes.Equal(b, b2) {
			t.Fatalf("canonical form not stable:\n%s\n%s", b, b2)
		}
	})
}

func TestTransactionsRules(t *testing.T) {
	src := "schema: 1\nexpires: 2030-01-01T00:00:00Z\nrings: [{name: all, default: true, defer: 0d}]\n" +
		"transactions:\n  allow_remove: [\"linux-image-*\", oldplugin]\n  without_rollback: [tzdata]\n"
	p, err := Parse([]byte(src), "policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for pkg, want := range map[string]bool{"linux-image-6.1.0-9-amd64": true, "oldplugin": true, "oldplugin2": false, "libc6": false} {
		if got := p.RemovalAllowed(pkg); got != want {
			t.Errorf("RemovalAllowed(%s) = %v, want %v", pkg, got, want)
		}
	}
	if !p.RollbackOptional("tzdata") || p.RollbackOptional("perl") {
		t.Errorf("RollbackOptional: tzdata %v, perl %v", p.RollbackOptional("tzdata"), p.RollbackOptional("perl"))
	}
	empty, err := Parse([]byte("schema: 1\nexpires: 2030-01-01T00:00:00Z\nrings: [{name: all, default: true, defer: 0d}]\n"), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if empty.RemovalAllowed("anything") || empty.RollbackOptional("anything") {
		t.Error("a policy without transaction rules allows removals or updates without rollback")
	}
}
