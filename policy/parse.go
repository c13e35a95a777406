package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// MaxPolicySize bounds the size of a policy document Parse and ParseJSON
// accept.
const MaxPolicySize = 4 << 20

// Parse reads a policy written in YAML. name is the file name used in error
// messages. Every problem found is reported at once in a *ValidationError,
// each with its line, column and field path:
//
//	policy.yaml:14:12: rings[2].defer: '7 days' is not a duration; use e.g. 7d
func Parse(data []byte, name string) (*Policy, error) {
	ps := &problems{pos: map[string][2]int{}, bad: map[string]bool{}}
	if len(data) > MaxPolicySize {
		ps.add(0, 0, "", "file is %d bytes; a policy may have at most %d", len(data), MaxPolicySize)
		return nil, ps.err(name)
	}
	root, ok := readYAML(data, ps)
	if !ok {
		return nil, ps.err(name)
	}
	if root = deref(root); root.Kind != yaml.MappingNode {
		ps.add(root.Line, root.Column, "", "the file must hold a mapping of policy keys (schema, expires, rings, ...), not %s", kindName(root))
		return nil, ps.err(name)
	}
	d := &decoder{ps: ps, budget: decodeBudget}
	p := d.policy(root)
	validate(p, ps)
	if err := ps.err(name); err != nil {
		return nil, err
	}
	p.valid = true
	return p, nil
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// readYAML parses exactly one YAML document and returns its top node.
func readYAML(data []byte, ps *problems) (*yaml.Node, bool) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			ps.add(0, 0, "", "the file is empty; a policy needs at least schema, expires and rings")
			return nil, false
		}
		yamlProblem(err, ps)
		return nil, false
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		ps.add(extra.Line, extra.Column, "", "a second YAML document starts here; a policy file holds exactly one")
		return nil, false
	} else if !errors.Is(err, io.EOF) {
		yamlProblem(err, ps)
		return nil, false
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		ps.add(doc.Line, doc.Column, "", "the file holds no YAML mapping")
		return nil, false
	}
	return doc.Content[0], true
}

func yamlProblem(err error, ps *problems) {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		ps.add(line, 1, "", "YAML syntax: %s", m[2])
		return
	}
	ps.add(0, 0, "", "YAML syntax: %s", strings.TrimPrefix(msg, "yaml: "))
}

// decoder turns YAML nodes into the policy structure, reporting every type
// mistake and unknown key it meets and recording where each path was.
type decoder struct {
	ps *problems
	// budget bounds the work of walking the document: aliases can make a
	// small file describe a huge tree.
	budget int
	spent  bool
}

// decodeBudget is how many mapping entries and list items one document may
// have, counting every expansion of an alias.
const decodeBudget = 100_000

// spend takes n from the budget and reports whether work may go on.
func (d *decoder) spend(n *yaml.Node, k int) bool {
	d.budget -= k
	if d.budget >= 0 {
		return true
	}
	if !d.spent {
		d.spent = true
		d.errf(n, "", "the document is too large once aliases are expanded (more than %d entries)", decodeBudget)
	}
	return false
}

// field decodes the value of one key of a mapping.
type field struct {
	key string
	fn  func(v *yaml.Node, path string)
}

func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "empty"
		}
		return fmt.Sprintf("'%s'", n.Value)
	}
	return "unexpected YAML"
}

func (d *decoder) errf(n *yaml.Node, path, format string, args ...any) {
	d.ps.add(n.Line, n.Column, path, format, args...)
}

func (d *decoder) mark(n *yaml.Node, path string) {
	if _, ok := d.ps.pos[path]; !ok {
		d.ps.pos[path] = [2]int{n.Line, n.Column}
	}
}

