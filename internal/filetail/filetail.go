// Package filetail reads the last lines of a log file, for error messages
// that must say why a process ended: the demo's agents and the sitetests'
// nodes.
package filetail

import (
	"fmt"
	"os"
	"strings"
)

// Lines returns the last n lines of the file at path, joined by newlines,
// or a parenthesised reason when it cannot be read.
func Lines(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(all) > n {
		all = all[len(all)-n:]
	}
	return strings.Join(all, "\n")
}
