package main

import (
	"bufio"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/patchring/patchring/platform/vercmp"
)

// newDebugCmd groups tools for looking into patchring's building blocks.
func newDebugCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "debug",
		Short: "Tools for looking into patchring's building blocks",
	}
	cmd.AddCommand(newDebugVercmpCmd(a))
	return cmd
}

func newDebugVercmpCmd(a *app) *cobra.Command {
	var scheme string
	cmd := &cobra.Command{
		Use:   "vercmp",
		Short: "Compare package versions read from stdin, one pair a line",
		Long: `vercmp reads lines "A B" from standard input and prints one line for each:
"<", "=" or ">" for how A orders against B, or "error: <why>" when a line does
not hold two valid versions (it then goes on with the next line).

--scheme deb orders like dpkg --compare-versions; --scheme rpm like rpm's
rpmvercmp on [epoch:]version[-release].`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var compare func(x, y string) (int, error)
			switch scheme {
			case "deb":
				compare = vercmp.Deb
			case "rpm":
				compare = vercmp.RPM
			default:
				return &exitError{code: 2, msg: fmt.Sprintf("--scheme %q: use deb or rpm", scheme)}
			}
			return runVercmp(a, compare)
		},
	}
	cmd.Flags().StringVar(&scheme, "scheme", "deb", "version scheme: deb or rpm")
	return cmd
}

// runVercmp answers every line of a.In on a.Out.
func runVercmp(a *app, compare func(x, y string) (int, error)) error {
	in := bufio.NewScanner(a.In)
	in.Buffer(make([]byte, 0, 64<<10), 1<<20)
	out := bufio.NewWriter(a.Out)
	line := 0
	for in.Scan() {
		line++
		f := strings.Fields(in.Text())
		if len(f) != 2 {
			fmt.Fprintf(out, "error: line %d: want two versions separated by a space, got %d fields\n", line, len(f))
			continue
		}
		c, err := compare(f[0], f[1])
		if err != nil {
			fmt.Fprintf(out, "error: %v\n", err)
			continue
		}
		out.WriteString([...]string{"<\n", "=\n", ">\n"}[c+1])
	}
	if err := in.Err(); err != nil {
		out.Flush()
		return fmt.Errorf("read stdin line %d: %w", line+1, err)
	}
	if err := out.Flush(); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}