// pairs returns the key/value pairs of a mapping with merge keys (<<)
// expanded; keys written in the mapping itself win over merged ones.
func (d *decoder) pairs(n *yaml.Node, path string, depth int) [][2]*yaml.Node {
	var own, merged [][2]*yaml.Node
	if !d.spend(n, len(n.Content)/2) {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], deref(n.Content[i+1])
		if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
			if depth > 10 {
				d.errf(k, path, "merge keys (<<) nest too deep")
				continue
			}
			var srcs []*yaml.Node
			switch {
			case v == nil:
			case v.Kind == yaml.MappingNode:
				srcs = []*yaml.Node{v}
			case v.Kind == yaml.SequenceNode:
				for _, s := range v.Content {
					srcs = append(srcs, deref(s))
				}
			}
			for _, s := range srcs {
				if s == nil || s.Kind != yaml.MappingNode {
					d.errf(k, path, "<< must refer to a mapping (or a list of them)")
					continue
				}
				merged = append(merged, d.pairs(s, path, depth+1)...)
			}
			if len(srcs) == 0 {
				d.errf(k, path, "<< must refer to a mapping (or a list of them)")
			}
			continue
		}
		own = append(own, [2]*yaml.Node{k, v})
	}
	seen := map[string]bool{}
	for _, kv := range own {
		seen[kv[0].Value] = true
	}
	for _, kv := range merged {
		if !seen[kv[0].Value] {
			own = append(own, kv)
			seen[kv[0].Value] = true
		}
	}
	return own
}

// object decodes a mapping whose keys must be among fields, reporting
// unknown and repeated keys.
func (d *decoder) object(n *yaml.Node, path string, fields ...field) {
	n = deref(n)
	if n == nil || isNull(n) {
		return
	}
	d.mark(n, path)
	if n.Kind != yaml.MappingNode {
		d.errf(n, path, "must be a mapping of %s, not %s", keyList(fields), kindName(n))
		return
	}
	kvs := d.pairs(n, path, 0)
	if !d.spend(n, len(kvs)) {
		return
	}
	first := map[string]*yaml.Node{}
	for _, kv := range kvs {
		k, v := kv[0], kv[1]
		if k.Kind != yaml.ScalarNode {
			d.errf(k, path, "keys must be plain words, not %s", kindName(k))
			continue
		}
		fp := joinPath(path, k.Value)
		if prev, dup := first[k.Value]; dup {
			d.errf(k, fp, "key %q appears again (first at line %d); write it once", k.Value, prev.Line)
			continue
		}
		first[k.Value] = k
		var f *field
		for i := range fields {
			if fields[i].key == k.Value {
				f = &fields[i]
				break
			}
		}
		if f == nil {
			msg := fmt.Sprintf("unknown key %q", k.Value)
			if s := suggest(k.Value, fields); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			d.errf(k, fp, "%s; allowed here: %s", msg, keyList(fields))
			continue
		}
		if v == nil {
			continue
		}
		d.mark(v, fp)
		if isNull(v) {
			continue // an empty value is the same as leaving the key out
		}
		f.fn(v, fp)
	}
}

func keyList(fields []field) string {
	keys := make([]string, len(fields))
	for i, f := range fields {
		keys[i] = f.key
	}
	return strings.Join(keys, ", ")
}

