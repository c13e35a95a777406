package benchtarget

import (
	"math"
	"strings"
	"testing"
)

func TestUnitRoundTrip(t *testing.T) {
	u := Unit("p2p_wan_bytes_ratio", "x", AtMost(1.05), Plausible(1, 20))
	if u != "p2p_wan_bytes_ratio@x@<=1.05@in:1:20" {
		t.Fatalf("Unit = %q", u)
	}
	name, unit, checks, ok, err := ParseUnit(u)
	if err != nil || !ok || name != "p2p_wan_bytes_ratio" || unit != "x" || len(checks) != 2 {
		t.Fatalf("ParseUnit(%q) = %q %q %v %v %v", u, name, unit, checks, ok, err)
	}
	if checks[0] != AtMost(1.05) || checks[1] != Plausible(1, 20) {
		t.Fatalf("checks = %+v", checks)
	}
}

func TestUnitPanicsOnBadName(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("Unit accepted a name holding '@'")
		}
	}()
	Unit("a@b", "x")
}

func TestVerdict(t *testing.T) {
	for _, tc := range []struct {
		name, line, want string
		pass             bool
	}{
		{"no checks", "BenchmarkA-2 1 5 ns/op 12.5 inventory_full_scan@ms", "inventory_full_scan 12.5 ms", true},
		{"goal met", "BenchmarkA-2 1 5 ns/op 1.1 ratio@x@<=1.2", "ratio 1.1 x <=1.2 ok", true},
		{"goal met at the bound", "BenchmarkA-2 1 5 ns/op 1.2 ratio@x@<=1.2", "ratio 1.2 x <=1.2 ok", true},
		{"goal missed", "BenchmarkA-2 1 5 ns/op 1.3 ratio@x@<=1.2", "ratio 1.3 x <=1.2 FAIL", false},
		{"at least", "BenchmarkA-2 1 5 ns/op 80 opt@pct@>=90", "opt 80 pct >=90 FAIL", false},
		{"implausible although the goal is met", "BenchmarkA-2 1 5 ns/op 0.001 wan@x@<=1.05@in:1:20",
			"wan 0.001 x <=1.05 ok FAIL implausible, outside [1, 20]", false},
		{"plausible", "BenchmarkA-2 1 5 ns/op 1.04 wan@x@<=1.05@in:1:20", "wan 1.04 x <=1.05 ok", true},
		{"NaN", "BenchmarkA-2 1 5 ns/op NaN ratio@x@<=1.2", "ratio NaN x <=1.2 FAIL", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ms, err := ParseLine(tc.line)
			if err != nil || len(ms) != 1 {
				t.Fatalf("ParseLine = %+v, %v", ms, err)
			}
			got, pass := ms[0].Verdict()
			if got != tc.want || pass != tc.pass {
				t.Fatalf("Verdict = %q %v, want %q %v", got, pass, tc.want, tc.pass)
			}
		})
	}
}

func TestParseLine(t *testing.T) {
	ms, err := ParseLine("BenchmarkSiteWANBytes-2   \t       1\t9876543210 ns/op\t 1.04 a@x@<=1.05\t 3.0 MiB/s\t 7 b@count")
	if err != nil || len(ms) != 2 || ms[0].Name != "a" || ms[1].Name != "b" || ms[1].Value != 7 {
		t.Fatalf("ParseLine = %+v, %v", ms, err)
	}
	for _, line := range []string{"", "ok  \tgithub.com/x\t1.2s", "BenchmarkX: bench_test.go:12: round 1 a@b", "goos: linux"} {
		if ms, err := ParseLine(line); len(ms) != 0 || err != nil {
			t.Errorf("ParseLine(%q) = %+v, %v; want nothing", line, ms, err)
		}
	}
	for _, line := range []string{
		"BenchmarkX-2 1 5 ns/op 1 a@x@~1",
		"BenchmarkX-2 1 5 ns/op 1 a@x@<=abc",
		"BenchmarkX-2 1 5 ns/op 1 a@x@in:3:1",
		"BenchmarkX-2 1 5 ns/op 1 a@x@in:3",
		"BenchmarkX-2 1 5 ns/op 1 @x",
		"BenchmarkX-2 1 5 ns/op zz a@x",
	} {
		if _, err := ParseLine(line); err == nil {
			t.Errorf("ParseLine(%q) accepted a malformed figure", line)
		}
	}
}

func FuzzParseLine(f *testing.F) {
	f.Add("BenchmarkA-2 1 5 ns/op 1.04 wan@x@<=1.05@in:1:20")
	f.Add("BenchmarkA-2 1 5 ns/op 80 opt@pct@>=90 3 MiB/s")
	f.Add("BenchmarkA-2 1 5 ns/op 1 a@x@in:1e308:-1e308")
	f.Fuzz(func(t *testing.T, line string) {
		ms, err := ParseLine(line)
		for _, m := range ms {
			v, pass := m.Verdict()
			if !strings.HasPrefix(v, m.Name+" ") {
				t.Fatalf("verdict %q does not start with the name %q", v, m.Name)
			}
			if math.IsNaN(m.Value) && pass && len(m.Checks) > 0 {
				t.Fatalf("NaN passed %v", m.Checks)
			}
			for _, c := range m.Checks {
				if pass && !c.OK(m.Value) {
					t.Fatalf("%q passed although %v fails", line, c)
				}
			}
		}
		_ = err
	})
}
