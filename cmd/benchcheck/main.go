// Command benchcheck reads `go test -bench` output on stdin and prints each
// patchring figure (a metric whose unit is name@unit[@checks], see package
// benchtarget) as "name value unit [target ok|FAIL]", and every FAIL or
// panic line of the run as is. It exits 1 when a goal is missed, a figure
// is implausible or unparsable, the run failed, or a figure named with
// -require (comma-separated) is missing (its benchmark was skipped, say
// for want of root or of a baseline tool).
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/patchring/patchring/internal/benchtarget"
)

func main() {
	require := flag.String("require", "", "comma-separated figures the run must print")
	flag.Parse()
	var names []string
	for _, n := range strings.Split(*require, ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	if !check(os.Stdin, os.Stdout, names...) {
		os.Exit(1)
	}
}

// check copies the verdicts of in to out and reports whether all passed
// and every figure in required was printed.
func check(in io.Reader, out io.Writer, required ...string) bool {
	pass := true
	seen := map[string]bool{}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "FAIL") || strings.HasPrefix(line, "panic") || strings.HasPrefix(line, "--- FAIL") {
			fmt.Fprintln(out, line)
			pass = false
			continue
		}
		ms, err := benchtarget.ParseLine(line)
		for _, m := range ms {
			seen[m.Name] = true
			v, ok := m.Verdict()
			fmt.Fprintln(out, v)
			pass = pass && ok
		}
		if err != nil {
			fmt.Fprintln(out, "FAIL", err)
			pass = false
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintln(out, "FAIL read benchmark output:", err)
		pass = false
	}
	for _, n := range required {
		if !seen[n] {
			fmt.Fprintf(out, "FAIL %s: no figure (its benchmark did not run or did not report it)\n", n)
			pass = false
		}
	}
	return pass
}