// suggest returns the allowed key closest to key when it looks like a typo.
func suggest(key string, fields []field) string {
	best, bestD := "", 3
	for _, f := range fields {
		if dist := editDistance(strings.ToLower(key), f.key); dist < bestD {
			best, bestD = f.key, dist
		}
	}
	return best
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c++
			}
			cur[j] = min(c, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// list decodes a sequence, calling each for every item with its path.
func (d *decoder) list(n *yaml.Node, path, example string, each func(i int, v *yaml.Node, path string)) {
	n = deref(n)
	if n.Kind != yaml.SequenceNode {
		d.errf(n, path, "must be a list, e.g. %s; got %s", example, kindName(n))
		return
	}
	if !d.spend(n, len(n.Content)) {
		return
	}
	for i, item := range n.Content {
		item = deref(item)
		ip := indexPath(path, i)
		d.mark(item, ip)
		each(i, item, ip)
	}
}

// scalar returns the text of a scalar node or reports that it is not one.
func (d *decoder) scalar(n *yaml.Node, path, what string) (string, bool) {
	n = deref(n)
	if n.Kind != yaml.ScalarNode {
		d.errf(n, path, "must be %s, not %s", what, kindName(n))
		return "", false
	}
	return n.Value, true
}

func (d *decoder) str(n *yaml.Node, path string) string {
	s, _ := d.scalar(n, path, "a single value")
	return s
}

func (d *decoder) strs(n *yaml.Node, path, example string) []string {
	var out []string
	d.list(n, path, example, func(_ int, v *yaml.Node, p string) {
		if s, ok := d.scalar(v, p, "a single value"); ok {
			out = append(out, s)
		}
	})
	return out
}

func (d *decoder) boolean(n *yaml.Node, path string) bool {
	s, ok := d.scalar(n, path, "true or false")
	if !ok {
		return false
	}
	switch strings.ToLower(s) {
	case "true":
		return true
	case "false":
		return false
	}
	d.errf(n, path, "'%s' is not a boolean; use true or false", s)
	return false
}

func (d *decoder) integer(n *yaml.Node, path string) int {
	s, ok := d.scalar(n, path, "a whole number")
	if !ok {
		return 0
	}
	v, err := strconv.ParseInt(strings.TrimSpace(s), 10, 32)
	if err != nil {
		d.errf(n, path, "'%s' is not a whole number; use e.g. 3", s)
		return 0
	}
	return int(v)
}

func (d *decoder) duration(n *yaml.Node, path string) Duration {
	s, ok := d.scalar(n, path, "a duration like 7d")
	if !ok {
		return 0
	}
	v, err := ParseDuration(strings.TrimSpace(s))
	if err != nil {
		d.errf(n, path, "'%s' is not a duration; use e.g. 7d, 36h, 2w or 1d12h", s)
		return 0
	}
	return Duration(v)
}

func (d *decoder) durations(n *yaml.Node, path string) []Duration {
	out := []Duration{} // an explicit empty list differs from none (inherit)
	d.list(n, path, "[1h, 4h, 1d]", func(_ int, v *yaml.Node, p string) {
		out = append(out, d.duration(v, p))
	})
	return out
}

// percent reads 12.5, "12.5%" or "12.5 %".
func (d *decoder) percent(n *yaml.Node, path string) float64 {
	s, ok := d.scalar(n, path, "a percentage like 10 or 12.5%")
	if !ok {
		return 0
	}
	num := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), "%"))
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || num == "" {
		d.errf(n, path, "'%s' is not a percentage; use e.g. 10 or 12.5%%", s)
		return math.NaN()
	}
	return v
}

func (d *decoder) timestamp(n *yaml.Node, path string) time.Time {
	s, ok := d.scalar(n, path, "a time like 2027-01-31T00:00:00Z")
	if !ok {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339, strings.TrimSpace(s))
	if err != nil {
		d.errf(n, path, "'%s' is not an RFC 3339 time; use e.g. 2027-01-31T00:00:00Z or 2027-01-31T00:00:00+01:00", s)
		return time.Time{}
	}
	return t
}

func (d *decoder) rate(n *yaml.Node, path string) Rate {
	s, ok := d.scalar(n, path, "a rate like 8MB/s")
	if !ok {
		return 0
	}
	r, err := ParseRate(strings.TrimSpace(s))
	if err != nil {
		d.errf(n, path, "'%s' is not a rate; use e.g. 8MB/s, 512KiB/s, 100Mbit/s or unlimited", s)
		return 0
	}
	return r
}

// Field constructors.

func (d *decoder) fStr(key string, dst *string) field {
	return field{key, func(v *yaml.Node, p string) { *dst = d.str(v, p) }}
}

func (d *decoder) fStrs(key, example string, dst *[]string) field {
	return field{key, func(v *yaml.Node, p string) { *dst = d.strs(v, p, example) }}
}

func (d *decoder) fBool(key string, dst *bool) field {
	return field{key, func(v *yaml.Node, p string) { *dst = d.boolean(v, p) }}
}

func (d *decoder) fInt(key string, dst *int) field {
	return field{key, func(v *yaml.Node, p string) { *dst = d.integer(v, p) }}
}

