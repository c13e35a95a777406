// Command benchcheck reads `go test -bench` output on stdin and prints each
// patchring figure (a metric whose unit is name@unit[@checks], see package
// benchtarget) as "name value unit [target ok|FAIL]", and every FAIL or
// panic line of the run as is. It exits 1 when a goal is missed, a figure
// is implausible or unparsable, or the run failed.
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/patchring/patchring/internal/benchtarget"
)

func main() {
	if !check(os.Stdin, os.Stdout) {
		os.Exit(1)
	}
}

// check copies the verdicts of in to out and reports whether all passed.
func check(in io.Reader, out io.Writer) bool {
	pass := true
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
	return pass
}
