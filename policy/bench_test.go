package policy

import (
	"fmt"
	"testing"
	"time"
)

// Benchmarks run once per op under `make bench` (-benchtime 1x), so each op
// does enough work to measure and reports its own per-unit figure.

func BenchmarkParseExample(b *testing.B) {
	data := readExample(b)
	const inner = 100
	b.ReportAllocs()
	for b.Loop() {
		for range inner {
			if _, err := Parse(data, "example"); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N*inner), "policy_parse_example@ms")
}

func BenchmarkParseJSONExample(b *testing.B) {
	p, err := Parse(readExample(b), "example")
	if err != nil {
		b.Fatal(err)
	}
	data, _ := MarshalCanonical(p)
	const inner = 100
	for b.Loop() {
		for range inner {
			if _, err := ParseJSON(data, "example"); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N*inner), "policy_parse_json_example@ms")
}

// BenchmarkEvaluate1000 evaluates 1000 approved updates for a node in a ring
// with allow and block windows in two time zones: the agent's planning step.
func BenchmarkEvaluate1000(b *testing.B) {
	p := mustParse(b, evalPolicy)
	now := mustTime(b, "2026-06-10T10:00:00Z")
	ups := make([]Update, 1000)
	fleet := FleetStats{"lab": {}, "pilot": {}}
	for i := range ups {
		ups[i] = sec(fmt.Sprintf("pkg%04d", i), "1.0-1", now.Add(-time.Duration(i%240)*time.Hour))
		fleet["lab"][ups[i].Key()] = RingStats{Succeeded: 5, Total: 5}
	}
	var ds []Decision
	for b.Loop() {
		ds = Evaluate(p, pilotNode, ups, fleet, now)
	}
	if len(ds) != len(ups) {
		b.Fatalf("%d decisions", len(ds))
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "policy_evaluate_1000@ms")
}

func BenchmarkRingFor(b *testing.B) {
	p := mustParse(b, string(readExample(b)))
	const inner = 10000
	for b.Loop() {
		for i := range inner {
			RingFor(p, NodeFacts{NodeID: fmt.Sprint(i), Hostname: "ws-1"})
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/1000/float64(b.N*inner), "policy_ring_for@us")
}