func (d *decoder) fIntPtr(key string, dst **int) field {
	return field{key, func(v *yaml.Node, p string) { i := d.integer(v, p); *dst = &i }}
}

func (d *decoder) fDur(key string, dst *Duration) field {
	return field{key, func(v *yaml.Node, p string) { *dst = d.duration(v, p) }}
}

func (d *decoder) fDurPtr(key string, dst **Duration) field {
	return field{key, func(v *yaml.Node, p string) { x := d.duration(v, p); *dst = &x }}
}

func (d *decoder) fDurs(key string, dst *[]Duration) field {
	return field{key, func(v *yaml.Node, p string) { *dst = d.durations(v, p) }}
}

func (d *decoder) fPercent(key string, dst *float64) field {
	return field{key, func(v *yaml.Node, p string) { *dst = d.percent(v, p) }}
}

func (d *decoder) fTime(key string, dst *time.Time) field {
	return field{key, func(v *yaml.Node, p string) { *dst = d.timestamp(v, p) }}
}

func (d *decoder) fRate(key string, dst *Rate) field {
	return field{key, func(v *yaml.Node, p string) { *dst = d.rate(v, p) }}
}

// Schema.

func (d *decoder) policy(n *yaml.Node) *Policy {
	p := newPolicy()
	d.object(n, "",
		d.fInt("schema", &p.Schema),
		d.fStr("name", &p.Name),
		d.fTime("expires", &p.Expires),
		field{"rings", func(v *yaml.Node, path string) {
			d.list(v, path, "[{name: pilot, ...}]", func(_ int, v *yaml.Node, p2 string) {
				p.Rings = append(p.Rings, d.ring(v, p2))
			})
		}},
		field{"windows", func(v *yaml.Node, path string) {
			d.list(v, path, "[{name: nightly, cron: \"0 2 * * *\", ...}]", func(_ int, v *yaml.Node, p2 string) {
				p.Windows = append(p.Windows, d.window(v, p2))
			})
		}},
		field{"auto_approve", func(v *yaml.Node, path string) {
			d.list(v, path, "[{classifications: [security]}]", func(_ int, v *yaml.Node, p2 string) {
				p.AutoApprove = append(p.AutoApprove, d.autoApproval(v, p2))
			})
		}},
		field{"approve", func(v *yaml.Node, path string) {
			d.list(v, path, "[{package: openssl, version: \"3.0.*\"}]", func(_ int, v *yaml.Node, p2 string) {
				p.Approve = append(p.Approve, d.approval(v, p2))
			})
		}},
		field{"deny", func(v *yaml.Node, path string) {
			d.list(v, path, "[{package: openssl, version: \"3.0.*\"}]", func(_ int, v *yaml.Node, p2 string) {
				p.Deny = append(p.Deny, d.approval(v, p2))
			})
		}},
		field{"pins", func(v *yaml.Node, path string) {
			d.list(v, path, "[{package: postgresql-15, version: \"15.8-*\"}]", func(_ int, v *yaml.Node, p2 string) {
				var x Pin
				d.object(v, p2, d.fStr("package", &x.Package), d.fStr("version", &x.Version),
					d.fStrs("rings", "[pilot, broad]", &x.Rings), d.fStr("reason", &x.Reason))
				p.Pins = append(p.Pins, x)
			})
		}},
		field{"expedite", func(v *yaml.Node, path string) {
			d.list(v, path, "[{package: openssh-server, version: \"1:9.2p1-2+deb12u3\"}]", func(_ int, v *yaml.Node, p2 string) {
				var x Expedite
				d.object(v, p2, d.fStr("package", &x.Package), d.fStr("version", &x.Version),
					d.fStrs("rings", "[pilot, broad]", &x.Rings), d.fStr("reason", &x.Reason))
				p.Expedite = append(p.Expedite, x)
			})
		}},
		field{"pauses", func(v *yaml.Node, path string) {
			d.list(v, path, "[{ring: broad, from: 2026-12-18T00:00:00Z, until: 2027-01-05T00:00:00Z}]", func(_ int, v *yaml.Node, p2 string) {
				var x Pause
				d.object(v, p2, d.fStr("ring", &x.Ring), d.fTime("from", &x.From), d.fTime("until", &x.Until),
					d.fStr("reason", &x.Reason))
				p.Pauses = append(p.Pauses, x)
			})
		}},
		field{"rollbacks", func(v *yaml.Node, path string) {
			d.list(v, path, "[{package: libfoo, version: \"2.1-1\", rings: [pilot]}]", func(_ int, v *yaml.Node, p2 string) {
				var x Rollback
				d.object(v, p2, d.fStr("package", &x.Package), d.fStr("version", &x.Version),
					d.fStrs("rings", "[pilot, broad]", &x.Rings), d.fStr("reason", &x.Reason))
				p.Rollbacks = append(p.Rollbacks, x)
			})
		}},
		field{"reboot", func(v *yaml.Node, path string) { d.reboot(v, path, &p.Reboot) }},
		field{"peer_sharing", func(v *yaml.Node, path string) {
			d.object(v, path, d.fBool("enabled", &p.PeerSharing.Enabled),
				d.fRate("upload_rate", &p.PeerSharing.UploadRate), d.fRate("wan_rate", &p.PeerSharing.WANRate))
		}},
		field{"health_check", func(v *yaml.Node, path string) { p.HealthCheck = d.healthCheck(v, path) }},
		field{"transactions", func(v *yaml.Node, path string) {
			d.object(v, path, d.fStrs("allow_remove", "[linux-image-*]", &p.Transactions.AllowRemove),
				d.fStrs("without_rollback", "[tzdata]", &p.Transactions.WithoutRollback))
		}},
		field{"console", func(v *yaml.Node, path string) {
			p.Console = &Console{}
			d.object(v, path, d.fStr("url", &p.Console.URL), d.fStr("tls_pin", &p.Console.TLSPin))
		}},
		field{"self_update", func(v *yaml.Node, path string) {
			d.object(v, path, d.fDur("health_deadline", &p.SelfUpdate.HealthDeadline))
		}},
		field{"unmanaged", func(v *yaml.Node, path string) { d.unmanaged(v, path, &p.Unmanaged) }},
		field{"urgent", func(v *yaml.Node, path string) {
			d.list(v, path, "[{name: kev-or-critical, kev: true, min_severity: critical, no_deferral: true, reboot_deadline: 24h}]", func(_ int, v *yaml.Node, p2 string) {
				var x Urgent
				d.object(v, p2, d.fStr("name", &x.Name), d.fBool("kev", &x.KEV), d.fStr("min_severity", &x.MinSeverity),
					d.fStrs("rings", "[pilot, broad]", &x.Rings), d.fBool("no_deferral", &x.NoDeferral),
					d.fDur("reboot_deadline", &x.RebootDeadline))
				p.Urgent = append(p.Urgent, x)
			})
		}},
		field{"restart_services", func(v *yaml.Node, path string) {
			rs := &p.RestartServices
			if v.Kind == yaml.ScalarNode {
				// The short form: restart_services: auto.
				rs.Mode = d.str(v, path)
				return
			}
			d.object(v, path, d.fStr("mode", &rs.Mode),
				d.fStrs("include", "[nginx, \"php*-fpm\"]", &rs.Include),
				d.fStrs("exclude", "[postgresql]", &rs.Exclude))
		}},
		field{"reboot_hooks", func(v *yaml.Node, path string) {
			d.object(v, path,
				field{"pre_reboot", func(v *yaml.Node, p2 string) { p.RebootHooks.PreReboot = d.hook(v, p2) }},
				field{"post_reboot", func(v *yaml.Node, p2 string) { p.RebootHooks.PostReboot = d.hook(v, p2) }},
			)
		}},
	)
	return p
}

