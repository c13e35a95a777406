package main

import (
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		pass           bool
		required       []string
	}{
		{"all met", "goos: linux\nBenchmarkA-2 1 5 ns/op 1.1 r@x@<=1.2 3 s@ms\nPASS\nok x 1s\n", "r 1.1 x <=1.2 ok\ns 3 ms\n", true, nil},
		{"goal missed", "BenchmarkA-2 1 5 ns/op 1.3 r@x@<=1.2\n", "r 1.3 x <=1.2 FAIL\n", false, nil},
		{"implausible", "BenchmarkA-2 1 5 ns/op 0 w@x@<=1.05@in:1:20\n", "w 0 x <=1.05 ok FAIL implausible, outside [1, 20]\n", false, nil},
		{"run failed", "--- FAIL: BenchmarkB\nFAIL\tx\t1s\n", "--- FAIL: BenchmarkB\nFAIL\tx\t1s\n", false, nil},
		{"malformed", "BenchmarkA-2 1 5 ns/op 1 r@x@~2\n", "FAIL BenchmarkA-2: parse metric \"r@x@~2\": unknown check \"~2\" (want <=X, >=X or in:LO:HI)\n", false, nil},
		{"required present", "BenchmarkA-2 1 5 ns/op 1.1 r@x@<=1.2\n", "r 1.1 x <=1.2 ok\n", true, []string{"r"}},
		{"required missing", "BenchmarkA-2 1 5 ns/op 1.1 r@x@<=1.2\n", "r 1.1 x <=1.2 ok\nFAIL q: no figure (its benchmark did not run or did not report it)\n", false, []string{"r", "q"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out strings.Builder
			pass := check(strings.NewReader(tc.in), &out, tc.required...)
			if out.String() != tc.want || pass != tc.pass {
				t.Fatalf("check = %v\n%s\nwant %v\n%s", pass, out.String(), tc.pass, tc.want)
			}
		})
	}
}