// hook reads a reboot hook: command (argv, no shell), timeout, max_output.
func (d *decoder) hook(n *yaml.Node, path string) *Hook {
	h := &Hook{Timeout: Duration(DefaultHookTimeout)}
	d.object(n, path,
		field{"command", func(v *yaml.Node, p string) {
			if v.Kind == yaml.ScalarNode {
				d.errf(v, p, "must be a list of program and arguments (no shell), e.g. [/usr/local/bin/drain, --wait]; got '%s'", v.Value)
				return
			}
			h.Command = d.strs(v, p, "[/usr/local/bin/drain, --wait]")
		}},
		d.fDur("timeout", &h.Timeout),
		d.fInt("max_output", &h.MaxOutput),
	)
	return h
}

func (d *decoder) ring(n *yaml.Node, path string) Ring {
	var r Ring
	d.object(n, path,
		d.fStr("name", &r.Name),
		d.fBool("default", &r.Default),
		field{"select", func(v *yaml.Node, p string) {
			d.list(v, p, "[{tags: [lab]}, {hostname: \"lab-*\"}]", func(_ int, v *yaml.Node, p2 string) {
				var s Selector
				d.object(v, p2, d.fStrs("tags", "[lab]", &s.Tags), d.fStr("hostname", &s.Hostname),
					d.fStr("site", &s.Site), d.fPercent("percent", &s.Percent))
				r.Select = append(r.Select, s)
			})
		}},
		d.fDur("defer", &r.Defer),
		d.fDur("deadline", &r.Deadline),
		field{"gates", func(v *yaml.Node, p string) {
			d.list(v, p, "[{ring: pilot, min_success: 95%, min_nodes: 10, too_few_reports: open, open_after: 3d, scope: fleet}]", func(_ int, v *yaml.Node, p2 string) {
				g := Gate{MinNodes: 1}
				d.object(v, p2, d.fStr("ring", &g.Ring), d.fPercent("min_success", &g.MinSuccess),
					d.fInt("min_nodes", &g.MinNodes), d.fStr("too_few_reports", &g.TooFewReports),
					d.fDur("open_after", &g.OpenAfter), d.fStr("scope", &g.Scope))
				r.Gates = append(r.Gates, g)
			})
		}},
		field{"reboot", func(v *yaml.Node, p string) {
			o := &RebootOverride{}
			d.object(v, p,
				d.fDurPtr("notify_ahead", &o.NotifyAhead),
				d.fDurs("defer_choices", &o.DeferChoices),
				d.fIntPtr("max_deferrals", &o.MaxDeferrals),
				d.fDurPtr("deadline", &o.Deadline),
				d.fDurPtr("grace", &o.Grace),
				field{"active_hours", func(v *yaml.Node, p2 string) { o.ActiveHours = d.activeHours(v, p2) }},
				field{"headless", func(v *yaml.Node, p2 string) { o.Headless = d.headless(v, p2) }},
				d.fStr("user_restart", &o.UserRestart),
			)
			r.Reboot = o
		}},
		field{"health_check", func(v *yaml.Node, p string) { r.HealthCheck = d.healthCheck(v, p) }},
	)
	return r
}

func (d *decoder) window(n *yaml.Node, path string) Window {
	w := Window{Action: WindowAllow}
	d.object(n, path,
		d.fStr("name", &w.Name),
		d.fStr("action", &w.Action),
		d.fStr("cron", &w.Cron),
		d.fDur("duration", &w.Duration),
		d.fStr("tz", &w.TZ),
		d.fStrs("rings", "[pilot, broad]", &w.Rings),
		d.fDur("margin", &w.Margin),
	)
	return w
}

func (d *decoder) autoApproval(n *yaml.Node, path string) AutoApproval {
	var a AutoApproval
	d.object(n, path,
		d.fStr("name", &a.Name),
		d.fStrs("sources", "[apt, catalog, dnf]", &a.Sources),
		d.fStrs("classifications", "[security, bugfix]", &a.Classifications),
		d.fStr("min_severity", &a.MinSeverity),
		d.fStrs("packages", "[\"linux-image-*\"]", &a.Packages),
		d.fStrs("rings", "[pilot, broad]", &a.Rings),
	)
	return a
}

func (d *decoder) approval(n *yaml.Node, path string) Approval {
	var a Approval
	d.object(n, path, d.fStr("package", &a.Package), d.fStr("version", &a.Version),
		d.fStrs("rings", "[pilot, broad]", &a.Rings), d.fStr("reason", &a.Reason))
	return a
}

func (d *decoder) reboot(n *yaml.Node, path string, r *Reboot) {
	d.object(n, path,
		d.fDur("notify_ahead", &r.NotifyAhead),
		d.fDurs("defer_choices", &r.DeferChoices),
		d.fInt("max_deferrals", &r.MaxDeferrals),
		field{"allow_refuse", func(v *yaml.Node, p string) {
			d.object(v, p, d.fStrs("rings", "[lab]", &r.AllowRefuse.Rings), d.fStrs("tags", "[kiosk]", &r.AllowRefuse.Tags))
		}},
		d.fDur("deadline", &r.Deadline),
		d.fDur("grace", &r.Grace),
		field{"active_hours", func(v *yaml.Node, p string) { r.ActiveHours = d.activeHours(v, p) }},
		field{"headless", func(v *yaml.Node, p string) { r.Headless = d.headless(v, p) }},
		d.fStr("user_restart", &r.UserRestart),
	)
}

func (d *decoder) activeHours(n *yaml.Node, path string) *ActiveHours {
	a := &ActiveHours{}
	d.object(n, path, d.fStr("start", &a.Start), d.fStr("end", &a.End), d.fStr("tz", &a.TZ))
	return a
}

func (d *decoder) headless(n *yaml.Node, path string) *Headless {
	h := &Headless{Per: "site"}
	d.object(n, path, d.fStr("cron", &h.Cron), d.fDur("duration", &h.Duration), d.fStr("tz", &h.TZ),
		d.fInt("max_concurrent", &h.MaxConcurrent), d.fStr("per", &h.Per))
	return h
}

func (d *decoder) healthCheck(n *yaml.Node, path string) *HealthCheck {
	h := &HealthCheck{Timeout: Duration(time.Minute)}
	d.object(n, path,
		field{"command", func(v *yaml.Node, p string) {
			if v.Kind == yaml.ScalarNode {
				d.errf(v, p, "must be a list of program and arguments (no shell), e.g. [/usr/local/bin/check, --quick]; got '%s'", v.Value)
				return
			}
			h.Command = d.strs(v, p, "[/usr/local/bin/check, --quick]")
		}},
		d.fDur("timeout", &h.Timeout),
	)
	return h
}

// newPolicy returns a policy holding the defaults that keys left out keep.
func newPolicy() *Policy {
	return &Policy{
		Reboot: Reboot{
			NotifyAhead:  Duration(15 * time.Minute),
			DeferChoices: []Duration{Duration(time.Hour), Duration(4 * time.Hour), Duration(24 * time.Hour)},
			MaxDeferrals: 3,
			Deadline:     Duration(48 * time.Hour),
			Grace:        Duration(4 * time.Hour),
		},
		PeerSharing: PeerSharing{Enabled: true},
	}
}

func (d *decoder) unmanaged(n *yaml.Node, path string, u *Unmanaged) {
	d.object(n, path,
		field{"enabled", func(v *yaml.Node, p string) {
			var on bool
			d.fBool("enabled", &on).fn(v, p)
			u.Enabled = &on
		}},
		d.fDur("interval", &u.Interval),
		d.fDur("expiry", &u.Expiry),
		d.fInt("max_per_node", &u.MaxPerNode),
		d.fInt("max_per_site", &u.MaxPerSite),
		field{"sweep", func(v *yaml.Node, p string) {
			s := &Sweep{}
			d.object(v, p, d.fStrs("sites", "[branch-1]", &s.Sites), d.fStrs("subnets", "[10.20.0.0/24]", &s.Subnets),
				d.fInt("rate", &s.Rate), d.fDur("every", &s.Every))
			u.Sweep = s
		}},
	)
}
